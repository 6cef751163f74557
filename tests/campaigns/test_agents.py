import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import AGENTS_GROUP, Agent, AgentProfile
from campaigns.services import agent_create, agent_update
from tests.factories import PASSWORD, AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:campaigns_agent_add")
CHANGELIST_URL = reverse("admin:campaigns_agent_changelist")
NEW_PASSWORD = "a-long-and-unusual-passphrase-42"
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "user_permissions", "groups")


def change_url(user: User) -> str:
    return reverse("admin:campaigns_agent_change", args=[user.pk])


def password_url(user: User) -> str:
    return reverse("admin:campaigns_agent_password", args=[user.pk])


def test_agent_create_makes_an_agent_who_is_not_staff():
    user = agent_create(
        username="alice",
        password=NEW_PASSWORD,
        first_name="Alice",
        last_name="Liddell",
        email="alice@example.com",
        capacity=5,
    )

    user.refresh_from_db()
    assert (user.first_name, user.last_name, user.email) == (
        "Alice",
        "Liddell",
        "alice@example.com",
    )
    assert user.check_password(NEW_PASSWORD)
    assert not user.is_staff
    assert not user.is_superuser
    assert user.is_active
    assert list(user.groups.values_list("name", flat=True)) == [AGENTS_GROUP]
    assert not user.user_permissions.exists()
    assert user.agent_profile.capacity == 5
    assert user.agent_profile.status == AgentProfile.Status.OFFLINE
    assert list(Agent.objects.all()) == [user]


def test_agent_create_defaults():
    user = agent_create(username="bob", password=NEW_PASSWORD)

    assert user.agent_profile.capacity == 3
    assert user.get_full_name() == ""


def test_agent_create_writes_nothing_when_the_profile_is_invalid():
    with pytest.raises(ValidationError) as excinfo:
        agent_create(username="carol", password=NEW_PASSWORD, capacity=0)

    assert "capacity" in excinfo.value.message_dict
    assert not User.objects.filter(username="carol").exists()
    assert not AgentProfile.objects.exists()


def test_agent_create_refuses_a_taken_username():
    UserFactory(username="dave")

    with pytest.raises(ValidationError) as excinfo:
        agent_create(username="dave", password=NEW_PASSWORD)

    assert excinfo.value.message_dict == {"username": ["A user with that username already exists."]}
    assert User.objects.filter(username="dave").count() == 1


def test_agent_update_takes_a_deactivated_agent_offline():
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).update(status=AgentProfile.Status.AVAILABLE)
    before = timezone.now()

    agent_update(agent=agent, first_name="E", last_name="F", email="", is_active=False, capacity=2)

    agent.refresh_from_db()
    profile = agent.agent_profile
    assert not agent.is_active
    assert (profile.status, profile.capacity) == (AgentProfile.Status.OFFLINE, 2)
    assert profile.status_changed_at >= before


def test_agent_update_gives_a_profile_to_an_agent_without_one():
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).delete()

    agent_update(agent=agent, first_name="", last_name="", email="", is_active=True, capacity=7)

    assert AgentProfile.objects.get(user=agent).capacity == 7


def add_form(**overrides) -> dict:
    return {
        "username": "frank",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        "first_name": "Frank",
        "last_name": "Castle",
        "email": "frank@example.com",
        "capacity": "4",
        **overrides,
    }


def test_supervisor_adds_an_agent(supervisor_client, supervisor):
    response = supervisor_client.post(ADD_URL, add_form())

    user = User.objects.get(username="frank")
    assert response.status_code == 302
    assert response["Location"] == CHANGELIST_URL
    assert user.check_password(NEW_PASSWORD)
    assert (user.is_staff, user.is_superuser) == (False, False)
    assert user.groups.get().name == AGENTS_GROUP
    assert user.agent_profile.capacity == 4
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_id, entry.is_addition()) == (supervisor, str(user.pk), True)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"password2": "something-else-entirely"}, "password2", "didn’t match"),
        ({"password1": "frank", "password2": "frank"}, "password2", "too short"),
        ({"username": "Supervisor-X"}, "username", "A user with that username already exists."),
        ({"capacity": "0"}, "capacity", "Capacity must be at least 1."),
        ({"capacity": "51"}, "capacity", "less than or equal to 50"),
        ({"username": ""}, "username", "This field is required."),
    ],
)
def test_invalid_agent_add_form_creates_nothing(supervisor_client, overrides, field, message):
    UserFactory(username="supervisor-x")
    users_before = User.objects.count()

    response = supervisor_client.post(ADD_URL, add_form(**overrides))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(message in error for error in errors[field])
    assert message in response.content.decode()
    assert User.objects.count() == users_before
    assert not AgentProfile.objects.filter(user__username="frank").exists()


def test_add_form_asks_for_no_privileges(supervisor_client):
    html = supervisor_client.get(ADD_URL).content.decode()

    for name in ("username", "password1", "password2", "capacity", "email"):
        assert f'name="{name}"' in html
    for name in PRIVILEGE_FIELDS:
        assert f'name="{name}"' not in html


def test_change_form_never_shows_or_takes_privileges(supervisor_client):
    agent = AgentFactory(first_name="Old", last_name="Name")
    html = supervisor_client.get(change_url(agent)).content.decode()
    for name in PRIVILEGE_FIELDS:
        assert f'name="{name}"' not in html
    assert "pbkdf2" not in html
    assert password_url(agent) in html

    response = supervisor_client.post(
        change_url(agent),
        {
            "first_name": "New",
            "last_name": "Name",
            "email": "new@example.com",
            "is_active": "on",
            "capacity": "6",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": ["1", "2"],
        },
    )

    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.first_name, agent.email, agent.agent_profile.capacity) == (
        "New",
        "new@example.com",
        6,
    )
    assert (agent.is_staff, agent.is_superuser) == (False, False)
    assert list(agent.groups.values_list("name", flat=True)) == [AGENTS_GROUP]


def test_change_form_shows_the_current_capacity(supervisor_client):
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).update(capacity=9)

    response = supervisor_client.get(change_url(agent))

    html = response.content.decode()
    assert response.context["adminform"].form["capacity"].value() == 9
    assert 'name="capacity" value="9"' in html
    assert re.search(r'field-last_seen.*?<div class="readonly">-</div>', html, re.DOTALL)


def test_deactivating_an_agent_in_the_admin_takes_them_offline(supervisor_client):
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).update(status=AgentProfile.Status.AVAILABLE)

    response = supervisor_client.post(change_url(agent), {"capacity": "3"})

    assert response.status_code == 302
    agent.refresh_from_db()
    assert not agent.is_active
    assert agent.agent_profile.status == AgentProfile.Status.OFFLINE


def test_agent_list_shows_agents_only_with_their_profile(supervisor_client, supervisor):
    agent = AgentFactory(username="zed", first_name="Zed", last_name="Zulu")
    AgentProfile.objects.filter(user=agent).update(status=AgentProfile.Status.AVAILABLE, capacity=8)
    outsider = UserFactory(username="not-an-agent")

    response = supervisor_client.get(CHANGELIST_URL)

    assert list(response.context["cl"].result_list) == [agent]
    html = response.content.decode()
    assert "Zed Zulu" in html
    assert "Available" in html
    assert '<td class="field-capacity">8</td>' in html
    assert outsider.username not in html


def test_agent_list_runs_the_same_queries_for_more_agents(
    supervisor_client, django_assert_num_queries
):
    AgentFactory()
    supervisor_client.get(CHANGELIST_URL)
    with CaptureQueriesContext(connection) as one:
        supervisor_client.get(CHANGELIST_URL)
    AgentFactory.create_batch(5)

    with django_assert_num_queries(len(one)):
        response = supervisor_client.get(CHANGELIST_URL)
    assert len(response.context["cl"].result_list) == 6


def test_supervisor_sets_an_agents_password(supervisor_client):
    agent = AgentFactory()

    page = supervisor_client.get(password_url(agent))
    response = supervisor_client.post(
        password_url(agent), {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    assert 'name="new_password1"' in page.content.decode()
    assert response.status_code == 302
    assert response["Location"] == change_url(agent)
    agent.refresh_from_db()
    assert agent.check_password(NEW_PASSWORD)


def test_mismatched_new_passwords_change_nothing(supervisor_client):
    agent = AgentFactory()

    response = supervisor_client.post(
        password_url(agent), {"new_password1": NEW_PASSWORD, "new_password2": "other-one-9876"}
    )

    assert response.status_code == 200
    assert "didn’t match" in response.content.decode()
    agent.refresh_from_db()
    assert agent.check_password(PASSWORD)


def test_a_superuser_in_the_agents_group_is_out_of_a_supervisors_reach(supervisor_client):
    boss = AgentFactory(is_superuser=True, is_staff=True)

    password_response = supervisor_client.post(
        password_url(boss), {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    change_response = supervisor_client.post(
        change_url(boss), {"first_name": "Pwned", "capacity": "3"}
    )

    assert password_response.status_code == 403
    assert change_response.status_code == 403
    boss.refresh_from_db()
    assert boss.check_password(PASSWORD)
    assert boss.is_active
    assert boss.first_name != "Pwned"


def test_agent_profiles_are_read_only(supervisor_client):
    profile = AgentFactory().agent_profile

    add = supervisor_client.get(reverse("admin:campaigns_agentprofile_add"))
    change = supervisor_client.post(
        reverse("admin:campaigns_agentprofile_change", args=[profile.pk]), {"capacity": "9"}
    )

    assert add.status_code == 403
    assert change.status_code == 403
    profile.refresh_from_db()
    assert profile.capacity == 3


def test_agents_cannot_open_the_agent_admin(agent_client):
    response = agent_client.get(CHANGELIST_URL)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
