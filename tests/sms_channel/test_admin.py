"""The supervisor's admin for connectors, phone numbers and SMS channels."""

import re

import pytest
from django import forms
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django.asserts import assertContains, assertNotContains

from campaigns.models import Blacklist
from contactcenter.crypto import decrypt
from sms_channel.models import Connector, SmsChannel
from tests.factories import (
    BlacklistFactory,
    BotFactory,
    CampaignFactory,
    ConnectorFactory,
    PhoneNumberFactory,
    SmsChannelFactory,
    TwilioConnectorFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SID = "AC" + "a" * 32
TOKEN = "7f3c9e2b5d1a4f60b8e7c3d2a1f09e8d"

CONNECTORS = "/admin/sms_channel/connector/"
NUMBERS = "/admin/sms_channel/phonenumber/"
CHANNELS = "/admin/sms_channel/smschannel/"
CAMPAIGNS = "/admin/campaigns/campaign/"
PHONE_NUMBERS_JSON = CHANNELS + "phone-numbers/"


def post_data(response) -> dict:
    """The POST a browser would send for the admin form in `response`, unchanged."""
    form = response.context["adminform"].form
    forms_to_send = [form]
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        forms_to_send.extend(inline.formset.forms)
    for each in forms_to_send:
        for bound in each:
            value = bound.value()
            if isinstance(bound.field, forms.BooleanField):
                if value:
                    data[bound.html_name] = "on"
            elif isinstance(value, list | tuple):
                data[bound.html_name] = [getattr(item, "pk", item) for item in value]
            else:
                data[bound.html_name] = "" if value is None else getattr(value, "pk", value)
    return data


def new_connector_data(**overrides) -> dict:
    return {
        "name": "Acme",
        "provider": "twilio",
        "active": "on",
        "account_sid": SID,
        "auth_token": TOKEN,
        "messaging_service_sid": "",
        "phone_numbers-TOTAL_FORMS": "1",
        "phone_numbers-INITIAL_FORMS": "0",
        "phone_numbers-MIN_NUM_FORMS": "0",
        "phone_numbers-MAX_NUM_FORMS": "1000",
        "phone_numbers-0-number": "+14155550100",
        "phone_numbers-0-label": "Main line",
        **overrides,
    }


def new_channel_data(*, campaign, number, **overrides) -> dict:
    return {
        "campaign": campaign.pk,
        "status": "enabled",
        "connector": number.connector_id if number else "",
        "phone_number": number.pk if number else "",
        "strategy": "leastrecent",
        "service_level_seconds": "30",
        "max_interactions": "10",
        "queue_full_message": "",
        "max_transfer_seconds": "60",
        "max_queue_seconds": "600",
        "out_of_hours_message": "We are closed.",
        "out_of_hours_repeat_hours": "12",
        "inbound_blacklists": [],
        "outbound_blacklists": [],
        "bot_on_start": "",
        "bot_on_finish": "",
        "bot_after_timeout": "",
        **overrides,
    }


def form_errors(response) -> dict:
    return response.context["adminform"].form.errors


def select_options(html: str, name: str) -> list[str]:
    select = re.search(rf'<select name="{name}".*?</select>', html, re.S)
    assert select, f"no <select name={name}>"
    return re.findall(r'<option value="(\d+)"', select.group(0))


# Connectors


def test_supervisor_adds_a_twilio_connector_with_a_number(supervisor_client):
    response = supervisor_client.post(CONNECTORS + "add/", new_connector_data())

    assert response.status_code == 302
    connector = Connector.objects.get(name="Acme")
    assert (connector.provider, connector.account_sid, connector.auth_token) == (
        "twilio",
        SID,
        TOKEN,
    )
    assert list(connector.phone_numbers.values_list("number", "label")) == [
        ("+14155550100", "Main line")
    ]
    assert connector.opt_out_list.name == "Opt-outs: Acme"
    assert connector.opt_out_list.is_opt_out_list


def test_new_twilio_connector_without_token_is_refused(supervisor_client):
    response = supervisor_client.post(CONNECTORS + "add/", new_connector_data(auth_token=""))

    assert response.status_code == 200
    assert form_errors(response) == {"auth_token": ["A Twilio connector needs its Auth Token."]}
    assertContains(response, "A Twilio connector needs its Auth Token.")
    assert not Connector.objects.exists()
    assert not Blacklist.objects.exists()


def test_invalid_post_does_not_echo_the_typed_token(supervisor_client):
    response = supervisor_client.post(CONNECTORS + "add/", new_connector_data(account_sid="AC1"))

    assert "account_sid" in form_errors(response)
    assertNotContains(response, TOKEN)


def test_changelist_shows_masked_token_and_number_count(supervisor_client):
    connector = TwilioConnectorFactory(name="Acme", auth_token=TOKEN)
    PhoneNumberFactory.create_batch(2, connector=connector)
    ConnectorFactory(name="Demo")

    response = supervisor_client.get(CONNECTORS)

    assertNotContains(response, TOKEN)
    html = response.content.decode()
    acme_row = re.search(r"<tr>.*?Acme.*?</tr>", html, re.S).group(0)
    assert "••••9e8d" in acme_row
    assert '<td class="field-phone_number_count">2</td>' in acme_row


def test_change_form_never_shows_the_token(supervisor_client):
    connector = TwilioConnectorFactory(auth_token=TOKEN)

    response = supervisor_client.get(f"{CONNECTORS}{connector.pk}/change/")

    assertNotContains(response, TOKEN)
    assertContains(response, "Current token: ••••9e8d; leave empty to keep it")
    assert re.search(
        r'<input type="password" name="auth_token"(?![^>]*value=)[^>]*>', str(response.content)
    )


def test_empty_token_on_edit_keeps_the_stored_one(supervisor_client):
    connector = TwilioConnectorFactory(name="Acme", auth_token=TOKEN)
    page = supervisor_client.get(f"{CONNECTORS}{connector.pk}/change/")
    data = post_data(page)
    assert data["auth_token"] == ""

    response = supervisor_client.post(
        f"{CONNECTORS}{connector.pk}/change/", {**data, "name": "Acme US"}
    )

    assert response.status_code == 302
    connector.refresh_from_db()
    assert (connector.name, connector.auth_token) == ("Acme US", TOKEN)


def test_a_typed_token_replaces_the_stored_one(supervisor_client):
    connector = TwilioConnectorFactory(auth_token=TOKEN)
    data = post_data(supervisor_client.get(f"{CONNECTORS}{connector.pk}/change/"))

    supervisor_client.post(f"{CONNECTORS}{connector.pk}/change/", {**data, "auth_token": "b" * 32})

    connector.refresh_from_db()
    assert connector.auth_token == "b" * 32


def test_editing_keeps_one_opt_out_list(supervisor_client):
    supervisor_client.post(CONNECTORS + "add/", new_connector_data())
    connector = Connector.objects.get(name="Acme")
    opt_out_list_id = connector.opt_out_list_id

    for name in ("Acme 2", "Acme 3"):
        data = post_data(supervisor_client.get(f"{CONNECTORS}{connector.pk}/change/"))
        supervisor_client.post(f"{CONNECTORS}{connector.pk}/change/", {**data, "name": name})

    connector.refresh_from_db()
    assert (connector.name, connector.opt_out_list_id) == ("Acme 3", opt_out_list_id)
    assert Blacklist.objects.filter(is_opt_out_list=True).count() == 1


def test_connector_added_from_the_channel_form_popup_is_sent_back_without_token(
    supervisor_client,
):
    response = supervisor_client.post(
        CONNECTORS + "add/?_to_field=id&_popup=1",
        new_connector_data(_popup="1", _to_field="id"),
    )

    connector = Connector.objects.get(name="Acme")
    assertContains(response, f"&quot;value&quot;: &quot;{connector.pk}&quot;")
    assertContains(response, "&quot;obj&quot;: &quot;Acme&quot;")
    assertNotContains(response, TOKEN)


def test_number_added_from_the_channel_form_starts_on_the_chosen_connector(supervisor_client):
    connector = ConnectorFactory(name="Acme")

    response = supervisor_client.get(
        f"{NUMBERS}add/?_to_field=id&_popup=1&connector={connector.pk}"
    )

    assertContains(response, f'<option value="{connector.pk}" selected>Acme</option>')


def test_token_is_absent_from_history_and_delete_pages(supervisor_client):
    supervisor_client.post(
        CONNECTORS + "add/", new_connector_data(**{"phone_numbers-TOTAL_FORMS": "0"})
    )
    connector = Connector.objects.get(name="Acme")
    data = post_data(supervisor_client.get(f"{CONNECTORS}{connector.pk}/change/"))
    supervisor_client.post(f"{CONNECTORS}{connector.pk}/change/", {**data, "auth_token": TOKEN})

    history = supervisor_client.get(f"{CONNECTORS}{connector.pk}/history/")
    delete = supervisor_client.get(f"{CONNECTORS}{connector.pk}/delete/")

    assertContains(history, "Changed Auth Token.")
    assertNotContains(history, TOKEN)
    assertContains(delete, "Acme")
    assertNotContains(delete, TOKEN)


def test_token_is_stored_encrypted_through_the_admin(supervisor_client):
    supervisor_client.post(CONNECTORS + "add/", new_connector_data())

    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_token FROM sms_channel_connector WHERE name = %s", ["Acme"])
        raw = cursor.fetchone()[0]
    assert TOKEN not in raw
    assert decrypt(raw) == TOKEN


def test_connector_changelist_query_count_does_not_grow_with_rows(supervisor_client):
    PhoneNumberFactory(connector=TwilioConnectorFactory())
    with CaptureQueriesContext(connection) as one:
        supervisor_client.get(CONNECTORS)
    PhoneNumberFactory.create_batch(4, connector=TwilioConnectorFactory())
    ConnectorFactory.create_batch(3)
    with CaptureQueriesContext(connection) as many:
        response = supervisor_client.get(CONNECTORS)

    assertContains(response, "5 connectors")
    assert len(many) == len(one)


# Phone numbers


def test_phone_number_list_shows_connector_and_channel(supervisor_client):
    channel = SmsChannelFactory(
        campaign__name="Support", phone_number__number="+14155550123", phone_number__label="Main"
    )
    PhoneNumberFactory(number="+14155550999", connector=channel.connector)

    response = supervisor_client.get(NUMBERS)

    html = response.content.decode()
    row = re.search(r"<tr>.*?\+14155550123.*?</tr>", html, re.S).group(0)
    assert "Main" in row
    assert str(channel.connector) in row
    assert "Support (enabled)" in row


def test_phone_number_list_query_count_does_not_grow_with_rows(supervisor_client):
    SmsChannelFactory()
    with CaptureQueriesContext(connection) as one:
        supervisor_client.get(NUMBERS)
    SmsChannelFactory.create_batch(4)
    with CaptureQueriesContext(connection) as many:
        response = supervisor_client.get(NUMBERS)

    assertContains(response, "5 phone numbers")
    assert len(many) == len(one)


# SMS channel form


def test_channel_form_has_general_and_automations_in_order(supervisor_client):
    response = supervisor_client.get(CHANNELS + "add/")

    html = response.content.decode()
    headings = re.findall(r'<h2[^>]*class="fieldset-heading"[^>]*>(.*?)</h2>', html)
    assert headings == ["General", "Automations"]
    expected = [
        "campaign",
        "status",
        "connector",
        "phone_number",
        "strategy",
        "service_level_seconds",
        "max_interactions",
        "max_transfer_seconds",
        "max_queue_seconds",
        "out_of_hours_message",
        "inbound_blacklist_enabled",
        "inbound_blacklists",
        "outbound_blacklist_enabled",
        "outbound_blacklists",
    ]
    automations = ["bot_on_start", "bot_on_finish", "bot_after_timeout"]
    positions = [html.index(f'name="{name}"') for name in expected + automations]
    assert positions == sorted(positions)
    assert html.index(">General</h2>") < positions[0]
    assert positions[len(expected) - 1] < html.index(">Automations</h2>") < positions[-3]
    fieldsets = [(fs.name, list(fs.fields)) for fs in response.context["adminform"]]
    assert [name for name, _ in fieldsets] == ["General", "Automations"]
    general = [name for name in fieldsets[0][1] if name in expected]
    assert general == expected
    assert fieldsets[1][1] == automations


def test_channel_form_shows_model_help_texts_and_connector_add_link(supervisor_client):
    response = supervisor_client.get(CHANNELS + "add/")

    for name in ("phone_number", "max_queue_seconds", "bot_on_finish"):
        assertContains(response, SmsChannel._meta.get_field(name).help_text)
    assertContains(response, 'id="add_id_connector"')
    assertContains(response, 'href="/admin/sms_channel/connector/add/?_to_field=id&amp;_popup=1"')
    assertContains(response, '<script src="/static/sms_channel/channel_form.js"></script>')
    assert finders.find("sms_channel/channel_form.js")
    assertContains(response, f'data-options-url="{PHONE_NUMBERS_JSON}"')


def test_add_form_preselects_the_campaign_from_the_query(supervisor_client):
    campaign = CampaignFactory(name="Support")

    response = supervisor_client.get(f"{CHANNELS}add/?campaign={campaign.pk}")

    assertContains(response, f'<option value="{campaign.pk}" selected>Support</option>')


def test_supervisor_adds_an_sms_channel(supervisor_client):
    campaign = CampaignFactory()
    number = PhoneNumberFactory()
    inbound, outbound = BlacklistFactory(), BlacklistFactory()
    survey = BotFactory()

    response = supervisor_client.post(
        CHANNELS + "add/",
        new_channel_data(
            campaign=campaign,
            number=number,
            inbound_blacklist_enabled="on",
            inbound_blacklists=[inbound.pk],
            outbound_blacklists=[outbound.pk],
            bot_on_finish=survey.pk,
        ),
    )

    assert response.status_code == 302
    channel = SmsChannel.objects.get(campaign=campaign)
    assert (channel.status, channel.connector, channel.phone_number) == (
        "enabled",
        number.connector,
        number,
    )
    assert (channel.strategy, channel.service_level_seconds, channel.max_queue_seconds) == (
        "leastrecent",
        30,
        600,
    )
    assert channel.inbound_blacklist_enabled and not channel.outbound_blacklist_enabled
    assert list(channel.inbound_blacklists.all()) == [inbound]
    assert list(channel.outbound_blacklists.all()) == [outbound]
    assert channel.bot_on_finish == survey


def test_supervisor_changes_an_sms_channel(supervisor_client):
    channel = SmsChannelFactory(strategy="ringall")
    data = post_data(supervisor_client.get(f"{CHANNELS}{channel.pk}/change/"))

    response = supervisor_client.post(
        f"{CHANNELS}{channel.pk}/change/",
        {**data, "strategy": "wrandom", "status": "disabled", "max_interactions": "5"},
    )

    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.strategy, channel.status, channel.max_interactions) == (
        "wrandom",
        "disabled",
        5,
    )


def test_number_of_another_connector_is_refused_on_the_number_field(supervisor_client):
    number = PhoneNumberFactory(number="+14155550100", connector__name="Acme")
    PhoneNumberFactory(connector=number.connector)
    other = PhoneNumberFactory(connector__name="Other").connector
    campaign = CampaignFactory()

    response = supervisor_client.post(
        CHANNELS + "add/",
        new_channel_data(campaign=campaign, number=number, connector=other.pk),
    )

    message = "+14155550100 belongs to connector “Acme”, not “Other”."
    assert form_errors(response) == {"phone_number": [message]}
    assertContains(response, message)
    assert not SmsChannel.objects.exists()
    # Redisplayed with the chosen connector's numbers, plus the refused choice.
    options = select_options(response.content.decode(), "phone_number")
    expected = [str(pk) for pk in other.phone_numbers.values_list("pk", flat=True)]
    assert sorted(options) == sorted([*expected, str(number.pk)])


def test_second_enabled_channel_on_a_number_is_refused(supervisor_client):
    first = SmsChannelFactory()

    response = supervisor_client.post(
        CHANNELS + "add/", new_channel_data(campaign=CampaignFactory(), number=first.phone_number)
    )

    assert form_errors(response) == {
        "__all__": ["This phone number already serves another enabled SMS channel."]
    }
    assertContains(response, "This phone number already serves another enabled SMS channel.")
    assert SmsChannel.objects.count() == 1


def test_disabled_channel_may_share_a_number(supervisor_client):
    first = SmsChannelFactory()
    campaign = CampaignFactory()

    response = supervisor_client.post(
        CHANNELS + "add/",
        new_channel_data(campaign=campaign, number=first.phone_number, status="disabled"),
    )

    assert response.status_code == 302
    assert SmsChannel.objects.get(campaign=campaign).phone_number == first.phone_number


def test_enabled_channel_needs_a_number_and_an_active_connector(supervisor_client):
    inactive = PhoneNumberFactory(connector__name="Paused", connector__active=False)

    no_number = supervisor_client.post(
        CHANNELS + "add/", new_channel_data(campaign=CampaignFactory(), number=None)
    )
    paused = supervisor_client.post(
        CHANNELS + "add/", new_channel_data(campaign=CampaignFactory(), number=inactive)
    )

    assert form_errors(no_number) == {
        "connector": ["An enabled channel needs a connector."],
        "phone_number": ["An enabled channel needs a phone number."],
    }
    assert form_errors(paused) == {
        "connector": ["Connector “Paused” is inactive; activate it first."]
    }
    assert not SmsChannel.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_queue_seconds", "-1", "Ensure this value is greater than or equal to 0."),
        ("max_transfer_seconds", "-5", "Ensure this value is greater than or equal to 0."),
        ("max_interactions", "-1", "Ensure this value is greater than or equal to 0."),
        ("service_level_seconds", "0", "Ensure this value is greater than or equal to 1."),
    ],
)
def test_negative_seconds_and_zero_service_level_are_refused(
    supervisor_client, field, value, message
):
    response = supervisor_client.post(
        CHANNELS + "add/",
        new_channel_data(campaign=CampaignFactory(), number=PhoneNumberFactory(), **{field: value}),
    )

    assert form_errors(response) == {field: [message]}
    assert not SmsChannel.objects.exists()


def test_change_form_offers_only_the_connectors_numbers(supervisor_client):
    channel = SmsChannelFactory()
    sibling = PhoneNumberFactory(connector=channel.connector)
    foreign = PhoneNumberFactory()

    response = supervisor_client.get(f"{CHANNELS}{channel.pk}/change/")

    options = select_options(response.content.decode(), "phone_number")
    assert sorted(options) == sorted([str(channel.phone_number.pk), str(sibling.pk)])
    assert str(foreign.pk) not in options


def test_add_form_without_connector_offers_every_number(supervisor_client):
    numbers = PhoneNumberFactory.create_batch(2)

    response = supervisor_client.get(CHANNELS + "add/")

    options = select_options(response.content.decode(), "phone_number")
    assert sorted(options) == sorted(str(n.pk) for n in numbers)


def test_channel_changelist_lists_the_settings(supervisor_client):
    SmsChannelFactory(
        campaign__name="Support",
        phone_number__number="+14155550123",
        strategy="fewestcalls",
        service_level_seconds=45,
    )

    response = supervisor_client.get(CHANNELS)

    html = response.content.decode()
    row = re.search(r"<tr>.*?Support.*?</tr>", html, re.S).group(0)
    for text in ("Enabled", "+14155550123", "Fewest calls", "45"):
        assert text in row


def test_channel_changelist_query_count_does_not_grow_with_rows(supervisor_client):
    SmsChannelFactory()
    with CaptureQueriesContext(connection) as one:
        supervisor_client.get(CHANNELS)
    SmsChannelFactory.create_batch(4)
    with CaptureQueriesContext(connection) as many:
        response = supervisor_client.get(CHANNELS)

    assertContains(response, "5 SMS channels")
    assert len(many) == len(one)


# The phone-number endpoint behind the channel form's script


def test_endpoint_returns_only_the_connectors_numbers(supervisor_client):
    mine = PhoneNumberFactory(number="+14155550101", label="Sales")
    PhoneNumberFactory(number="+14155550102", connector=ConnectorFactory())

    response = supervisor_client.get(PHONE_NUMBERS_JSON, {"connector": mine.connector_id})

    assert response.status_code == 200
    assert response.json() == [{"id": mine.pk, "label": "+14155550101 (Sales)"}]


def test_endpoint_rejects_a_malformed_connector(supervisor_client):
    response = supervisor_client.get(PHONE_NUMBERS_JSON, {"connector": "abc"})

    assert response.status_code == 400
    assert response.json() == {"error": "connector must be a connector id."}


def test_endpoint_refuses_anonymous_and_agents(client, agent_client):
    number = PhoneNumberFactory()
    query = {"connector": number.connector_id}

    anonymous = client.get(PHONE_NUMBERS_JSON, query)
    agent = agent_client.get(PHONE_NUMBERS_JSON, query)

    for response in (anonymous, agent):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        assert number.number.encode() not in response.content


def test_endpoint_needs_view_permission_on_sms_channels(client):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    number = PhoneNumberFactory()

    refused = client.get(PHONE_NUMBERS_JSON, {"connector": number.connector_id})
    staff.user_permissions.add(Permission.objects.get(codename="view_smschannel"))
    allowed = client.get(PHONE_NUMBERS_JSON, {"connector": number.connector_id})

    assert refused.status_code == 403
    assert number.number.encode() not in refused.content
    assert allowed.json() == [{"id": number.pk, "label": number.number}]


# The campaign admin, extended with the SMS channel


def test_campaign_changelist_shows_the_channel_columns(supervisor_client):
    SmsChannelFactory(
        campaign__name="Support",
        phone_number__number="+14155550123",
        strategy="rrmemory",
        service_level_seconds=25,
    )
    CampaignFactory(name="Sales")

    response = supervisor_client.get(CAMPAIGNS)

    html = response.content.decode()
    support = re.search(r"<tr>.*?Support.*?</tr>", html, re.S).group(0)
    assert '<td class="field-sms_status">Enabled</td>' in support
    assert '<td class="field-sms_phone_number">+14155550123</td>' in support
    assert '<td class="field-sms_strategy">Round robin with memory</td>' in support
    assert '<td class="field-sms_service_level">25</td>' in support
    sales = re.search(r"<tr>.*?Sales.*?</tr>", html, re.S).group(0)
    assert '<td class="field-sms_status">–</td>' in sales


def test_campaign_changelist_query_count_does_not_grow_with_rows(supervisor_client):
    SmsChannelFactory()
    with CaptureQueriesContext(connection) as one:
        supervisor_client.get(CAMPAIGNS)
    SmsChannelFactory.create_batch(3)
    CampaignFactory()
    with CaptureQueriesContext(connection) as many:
        response = supervisor_client.get(CAMPAIGNS)

    assertContains(response, "5 campaigns")
    assert len(many) == len(one)


def test_campaign_page_links_to_its_sms_channel(supervisor_client):
    channel = SmsChannelFactory(phone_number__number="+14155550123")

    response = supervisor_client.get(f"{CAMPAIGNS}{channel.campaign_id}/change/")

    assertContains(
        response, f'<a href="{CHANNELS}{channel.pk}/change/">+14155550123 (enabled)</a>', html=True
    )


def test_campaign_without_channel_offers_to_configure_one(supervisor_client):
    campaign = CampaignFactory()

    response = supervisor_client.get(f"{CAMPAIGNS}{campaign.pk}/change/")

    assertContains(
        response,
        f'<a href="{CHANNELS}add/?campaign={campaign.pk}">Configure SMS channel</a>',
        html=True,
    )
