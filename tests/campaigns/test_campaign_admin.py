import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import Campaign, Disposition, Holiday, Member, OpeningHours
from tests.campaigns.formdata import changeform_data, set_rows
from tests.factories import (
    CampaignFactory,
    DispositionFactory,
    HolidayFactory,
    MemberFactory,
    OpeningHoursFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:campaigns_campaign_add")


def add_data(client, **fields) -> dict:
    data = changeform_data(client.get(ADD_URL))
    data.update(name="Support", time_zone="Europe/Madrid", **fields)
    return data


def change_url(campaign: Campaign) -> str:
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk])


def test_supervisor_adds_a_campaign_with_every_inline(supervisor_client, agent):
    data = add_data(supervisor_client, description="Customer care")
    set_rows(
        data,
        "opening_hours",
        [
            {"weekday": 0, "opens": "09:00", "closes": "13:00"},
            # Touching the morning interval is not overlapping it.
            {"weekday": 0, "opens": "13:00", "closes": "00:00"},
            {"weekday": 1, "opens": "10:00", "closes": "12:00"},
        ],
    )
    set_rows(data, "holidays", [{"date": "2026-12-25", "name": "Christmas"}])
    set_rows(data, "members", [{"agent": agent.pk, "penalty": 5, "position": 2, "active": "on"}])
    set_rows(data, "dispositions", [{"name": "Resolved", "active": "on"}])

    response = supervisor_client.post(ADD_URL, data)

    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Support")
    assert str(campaign.time_zone) == "Europe/Madrid"
    assert list(campaign.opening_hours.values_list("weekday", "opens", "closes")) == [
        (0, datetime.time(9), datetime.time(13)),
        (0, datetime.time(13), datetime.time(0)),
        (1, datetime.time(10), datetime.time(12)),
    ]
    assert list(campaign.holidays.values_list("date", "name")) == [
        (datetime.date(2026, 12, 25), "Christmas")
    ]
    assert list(campaign.members.values_list("agent", "penalty", "position", "active")) == [
        (agent.pk, 5, 2, True)
    ]
    assert list(campaign.dispositions.values_list("name", "active")) == [("Resolved", True)]


INVALID_ROWS = [
    pytest.param(
        "opening_hours",
        [{"weekday": 0, "opens": "17:00", "closes": "09:00"}],
        "The closing time must be after the opening time.",
        id="closes-before-opens",
    ),
    pytest.param(
        "opening_hours",
        [{"weekday": 0, "opens": "09:00", "closes": "09:00"}],
        "The closing time must be after the opening time.",
        id="closes-when-opens",
    ),
    pytest.param(
        "opening_hours",
        [
            {"weekday": 2, "opens": "12:00", "closes": "17:00"},
            {"weekday": 2, "opens": "09:00", "closes": "13:00"},
        ],
        "Wednesday: 09:00–13:00 overlaps 12:00–17:00.",
        id="overlap",
    ),
    pytest.param(
        "opening_hours",
        [
            {"weekday": 6, "opens": "08:00", "closes": "00:00"},
            {"weekday": 6, "opens": "22:00", "closes": "23:00"},
        ],
        "Sunday: 08:00–24:00 overlaps 22:00–23:00.",
        id="overlap-until-midnight",
    ),
    pytest.param(
        "opening_hours",
        [
            {"weekday": 4, "opens": "09:00", "closes": "17:00"},
            {"weekday": 4, "opens": "09:00", "closes": "17:00"},
        ],
        "Friday: 09:00–17:00 overlaps 09:00–17:00.",
        id="same-interval-twice",
    ),
    pytest.param(
        "opening_hours",
        [{"weekday": 7, "opens": "09:00", "closes": "17:00"}],
        "Select a valid choice. 7 is not one of the available choices.",
        id="weekday-out-of-range",
    ),
    pytest.param(
        "holidays",
        [{"date": "2026-12-25", "name": "Christmas"}, {"date": "2026-12-25", "name": "Xmas"}],
        "This campaign already has a holiday on that date.",
        id="holiday-twice",
    ),
    pytest.param(
        "dispositions",
        [{"name": "Resolved", "active": "on"}, {"name": "Resolved"}],
        "This campaign already has a disposition with that name.",
        id="disposition-twice",
    ),
    pytest.param(
        "members",
        [{"agent": "AGENT", "penalty": 101}],
        "The penalty must be between 0 and 100.",
        id="penalty-above-100",
    ),
    pytest.param(
        "members",
        [{"agent": "AGENT", "penalty": -1}],
        "The penalty must be between 0 and 100.",
        id="negative-penalty",
    ),
    pytest.param(
        "members",
        [{"agent": "AGENT", "penalty": 0}, {"agent": "AGENT", "penalty": 1}],
        "This agent is already a member of the campaign.",
        id="member-twice",
    ),
    pytest.param(
        "members",
        [{"agent": "NOT_AN_AGENT", "penalty": 0}],
        "only users in the Agents group can be members of a campaign",
        id="member-not-an-agent",
    ),
]


def _resolve(rows: list[dict], agent) -> list[dict]:
    users = {"AGENT": agent.pk, "NOT_AN_AGENT": UserFactory().pk}
    return [
        {k: users.get(v, v) if k == "agent" else v for k, v in row.items()}
        | ({"position": 0} if "agent" in row else {})
        for row in rows
    ]


@pytest.mark.parametrize(("prefix", "rows", "message"), INVALID_ROWS)
def test_invalid_inline_on_add_shows_the_message_and_saves_nothing(
    supervisor_client, agent, prefix, rows, message
):
    data = set_rows(add_data(supervisor_client), prefix, _resolve(rows, agent))

    response = supervisor_client.post(ADD_URL, data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Campaign.objects.exists()
    for model in (OpeningHours, Holiday, Member, Disposition):
        assert not model.objects.exists()


@pytest.mark.parametrize(("prefix", "rows", "message"), INVALID_ROWS)
def test_invalid_inline_on_change_shows_the_message_and_changes_nothing(
    supervisor_client, agent, prefix, rows, message
):
    campaign = CampaignFactory(name="Sales")
    data = changeform_data(supervisor_client.get(change_url(campaign)))
    data["name"] = "Renamed"
    set_rows(data, prefix, _resolve(rows, agent))

    response = supervisor_client.post(change_url(campaign), data)

    assert response.status_code == 200
    assert message in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.name == "Sales"
    for model in (OpeningHours, Holiday, Member, Disposition):
        assert not model.objects.exists()


def test_new_rows_clashing_with_stored_ones_are_refused(supervisor_client, agent):
    campaign = CampaignFactory()
    hours = OpeningHoursFactory(campaign=campaign, weekday=3, opens="09:00", closes="17:00")
    holiday = HolidayFactory(campaign=campaign, date="2026-01-01", name="New Year")
    member = MemberFactory(campaign=campaign, agent=agent)
    disposition = DispositionFactory(campaign=campaign, name="Sold")
    data = changeform_data(supervisor_client.get(change_url(campaign)))
    for prefix, row in [
        ("opening_hours", {"weekday": 3, "opens": "16:00", "closes": "18:00"}),
        ("holidays", {"date": "2026-01-01", "name": "Again"}),
        ("members", {"agent": agent.pk, "penalty": 3, "position": 1}),
        ("dispositions", {"name": "Sold"}),
    ]:
        for name, value in row.items():
            data[f"{prefix}-1-{name}"] = str(value)

    response = supervisor_client.post(change_url(campaign), data)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Thursday: 09:00–17:00 overlaps 16:00–18:00." in html
    assert "This campaign already has a holiday on that date." in html
    assert "This agent is already a member of the campaign." in html
    assert "This campaign already has a disposition with that name." in html
    assert list(OpeningHours.objects.all()) == [hours]
    assert list(Holiday.objects.all()) == [holiday]
    assert list(Member.objects.all()) == [member]
    assert list(Disposition.objects.all()) == [disposition]


def test_stored_rows_can_be_moved_and_deleted(supervisor_client):
    campaign = CampaignFactory()
    morning = OpeningHoursFactory(campaign=campaign, weekday=0, opens="09:00", closes="13:00")
    evening = OpeningHoursFactory(campaign=campaign, weekday=0, opens="12:00", closes="20:00")
    data = changeform_data(supervisor_client.get(change_url(campaign)))
    # The rows are ordered by opening time; the overlap is gone once the
    # evening starts later and the morning row is deleted and re-added.
    data["opening_hours-0-DELETE"] = "on"
    data["opening_hours-1-opens"] = "14:00"
    data.update({"opening_hours-2-weekday": "0", "opening_hours-2-opens": "08:00"})
    data["opening_hours-2-closes"] = "14:00"

    response = supervisor_client.post(change_url(campaign), data)

    assert response.status_code == 302
    assert not OpeningHours.objects.filter(pk=morning.pk).exists()
    assert list(campaign.opening_hours.values_list("pk", "opens", "closes")) == [
        (OpeningHours.objects.get(opens=datetime.time(8)).pk, datetime.time(8), datetime.time(14)),
        (evening.pk, datetime.time(14), datetime.time(20)),
    ]


def test_member_choices_list_agents_only(supervisor_client, agent):
    UserFactory()

    response = supervisor_client.get(ADD_URL)

    (members,) = [
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is Member
    ]
    choices = members.forms[0]["agent"].field.choices
    assert [(str(value), label) for value, label in choices if value] == [
        (str(agent.pk), f"{agent.get_full_name()} ({agent.username})")
    ]
    assert f"{agent.get_full_name()} ({agent.username})" in response.content.decode()


def test_changelist_counts_members_without_a_query_per_campaign(
    supervisor_client, django_assert_num_queries
):
    url = reverse("admin:campaigns_campaign_changelist")
    small = CampaignFactory(name="A small one")
    MemberFactory(campaign=small)
    supervisor_client.get(url)  # warm up the session and content types
    with CaptureQueriesContext(connection) as one:
        supervisor_client.get(url)
    for n in range(4):
        campaign = CampaignFactory(name=f"Busy {n}")
        MemberFactory.create_batch(3, campaign=campaign)
    with django_assert_num_queries(len(one)):
        response = supervisor_client.get(url)

    rows = {c.name: c._member_count for c in response.context["cl"].result_list}
    assert rows == {"A small one": 1, **{f"Busy {n}": 3 for n in range(4)}}


def test_agents_cannot_open_the_campaign_admin(agent_client):
    response = agent_client.get(ADD_URL)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_staff_without_permissions_cannot_add_campaigns(client):
    client.force_login(UserFactory(is_staff=True))

    response = client.post(ADD_URL, {"name": "Sneaky", "time_zone": "UTC"})

    assert response.status_code == 403
    assert not Campaign.objects.exists()


def test_change_page_runs_the_same_queries_for_more_members(
    supervisor_client, django_assert_num_queries
):
    campaign = CampaignFactory()
    member = MemberFactory(campaign=campaign)
    supervisor_client.get(change_url(campaign))
    with CaptureQueriesContext(connection) as one:
        supervisor_client.get(change_url(campaign))
    MemberFactory.create_batch(5, campaign=campaign)

    with django_assert_num_queries(len(one)):
        response = supervisor_client.get(change_url(campaign))

    html = response.content.decode()
    assert html.count(f'<option value="{member.agent.pk}" selected>') == 1
    assert f"{member.agent} in {campaign}" in html
