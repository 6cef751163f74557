import pytest
from django.db import connection

from contactcenter.crypto import decrypt, mask
from sms_channel.models import Connector
from tests.factories import TwilioConnectorFactory

pytestmark = pytest.mark.django_db

TOKEN = "0123456789abcdef0123456789abcdef"


def raw_auth_token(connector: Connector) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_token FROM sms_channel_connector WHERE id = %s", [connector.pk])
        return cursor.fetchone()[0]


def test_auth_token_is_stored_encrypted_and_decrypts_back():
    connector = TwilioConnectorFactory(auth_token=TOKEN)

    raw = raw_auth_token(connector)

    assert TOKEN not in raw
    assert TOKEN[-8:] not in raw
    assert decrypt(raw) == TOKEN
    assert Connector.objects.get(pk=connector.pk).auth_token == TOKEN


def test_each_save_encrypts_with_a_new_salt():
    connector = TwilioConnectorFactory(auth_token=TOKEN)
    first = raw_auth_token(connector)

    connector.save()

    assert raw_auth_token(connector) != first
    assert decrypt(raw_auth_token(connector)) == TOKEN


def test_empty_token_is_stored_empty():
    connector = TwilioConnectorFactory(auth_token="")

    assert raw_auth_token(connector) == ""


def test_mask_shows_only_the_last_four_characters():
    assert mask(TOKEN) == "••••cdef"
    assert mask("") == ""
