"""connector_save and sms_channel_save: the services behind the SMS channel admin."""

import pytest
from django.core.exceptions import ValidationError

from campaigns.models import Blacklist
from sms_channel.models import Connector, SmsChannel
from sms_channel.services import connector_save, sms_channel_save
from tests.factories import (
    BlacklistFactory,
    CampaignFactory,
    ConnectorFactory,
    PhoneNumberFactory,
    TwilioConnectorFactory,
)

pytestmark = pytest.mark.django_db

SID = "AC" + "0" * 32
TOKEN = "0123456789abcdef0123456789abcdef"


def test_new_connector_gets_its_opt_out_list():
    connector = connector_save(
        connector=Connector(name="Acme", provider="twilio", account_sid=SID), auth_token=TOKEN
    )

    connector = Connector.objects.select_related("opt_out_list").get(pk=connector.pk)
    assert connector.auth_token == TOKEN
    assert connector.opt_out_list.name == "Opt-outs: Acme"
    assert connector.opt_out_list.is_opt_out_list is True


def test_opt_out_list_is_created_once():
    connector = connector_save(connector=Connector(name="Acme", provider="simulator"))
    opt_out_list_id = connector.opt_out_list_id

    connector_save(connector=connector)
    connector_save(connector=Connector.objects.get(pk=connector.pk))

    assert Connector.objects.get(pk=connector.pk).opt_out_list_id == opt_out_list_id
    assert Blacklist.objects.filter(is_opt_out_list=True).count() == 1


def test_stale_instance_does_not_unlink_the_opt_out_list():
    stale = ConnectorFactory(name="Acme")
    connector_save(connector=Connector.objects.get(pk=stale.pk))
    assert stale.opt_out_list_id is None

    stale.active = False
    connector_save(connector=stale)

    connector = Connector.objects.get(pk=stale.pk)
    assert connector.active is False
    assert connector.opt_out_list_id is not None
    assert Blacklist.objects.filter(is_opt_out_list=True).count() == 1


def test_connector_without_a_list_gets_one_on_its_next_save():
    connector = ConnectorFactory(name="Seeded")

    connector_save(connector=connector)

    assert Connector.objects.get(pk=connector.pk).opt_out_list.name == "Opt-outs: Seeded"


def test_opt_out_list_name_stays_unique_and_short():
    BlacklistFactory(name="Opt-outs: Acme")
    long_name = "x" * 100
    BlacklistFactory(name=f"Opt-outs: {long_name}"[:100])

    acme = connector_save(connector=Connector(name="Acme", provider="simulator"))
    long = connector_save(connector=Connector(name=long_name, provider="simulator"))

    assert acme.opt_out_list.name == "Opt-outs: Acme (2)"
    assert len(long.opt_out_list.name) == 100
    assert long.opt_out_list.name.endswith("x (2)")


@pytest.mark.parametrize("auth_token", [None, ""])
def test_no_token_keeps_the_stored_one(auth_token):
    connector = TwilioConnectorFactory(auth_token=TOKEN)
    connector.name = "Renamed"
    connector.auth_token = ""

    connector_save(connector=connector, auth_token=auth_token)

    connector = Connector.objects.get(pk=connector.pk)
    assert (connector.name, connector.auth_token) == ("Renamed", TOKEN)


def test_a_new_token_replaces_the_stored_one():
    connector = TwilioConnectorFactory(auth_token=TOKEN)

    connector_save(connector=connector, auth_token="f" * 32)

    assert Connector.objects.get(pk=connector.pk).auth_token == "f" * 32


def test_invalid_connector_saves_nothing():
    with pytest.raises(ValidationError) as excinfo:
        connector_save(connector=Connector(name="Acme", provider="twilio", account_sid=SID))

    assert excinfo.value.message_dict == {
        "auth_token": ["A Twilio connector needs its Auth Token."]
    }
    assert not Connector.objects.exists()
    assert not Blacklist.objects.exists()


def test_channel_save_refuses_a_number_of_another_connector():
    number = PhoneNumberFactory()
    channel = SmsChannel(
        campaign=CampaignFactory(), connector=ConnectorFactory(), phone_number=number
    )

    with pytest.raises(ValidationError) as excinfo:
        sms_channel_save(channel=channel)

    assert list(excinfo.value.message_dict) == ["phone_number"]
    assert not SmsChannel.objects.exists()


def test_channel_save_stores_a_valid_channel():
    number = PhoneNumberFactory()
    channel = SmsChannel(
        campaign=CampaignFactory(),
        connector=number.connector,
        phone_number=number,
        status=SmsChannel.Status.ENABLED,
        service_level_seconds=30,
    )

    sms_channel_save(channel=channel)

    stored = SmsChannel.objects.get(pk=channel.pk)
    assert (stored.phone_number, stored.service_level_seconds) == (number, 30)
