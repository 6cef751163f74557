import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from sms_channel.models import SmsChannel
from tests.factories import (
    CampaignFactory,
    ConnectorFactory,
    PhoneNumberFactory,
    SmsChannelFactory,
    TwilioConnectorFactory,
)

pytestmark = pytest.mark.django_db


def errors_of(instance) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        instance.full_clean()
    return excinfo.value.message_dict


def test_phone_number_must_belong_to_the_chosen_connector():
    number = PhoneNumberFactory(connector__name="Acme", number="+14155550100")
    other = ConnectorFactory(name="Other")
    channel = SmsChannelFactory.build(
        campaign=CampaignFactory(), phone_number=number, connector=other
    )

    errors = errors_of(channel)

    assert errors["phone_number"] == ["+14155550100 belongs to connector “Acme”, not “Other”."]
    assert "connector" not in errors


def test_phone_number_without_connector_asks_for_the_connector():
    channel = SmsChannelFactory.build(
        campaign=CampaignFactory(),
        phone_number=PhoneNumberFactory(),
        connector=None,
        status=SmsChannel.Status.DISABLED,
    )

    assert errors_of(channel) == {
        "connector": ["Choose the connector that owns this phone number."]
    }


def test_enabled_channel_needs_connector_and_number():
    channel = SmsChannelFactory.build(campaign=CampaignFactory(), connector=None, phone_number=None)

    errors = errors_of(channel)

    assert errors["connector"] == ["An enabled channel needs a connector."]
    assert errors["phone_number"] == ["An enabled channel needs a phone number."]


def test_disabled_channel_may_have_no_connector_or_number():
    channel = SmsChannelFactory.build(
        campaign=CampaignFactory(),
        status=SmsChannel.Status.DISABLED,
        connector=None,
        phone_number=None,
    )

    channel.full_clean()
    channel.save()

    assert SmsChannel.objects.filter(pk=channel.pk, phone_number=None).exists()


def test_enabled_channel_needs_an_active_connector():
    number = PhoneNumberFactory(connector__name="Paused", connector__active=False)
    channel = SmsChannelFactory.build(
        campaign=CampaignFactory(), phone_number=number, connector=number.connector
    )

    assert errors_of(channel)["connector"] == ["Connector “Paused” is inactive; activate it first."]


def test_one_number_serves_at_most_one_enabled_channel():
    first = SmsChannelFactory()
    second = SmsChannelFactory.build(
        campaign=CampaignFactory(), phone_number=first.phone_number, connector=first.connector
    )

    assert errors_of(second)["__all__"] == [
        "This phone number already serves another enabled SMS channel."
    ]
    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()
    assert SmsChannel.objects.filter(phone_number=first.phone_number).count() == 1


def test_disabled_channels_may_share_a_number():
    first = SmsChannelFactory()
    second = SmsChannelFactory(
        phone_number=first.phone_number,
        connector=first.connector,
        status=SmsChannel.Status.DISABLED,
    )
    second.full_clean()
    SmsChannelFactory(
        phone_number=first.phone_number,
        connector=first.connector,
        status=SmsChannel.Status.DISABLED,
    )

    assert SmsChannel.objects.filter(phone_number=first.phone_number).count() == 3


def test_database_refuses_enabled_channel_without_number():
    channel = SmsChannelFactory.build(campaign=CampaignFactory(), connector=None, phone_number=None)

    with pytest.raises(IntegrityError), transaction.atomic():
        channel.save()


def test_service_level_must_be_positive():
    channel = SmsChannelFactory(service_level_seconds=20)
    channel.service_level_seconds = 0

    assert errors_of(channel)["service_level_seconds"] == [
        "Ensure this value is greater than or equal to 1."
    ]
    with pytest.raises(IntegrityError), transaction.atomic():
        channel.save()
    channel.refresh_from_db()
    assert channel.service_level_seconds == 20


@pytest.mark.parametrize("field", ["max_interactions", "max_transfer_seconds", "max_queue_seconds"])
def test_seconds_and_caps_are_never_negative(field):
    channel = SmsChannelFactory()
    setattr(channel, field, -1)

    assert errors_of(channel)[field] == ["Ensure this value is greater than or equal to 0."]
    with pytest.raises(IntegrityError), transaction.atomic():
        channel.save()


def test_twilio_connector_needs_account_sid_and_token():
    connector = TwilioConnectorFactory.build(account_sid="", auth_token="")

    errors = errors_of(connector)

    assert errors["account_sid"] == ["A Twilio connector needs its Account SID."]
    assert errors["auth_token"] == ["A Twilio connector needs its Auth Token."]


def test_simulator_connector_needs_no_credentials():
    ConnectorFactory.build(name="Demo").full_clean()
