"""Signing in and landing on one's own page."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_asked_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
    page = client.get("/accounts/login/").content.decode()
    assert 'name="username"' in page


def test_agents_land_on_the_console(agent_client):
    assert agent_client.get("/")["Location"] == reverse("agent:console")


def test_supervisors_land_on_the_dashboard(supervisor_client):
    assert supervisor_client.get("/")["Location"] == reverse("supervisor:overview")


def test_signing_in_lands_an_agent_on_the_console(client, agent):
    from tests.factories import PASSWORD

    response = client.post(
        "/accounts/login/", {"username": agent.username, "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("agent:console")
