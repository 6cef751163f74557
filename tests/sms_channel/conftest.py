import pytest

from sms_channel.models import SmsChannel
from tests.factories import (
    CampaignFactory,
    PhoneNumberFactory,
    SmsChannelFactory,
    TwilioConnectorFactory,
)
from tests.sms_channel.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, TWILIO_NUMBER


@pytest.fixture
def twilio_channel(db) -> SmsChannel:
    """Campaign "Support" open 24/7, its SMS channel enabled on a Twilio number."""
    connector = TwilioConnectorFactory(
        name="Twilio main", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
    )
    number = PhoneNumberFactory(connector=connector, number=TWILIO_NUMBER)
    return SmsChannelFactory(
        campaign=CampaignFactory(name="Support"),
        phone_number=number,
        connector=connector,
        max_queue_seconds=300,
    )
