"""/api/agents/me/status/ and /api/agents/<id>/status/: through agent_set_status."""

import pytest

from campaigns.models import AgentProfile, AgentStatusEvent
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/agents/me/status/"
JSON = "application/json"


def status_url(user) -> str:
    return f"/api/agents/{user.pk}/status/"


def profile_of(user) -> AgentProfile:
    return AgentProfile.objects.get(user=user)


# The agent's own status --------------------------------------------------------------


def test_anonymous_gets_401(client):
    agent = AgentFactory()

    assert client.get(ME).status_code == 401
    assert client.patch(ME, {"status": "available"}, content_type=JSON).status_code == 401
    assert client.patch(status_url(agent), {"status": "break"}, content_type=JSON).status_code == (
        401
    )
    assert profile_of(agent).status == AgentProfile.Status.OFFLINE


def test_agent_reads_their_status(agent, agent_client):
    response = agent_client.get(ME)

    assert response.status_code == 200
    assert response.json()["status"] == "offline"
    assert response.json()["agent"]["id"] == agent.pk


@pytest.mark.parametrize("method", ["put", "patch"])
def test_agent_changes_their_status_with_an_event(agent, agent_client, method):
    response = getattr(agent_client, method)(
        ME, {"status": "break", "reason": "lunch"}, content_type=JSON
    )

    assert response.status_code == 200
    assert response.json()["status"] == "break"
    assert profile_of(agent).status == AgentProfile.Status.BREAK
    event = AgentStatusEvent.objects.get(agent=agent)
    assert (event.from_status, event.to_status, event.changed_by, event.reason) == (
        "offline",
        "break",
        agent,
        "lunch",
    )


def test_invalid_status_is_400_and_changes_nothing(agent, agent_client):
    response = agent_client.put(ME, {"status": "asleep"}, content_type=JSON)

    assert response.status_code == 400
    assert "status" in response.json()
    assert profile_of(agent).status == AgentProfile.Status.OFFLINE
    assert not AgentStatusEvent.objects.exists()


def test_put_needs_a_status(agent_client):
    response = agent_client.put(ME, {"reason": "lunch"}, content_type=JSON)

    assert response.status_code == 400
    assert "status" in response.json()


def test_patch_without_status_changes_nothing(agent, agent_client):
    response = agent_client.patch(ME, {}, content_type=JSON)

    assert response.status_code == 200
    assert response.json()["status"] == "offline"
    assert not AgentStatusEvent.objects.exists()


def test_a_user_who_is_not_an_agent_has_no_status(supervisor, supervisor_client):
    response = supervisor_client.patch(ME, {"status": "available"}, content_type=JSON)

    assert response.status_code == 403
    assert not AgentProfile.objects.filter(user=supervisor).exists()


# Another agent's status ----------------------------------------------------------------


def test_agent_cannot_read_or_set_another_agents_status(agent_client):
    other = AgentFactory()

    assert agent_client.get(status_url(other)).status_code == 403
    response = agent_client.patch(status_url(other), {"status": "available"}, content_type=JSON)
    assert response.status_code == 403
    assert profile_of(other).status == AgentProfile.Status.OFFLINE


def test_supervisor_sets_an_agents_status_as_themselves(supervisor, supervisor_client):
    agent = AgentFactory()

    response = supervisor_client.patch(
        status_url(agent), {"status": "available", "reason": "shift start"}, content_type=JSON
    )

    assert response.status_code == 200
    assert response.json()["status"] == "available"
    assert response.json()["agent"]["id"] == agent.pk
    assert profile_of(agent).status == AgentProfile.Status.AVAILABLE
    event = AgentStatusEvent.objects.get(agent=agent)
    assert (event.to_status, event.changed_by, event.reason) == (
        "available",
        supervisor,
        "shift start",
    )


def test_supervisor_reads_an_agents_status(supervisor_client):
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).update(status=AgentProfile.Status.BREAK)

    response = supervisor_client.get(status_url(agent))

    assert response.status_code == 200
    assert response.json()["status"] == "break"


def test_an_agent_without_a_profile_reads_as_offline(supervisor_client):
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).delete()

    response = supervisor_client.get(status_url(agent))

    assert response.status_code == 200
    assert response.json()["status"] == "offline"
    assert response.json()["status_changed_at"] is None


def test_status_of_a_user_who_is_not_an_agent_is_404(supervisor, supervisor_client):
    user = UserFactory()

    assert supervisor_client.get(status_url(user)).status_code == 404
    response = supervisor_client.patch(
        status_url(supervisor), {"status": "break"}, content_type=JSON
    )
    assert response.status_code == 404
    assert not AgentStatusEvent.objects.exists()
