"""The connect_twilio command: one step from a Twilio account to a live campaign number."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from campaigns.models import Blacklist
from contactcenter.crypto import decrypt
from sms_channel.models import Connector, PhoneNumber, SmsChannel
from tests.factories import (
    CampaignFactory,
    ConnectorFactory,
    PhoneNumberFactory,
    SmsChannelFactory,
    TwilioConnectorFactory,
)

pytestmark = pytest.mark.django_db

SID = "AC" + "5f" * 16
TOKEN = "9e107d9d372bb6826bd81d3542a419d6"
NEW_TOKEN = "e4d909c290d0fb1ca068ffaddf22cbd0"
NUMBER = "+14155550100"


def connect(**overrides) -> str:
    options = {"campaign": "Support", "account_sid": SID, "auth_token": TOKEN, "number": NUMBER}
    options.update(overrides)
    out = StringIO()
    call_command(
        "connect_twilio",
        f"--campaign={options['campaign']}",
        f"--account-sid={options['account_sid']}",
        f"--auth-token={options['auth_token']}",
        f"--number={options['number']}",
        stdout=out,
        stderr=StringIO(),
    )
    return out.getvalue()


def stored_token(connector: Connector) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT auth_token FROM {Connector._meta.db_table} WHERE id = %s", [connector.pk]
        )
        return cursor.fetchone()[0]


def row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Connector, PhoneNumber, SmsChannel, Blacklist)
    }


@pytest.fixture
def campaign(db):
    return CampaignFactory(name="Support")


def test_creates_connector_number_and_enables_the_channel(campaign, settings):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"

    output = connect()

    connector = Connector.objects.get()
    assert connector.provider == Connector.Provider.TWILIO
    assert connector.account_sid == SID
    assert connector.active is True
    assert connector.auth_token == TOKEN
    raw = stored_token(connector)
    assert TOKEN not in raw
    assert decrypt(raw) == TOKEN
    assert connector.opt_out_list.is_opt_out_list is True

    number = PhoneNumber.objects.get()
    assert (number.number, number.connector) == (NUMBER, connector)

    channel = SmsChannel.objects.get()
    assert channel.campaign == campaign
    assert channel.status == SmsChannel.Status.ENABLED
    assert (channel.connector, channel.phone_number) == (connector, number)

    assert TOKEN not in output
    assert "••••" + TOKEN[-4:] in output
    assert "https://cc.example.com/sms/twilio/inbound/" in output
    assert "https://cc.example.com/sms/twilio/status/" in output
    assert NUMBER in output
    assert "not an https URL" not in output


def test_without_a_public_url_prints_a_placeholder_and_a_warning(campaign, settings):
    settings.PUBLIC_BASE_URL = ""

    output = connect()

    assert "https://YOUR-PUBLIC-HOST/sms/twilio/inbound/" in output
    assert "PUBLIC_BASE_URL is not an https URL" in output
    assert TOKEN not in output


def test_an_http_public_url_gets_a_warning(campaign, settings):
    settings.PUBLIC_BASE_URL = "http://cc.example.com"

    output = connect()

    assert "http://cc.example.com/sms/twilio/inbound/" in output
    assert "PUBLIC_BASE_URL is not an https URL" in output


def test_running_again_updates_the_token_and_creates_nothing_twice(campaign, settings):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"
    connect()
    counts = row_counts()
    connector = Connector.objects.get()

    output = connect(auth_token=NEW_TOKEN, number="+1 415 555 0100")

    assert row_counts() == counts
    connector.refresh_from_db()
    assert connector.auth_token == NEW_TOKEN
    assert decrypt(stored_token(connector)) == NEW_TOKEN
    assert NEW_TOKEN not in output
    assert "••••" + NEW_TOKEN[-4:] in output
    assert SmsChannel.objects.get().status == SmsChannel.Status.ENABLED


def test_repoints_an_existing_channel_and_reactivates_the_connector(campaign):
    old = SmsChannelFactory(campaign=campaign, status=SmsChannel.Status.DISABLED)
    connector = TwilioConnectorFactory(account_sid=SID, active=False)

    connect()

    channel = SmsChannel.objects.get()
    assert channel.pk == old.pk
    assert channel.connector == connector
    assert channel.phone_number.number == NUMBER
    assert channel.status == SmsChannel.Status.ENABLED
    connector.refresh_from_db()
    assert connector.active is True
    assert connector.auth_token == TOKEN
    assert Connector.objects.filter(provider=Connector.Provider.TWILIO).count() == 1


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"campaign": "Sales"}, "No campaign is named “Sales”."),
        ({"account_sid": "AC123"}, "A Twilio Account SID is “AC” followed by 32 hexadecimal"),
        ({"account_sid": "SK" + "5f" * 16}, "A Twilio Account SID is “AC”"),
        ({"number": "+1 415"}, "wrong number of digits"),
        ({"number": "4155550100"}, "no country code"),
        ({"auth_token": "   "}, "The auth token is empty."),
    ],
)
def test_bad_input_changes_nothing(campaign, overrides, error):
    counts = row_counts()

    with pytest.raises(CommandError, match=error):
        connect(**overrides)

    assert row_counts() == counts


def test_bad_input_leaves_an_existing_setup_as_it_was(campaign):
    connect()
    counts = row_counts()

    with pytest.raises(CommandError):
        connect(auth_token=NEW_TOKEN, number="+1 415")

    assert row_counts() == counts
    assert Connector.objects.get().auth_token == TOKEN


def test_number_of_another_connector_is_refused_and_nothing_changes(campaign):
    other = ConnectorFactory(name="Demo simulator")
    PhoneNumberFactory(connector=other, number=NUMBER)
    counts = row_counts()

    with pytest.raises(CommandError, match=r"\+14155550100 belongs to connector “Demo simulator”"):
        connect()

    # The connector is created before the number is checked: it must be rolled back.
    assert row_counts() == counts
    assert not Connector.objects.filter(account_sid=SID).exists()
    assert not SmsChannel.objects.exists()


def test_number_serving_another_enabled_channel_is_refused(campaign):
    connect()
    counts = row_counts()

    with pytest.raises(CommandError, match="already serves another enabled SMS channel"):
        connect(campaign=CampaignFactory(name="Sales").name)

    assert row_counts() == counts
    assert SmsChannel.objects.get().campaign == campaign
