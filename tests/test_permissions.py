"""Who reaches the admin, and with which model permissions."""

import pytest
from django import forms
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from campaigns.models import AGENTS_GROUP, SUPERVISORS_GROUP
from sms_channel.models import SmsChannel
from tests.factories import PASSWORD, AgentFactory, SmsChannelFactory

pytestmark = pytest.mark.django_db

SUPERVISED_APPS = ("campaigns", "sms_channel", "bots")
ACTIONS = ("add", "change", "delete", "view")
CHANNELS = "/admin/sms_channel/smschannel/"


def browser_post_data(response) -> dict:
    """What a browser posts back for the unchanged admin form in `response`."""
    data = {}
    forms_to_send = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update(
            {management.add_prefix(name): management[name].value() for name in management.fields}
        )
        forms_to_send.extend(inline.formset.forms)
    for form in forms_to_send:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field, forms.BooleanField):
                if value:
                    data[bound.html_name] = "on"
            elif isinstance(value, list | tuple):
                data[bound.html_name] = [getattr(item, "pk", item) for item in value]
            elif value is not None:
                data[bound.html_name] = getattr(value, "pk", value)
    return data


def test_both_groups_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {AGENTS_GROUP, SUPERVISORS_GROUP}


@pytest.mark.parametrize("app_label", SUPERVISED_APPS)
def test_supervisors_may_add_change_delete_and_view_every_model(app_label):
    granted = set(
        Group.objects.get(name=SUPERVISORS_GROUP).permissions.values_list(
            "content_type__app_label", "codename"
        )
    )

    models = list(apps.get_app_config(app_label).get_models())
    assert models
    for model in models:
        # Proxy models (campaigns.Agent) have permissions of their own.
        content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
        for action in ACTIONS:
            codename = f"{action}_{model._meta.model_name}"
            assert Permission.objects.filter(content_type=content_type, codename=codename).exists()
            assert (content_type.app_label, codename) in granted, codename


def test_supervisors_get_no_permission_outside_the_contact_center():
    labels = set(
        Group.objects.get(name=SUPERVISORS_GROUP).permissions.values_list(
            "content_type__app_label", flat=True
        )
    )

    assert labels == set(SUPERVISED_APPS)


def test_agents_have_no_permissions():
    assert not Group.objects.get(name=AGENTS_GROUP).permissions.exists()


def test_supervisor_opens_the_admin_and_the_sms_channels(supervisor_client):
    channel = SmsChannelFactory()

    assert supervisor_client.get("/admin/").status_code == 200
    changelist = supervisor_client.get(CHANNELS)
    assert changelist.status_code == 200
    assert list(changelist.context["cl"].result_list) == [channel]
    change_form = supervisor_client.get(f"{CHANNELS}{channel.pk}/change/")
    assert change_form.status_code == 200


def test_supervisor_changes_an_sms_channel(supervisor_client):
    channel = SmsChannelFactory(strategy=SmsChannel.Strategy.RINGALL, service_level_seconds=20)
    url = f"{CHANNELS}{channel.pk}/change/"
    data = browser_post_data(supervisor_client.get(url))

    response = supervisor_client.post(
        url, {**data, "strategy": "leastrecent", "service_level_seconds": "45"}
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    channel.refresh_from_db()
    assert channel.strategy == SmsChannel.Strategy.LEASTRECENT
    assert channel.service_level_seconds == 45


def test_supervisor_cannot_open_the_user_admin(supervisor_client):
    # Users and groups would let a supervisor make themselves superuser.
    assert supervisor_client.get("/admin/auth/user/").status_code == 403
    assert supervisor_client.get("/admin/auth/group/").status_code == 403


@pytest.mark.parametrize("is_staff", [False, True])
@pytest.mark.parametrize("path", ["/admin/", CHANNELS])
def test_agent_cannot_reach_the_admin(client, is_staff, path):
    channel = SmsChannelFactory()
    agent = AgentFactory(is_staff=is_staff)
    # Even with every permission granted by mistake, being an agent wins.
    agent.user_permissions.add(*Permission.objects.filter(content_type__app_label="sms_channel"))
    client.force_login(agent)

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    response = client.post(f"{CHANNELS}{channel.pk}/change/", {"strategy": "random"})
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.strategy == SmsChannel.Strategy.RINGALL


@pytest.mark.parametrize("path", ["/admin/", CHANNELS, "/admin/bots/bot/"])
def test_anonymous_is_sent_to_the_login_page(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


def test_agent_flagged_as_staff_logs_in_but_never_sees_the_admin(client):
    AgentFactory(username="agent7", is_staff=True)

    response = client.post(
        "/admin/login/",
        {"username": "agent7", "password": PASSWORD, "next": "/admin/"},
        follow=True,
    )

    assert [url for url, _ in response.redirect_chain] == ["/admin/", "/admin/login/?next=/admin/"]
    assert "admin/login.html" in [t.name for t in response.templates]
    assert "not authorized to access this page" in response.content.decode()
