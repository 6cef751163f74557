"""Token authentication, the OpenAPI schema, the docs page, and no secrets anywhere."""

import re

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.authtoken.models import Token

from campaigns.models import Interaction
from sms_channel.models import Message
from tests.factories import (
    BlacklistEntryFactory,
    InteractionFactory,
    PhoneNumberFactory,
    SmsChannelFactory,
    TwilioConnectorFactory,
)

pytestmark = pytest.mark.django_db


# Token authentication -----------------------------------------------------------------


def test_token_authenticates(client, supervisor):
    token = Token.objects.create(user=supervisor)
    InteractionFactory()

    response = client.get("/api/interactions/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_a_wrong_token_is_401(client, supervisor):
    Token.objects.create(user=supervisor)

    response = client.get("/api/interactions/", HTTP_AUTHORIZATION="Token not-the-key")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_an_agents_token_sees_only_their_interactions(client, agent):
    token = Token.objects.create(user=agent)
    own = InteractionFactory(status=Interaction.Status.ASSIGNED, agent=agent)
    InteractionFactory()

    response = client.get("/api/interactions/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert [row["id"] for row in response.json()["results"]] == [own.pk]


# Schema and docs ----------------------------------------------------------------------------


def test_schema_is_valid_and_generated_without_warnings():
    GENERATOR_STATS.reset()

    schema = SchemaGenerator().get_schema(request=None, public=True)

    validate_schema(schema)
    assert dict(GENERATOR_STATS._warn_cache) == {}
    assert dict(GENERATOR_STATS._error_cache) == {}
    assert {
        "/api/interactions/",
        "/api/interactions/{id}/",
        "/api/campaigns/",
        "/api/campaigns/{campaign_id}/statistics/",
        "/api/blacklists/",
        "/api/blacklists/{blacklist_id}/entries/",
        "/api/blacklists/{blacklist_id}/entries/bulk-add/",
        "/api/blacklists/{blacklist_id}/entries/bulk-remove/",
        "/api/agents/me/status/",
        "/api/agents/{agent_id}/status/",
    } <= set(schema["paths"])


def test_schema_endpoint_needs_authentication(client, supervisor):
    token = Token.objects.create(user=supervisor)

    assert client.get("/api/schema/").status_code == 401
    response = client.get("/api/schema/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert b"/api/interactions/" in response.content


def test_docs_page_sends_anonymous_visitors_to_sign_in(client):
    response = client.get("/api/docs/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/api/docs/")


@pytest.mark.parametrize("user", ["supervisor", "agent"])
def test_docs_page_works_signed_in_with_local_assets_only(client, request, user):
    client.force_login(request.getfixturevalue(user))

    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)
    assert len(assets) == 4  # bundle, preset, stylesheet, favicon
    for url in assets:
        assert url.startswith("/static/"), url
        assert finders.find(url.removeprefix("/static/")), url
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)
    assert '"/api/schema/"' in html


def test_docs_page_loads_the_schema_with_the_session(supervisor_client):
    html = supervisor_client.get("/api/docs/").content.decode()
    schema_url = re.search(r'url: "([^"]+)"', html).group(1)

    assert supervisor_client.get(schema_url).status_code == 200


# Secrets ---------------------------------------------------------------------------------


def test_no_connector_secret_in_any_response(supervisor, supervisor_client):
    connector = TwilioConnectorFactory(auth_token="s3cr3t-auth-token-0123456789abcdef")
    channel = SmsChannelFactory(phone_number=PhoneNumberFactory(connector=connector))
    interaction = InteractionFactory(
        campaign=channel.campaign, status=Interaction.Status.ASSIGNED, agent=supervisor
    )
    Message.objects.create(
        channel=channel,
        interaction=interaction,
        direction=Message.Direction.INBOUND,
        sender=Message.Sender.CUSTOMER,
        from_number=interaction.customer_number,
        to_number=channel.phone_number.number,
        body="Hi",
        status=Message.Status.RECEIVED,
        provider_sid="SM0123",
    )
    entry = BlacklistEntryFactory()
    token = Token.objects.create(user=supervisor)
    urls = [
        "/api/interactions/",
        f"/api/interactions/{interaction.pk}/",
        "/api/campaigns/",
        f"/api/campaigns/{channel.campaign_id}/statistics/",
        "/api/blacklists/",
        f"/api/blacklists/{entry.blacklist_id}/entries/",
        "/api/schema/",
        "/api/docs/",
    ]

    for url in urls:
        response = supervisor_client.get(url)
        assert response.status_code == 200, url
        assert b"s3cr3t-auth-token" not in response.content, url
        assert token.key.encode() not in response.content, url
