import re
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from campaigns.models import AGENTS_GROUP, SUPERVISORS_GROUP, Campaign
from sms_channel.models import Connector, SmsChannel
from tests.factories import AgentFactory, ConnectorFactory, PhoneNumberFactory, SmsChannelFactory

pytestmark = pytest.mark.django_db

SNAPSHOT_MODELS = [
    User,
    User.groups.through,
    *apps.get_app_config("campaigns").get_models(),
    *apps.get_app_config("sms_channel").get_models(),
    *apps.get_app_config("bots").get_models(),
]


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, list[dict]]:
    """Every row of every model the demo could touch, password hashes included."""
    return {
        model._meta.label: list(model._base_manager.order_by("pk").values())
        for model in SNAPSHOT_MODELS
    }


def login_line(output: str, username: str) -> str:
    return re.search(rf"^ +\w+ +{username} +password .*$", output, re.MULTILINE).group(0)


def printed_password(output: str, username: str) -> str:
    return re.search(r" password (\S+)", login_line(output, username)).group(1)


def test_seed_creates_the_demo():
    output = seed()

    assert not User.objects.filter(is_superuser=True).exists()
    supervisor = User.objects.get(username="supervisor")
    assert supervisor.is_staff
    assert list(supervisor.groups.values_list("name", flat=True)) == [SUPERVISORS_GROUP]
    assert supervisor.check_password(printed_password(output, "supervisor"))
    for username in ("agent1", "agent2"):
        agent = User.objects.get(username=username)
        assert not agent.is_staff
        assert list(agent.groups.values_list("name", flat=True)) == [AGENTS_GROUP]
        assert agent.agent_profile.capacity == 3
        assert agent.check_password(printed_password(output, username))

    campaign = Campaign.objects.get(name="Demo")
    assert campaign.active
    assert not campaign.opening_hours.exists()
    assert not campaign.holidays.exists()
    assert [m.agent.username for m in campaign.members.all()] == ["agent1", "agent2"]
    assert set(campaign.dispositions.values_list("name", flat=True)) == {
        "Resolved",
        "Follow-up",
        "Not interested",
    }

    connector = Connector.objects.get(name="Simulator")
    assert connector.provider == Connector.Provider.SIMULATOR
    assert connector.opt_out_list.is_opt_out_list
    assert list(connector.phone_numbers.values_list("number", flat=True)) == ["+15555550100"]

    channel = campaign.sms_channel
    assert channel.status == SmsChannel.Status.ENABLED
    assert channel.connector == connector
    assert channel.phone_number.number == "+15555550100"
    assert channel.strategy == SmsChannel.Strategy.LEASTRECENT
    assert channel.service_level_seconds == 20


def test_seed_twice_changes_nothing():
    first_output = seed()
    after_first = snapshot()

    second_output = seed()

    assert snapshot() == after_first
    assert "already there" in second_output
    for username in ("supervisor", "agent1", "agent2"):
        assert printed_password(second_output, username) == printed_password(first_output, username)
        assert "existed before: password not reset" in login_line(second_output, username)


def test_output_gives_the_urls_and_logins():
    output = seed()

    assert login_line(output, "supervisor").endswith("http://127.0.0.1:8000/supervisor/")
    assert login_line(output, "agent1").endswith("http://127.0.0.1:8000/agent/")
    assert "http://127.0.0.1:8000/admin/\n" in output
    channel = SmsChannel.objects.get()
    assert f"http://127.0.0.1:8000/admin/sms_channel/smschannel/{channel.pk}/change/" in output
    for username in ("supervisor", "agent1", "agent2"):
        assert printed_password(output, username)
    assert "existed before" not in output
    assert "+15555550100" in output


def test_output_uses_the_public_base_url(settings):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"

    output = seed()

    assert "https://cc.example.com/admin/" in output
    assert "127.0.0.1" not in output


def test_supervisor_logs_in_with_the_printed_password_and_sees_the_demo(client):
    output = seed()

    assert client.login(username="supervisor", password=printed_password(output, "supervisor"))
    assert client.get("/admin/").status_code == 200
    response = client.get("/admin/campaigns/campaign/")
    assert response.status_code == 200
    assert [campaign.name for campaign in response.context["cl"].result_list] == ["Demo"]


def test_agent_logs_in_but_not_to_the_admin(client):
    output = seed()

    assert client.login(username="agent1", password=printed_password(output, "agent1"))
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_an_existing_user_keeps_its_password():
    agent = AgentFactory(username="agent1")
    password_hash = agent.password

    output = seed()

    agent.refresh_from_db()
    assert agent.password == password_hash
    assert "existed before" in login_line(output, "agent1")
    assert "existed before" not in login_line(output, "agent2")
    assert Campaign.objects.get(name="Demo").members.filter(agent=agent).exists()


def test_an_existing_user_gets_the_demo_role():
    User.objects.create_user(username="supervisor", password="something-else-entirely")

    seed()

    supervisor = User.objects.get(username="supervisor")
    assert supervisor.is_staff
    assert supervisor.groups.filter(name=SUPERVISORS_GROUP).exists()
    assert supervisor.check_password("something-else-entirely")


def test_a_failure_leaves_nothing_behind():
    # The demo number already serves another campaign's enabled channel, on a
    # "Simulator" connector that the seed gives an opt-out list before it fails.
    simulator = ConnectorFactory(name="Simulator")
    SmsChannelFactory(phone_number=PhoneNumberFactory(number="+15555550100", connector=simulator))
    before = snapshot()

    with pytest.raises(CommandError, match="already serves another enabled SMS channel"):
        seed()

    assert snapshot() == before
    assert not Group.objects.get(name=SUPERVISORS_GROUP).user_set.exists()
