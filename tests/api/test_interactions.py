"""GET /api/interactions/ and /api/interactions/<id>/: who sees what, filters, pages."""

import datetime

import pytest
from django.utils import timezone

from campaigns.models import Interaction, InteractionEvent
from sms_channel.models import Message
from tests.factories import (
    AgentFactory,
    CampaignFactory,
    InteractionFactory,
    SmsChannelFactory,
)

pytestmark = pytest.mark.django_db

LIST = "/api/interactions/"
UTC = datetime.UTC
Status = Interaction.Status


def detail(interaction) -> str:
    return f"/api/interactions/{interaction.pk}/"


def assigned(agent, **fields) -> Interaction:
    return InteractionFactory(
        status=Status.ASSIGNED, agent=agent, assigned_at=timezone.now(), **fields
    )


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


# Permissions ---------------------------------------------------------------------


def test_anonymous_gets_401(client):
    interaction = InteractionFactory()

    assert client.get(LIST).status_code == 401
    assert client.get(detail(interaction)).status_code == 401


def test_agent_lists_only_their_own(agent, agent_client):
    own = assigned(agent)
    assigned(AgentFactory())
    InteractionFactory()  # queued, nobody's

    response = agent_client.get(LIST)

    assert response.status_code == 200
    assert ids(response) == [own.pk]


def test_agent_gets_404_for_another_agents_interaction(agent, agent_client):
    others = assigned(AgentFactory())
    queued = InteractionFactory()

    assert agent_client.get(detail(others)).status_code == 404
    assert agent_client.get(detail(queued)).status_code == 404
    assert agent_client.get(detail(assigned(agent))).status_code == 200


def test_supervisor_lists_everything_newest_first(supervisor_client):
    now = timezone.now()
    older = InteractionFactory(created_at=now - datetime.timedelta(hours=2))
    newer = assigned(AgentFactory(), created_at=now - datetime.timedelta(hours=1))

    response = supervisor_client.get(LIST)

    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert ids(response) == [newer.pk, older.pk]


def test_list_row_shape(supervisor_client):
    agent = AgentFactory(first_name="Ada", last_name="Lovelace")
    interaction = assigned(agent, campaign=CampaignFactory(name="Sales"))

    (row,) = supervisor_client.get(LIST).json()["results"]

    assert row["id"] == interaction.pk
    assert row["campaign"] == {"id": interaction.campaign_id, "name": "Sales"}
    assert row["agent"] == {"id": agent.pk, "username": agent.username, "name": "Ada Lovelace"}
    assert row["status"] == "assigned"
    assert row["customer_number"] == interaction.customer_number
    assert row["transfer_to"] is None
    assert row["disposition"] is None
    assert "messages" not in row


# Filters -------------------------------------------------------------------------


def test_filter_by_campaign_status_and_agent(supervisor_client):
    agent = AgentFactory()
    campaign = CampaignFactory()
    match = assigned(agent, campaign=campaign)
    assigned(agent)  # another campaign
    InteractionFactory(campaign=campaign)  # queued
    assigned(AgentFactory(), campaign=campaign)

    response = supervisor_client.get(
        LIST, {"campaign": campaign.pk, "status": "assigned", "agent": agent.pk}
    )

    assert response.status_code == 200
    assert ids(response) == [match.pk]


def test_filter_by_created_dates_is_half_open(supervisor_client):
    def at(day, hour=12):
        return InteractionFactory(created_at=datetime.datetime(2026, 11, day, hour, tzinfo=UTC))

    at(24, 23)
    first = at(25, 0)
    second = at(26, 12)
    at(27, 0)

    by_date = supervisor_client.get(
        LIST, {"created_after": "2026-11-25", "created_before": "2026-11-27"}
    )
    by_datetime = supervisor_client.get(
        LIST,
        {"created_after": "2026-11-25T00:00:00Z", "created_before": "2026-11-26T12:00:01+00:00"},
    )

    assert ids(by_date) == [second.pk, first.pk]
    assert ids(by_datetime) == [second.pk, first.pk]


def test_created_filter_reads_offsets_and_naive_times_as_utc(supervisor_client):
    match = InteractionFactory(created_at=datetime.datetime(2026, 11, 25, 10, tzinfo=UTC))
    InteractionFactory(created_at=datetime.datetime(2026, 11, 25, 8, tzinfo=UTC))

    naive = supervisor_client.get(LIST, {"created_after": "2026-11-25T09:00:00"})
    offset = supervisor_client.get(LIST, {"created_after": "2026-11-25T11:00:00+02:00"})
    # An unencoded "+" arrives as a space.
    unencoded = supervisor_client.get(f"{LIST}?created_after=2026-11-25T11:00:00+02:00")

    assert ids(naive) == [match.pk]
    assert ids(offset) == [match.pk]
    assert ids(unencoded) == [match.pk]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"campaign": "sales"}, "campaign"),
        ({"agent": "-3"}, "agent"),
        ({"status": "waiting"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01"}, "created_before"),
        ({"created_after": "2026-11-26", "created_before": "2026-11-25"}, "created_before"),
    ],
)
def test_invalid_filter_is_400_naming_the_parameter(supervisor_client, params, field):
    response = supervisor_client.get(LIST, params)

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert response.json()[field][0]


def test_invalid_date_message_says_what_to_send(supervisor_client):
    response = supervisor_client.get(LIST, {"created_after": "25/11/2026"})

    assert "ISO 8601" in response.json()["created_after"][0]


def test_agent_filter_cannot_widen_an_agents_view(agent, agent_client):
    other = AgentFactory()
    assigned(other)

    response = agent_client.get(LIST, {"agent": other.pk})

    assert response.status_code == 200
    assert response.json()["count"] == 0


# Pagination and queries ------------------------------------------------------------


def _bulk_interactions(count: int) -> None:
    campaign = CampaignFactory()
    now = timezone.now()
    Interaction.objects.bulk_create(
        Interaction(
            campaign=campaign,
            customer_number=f"+1415777{n:04d}",
            status=Status.FINISHED,
            created_at=now - datetime.timedelta(seconds=n),
        )
        for n in range(count)
    )


def test_pages_of_50_by_default(supervisor_client):
    _bulk_interactions(55)

    first = supervisor_client.get(LIST).json()
    second = supervisor_client.get(LIST, {"page": 2}).json()

    assert first["count"] == 55
    assert len(first["results"]) == 50
    assert first["next"].endswith("page=2")
    assert len(second["results"]) == 5
    assert second["next"] is None
    seen = {row["id"] for row in first["results"] + second["results"]}
    assert len(seen) == 55


def test_page_size_is_capped_at_200(supervisor_client):
    _bulk_interactions(205)

    assert len(supervisor_client.get(LIST, {"page_size": 7}).json()["results"]) == 7
    assert len(supervisor_client.get(LIST, {"page_size": 500}).json()["results"]) == 200


def test_page_past_the_end_is_404(supervisor_client):
    _bulk_interactions(3)

    assert supervisor_client.get(LIST, {"page": 2}).status_code == 404


@pytest.mark.parametrize("rows", [2, 10])
def test_list_runs_a_fixed_number_of_queries(
    supervisor_client, django_assert_max_num_queries, rows
):
    campaign = CampaignFactory()
    for _ in range(rows):
        interaction = assigned(AgentFactory(), campaign=campaign)
        InteractionEvent.objects.create(interaction=interaction, to_status=Status.ASSIGNED)

    # Session, user, supervisor check, count, page.
    with django_assert_max_num_queries(5):
        response = supervisor_client.get(LIST)

    assert len(response.json()["results"]) == rows


# Detail ----------------------------------------------------------------------------


def test_detail_has_transcript_and_events(agent, agent_client):
    channel = SmsChannelFactory()
    interaction = assigned(agent, campaign=channel.campaign)
    t0 = timezone.now() - datetime.timedelta(minutes=5)
    Message.objects.create(
        channel=channel,
        interaction=interaction,
        direction=Message.Direction.INBOUND,
        sender=Message.Sender.CUSTOMER,
        from_number=interaction.customer_number,
        to_number=channel.phone_number.number,
        body="Hello?",
        status=Message.Status.RECEIVED,
        provider_sid="SM0001",
    )
    Message.objects.create(
        channel=channel,
        interaction=interaction,
        direction=Message.Direction.OUTBOUND,
        sender=Message.Sender.AGENT,
        sender_user=agent,
        from_number=channel.phone_number.number,
        to_number=interaction.customer_number,
        body="Hi, how can I help?",
        status=Message.Status.DELIVERED,
    )
    InteractionEvent.objects.create(
        interaction=interaction, to_status=Status.QUEUED, reason="enqueued", created_at=t0
    )
    InteractionEvent.objects.create(
        interaction=interaction,
        from_status=Status.QUEUED,
        to_status=Status.ASSIGNED,
        actor=InteractionEvent.Actor.SUPERVISOR,
        user=agent,
        reason="reassigned",
        data={"to_agent": agent.pk},
        created_at=t0 + datetime.timedelta(seconds=30),
    )

    body = agent_client.get(detail(interaction)).json()

    assert [(m["who"], m["body"]) for m in body["messages"]] == [
        ("customer", "Hello?"),
        ("agent", "Hi, how can I help?"),
    ]
    assert body["messages"][1]["author"] == agent.get_full_name()
    assert body["messages"][1]["delivery"] == "Delivered"
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in body["events"]] == [
        ("", "queued", "enqueued"),
        ("queued", "assigned", "reassigned"),
    ]
    assert body["events"][1]["user"]["id"] == agent.pk
    assert body["events"][1]["data"] == {"to_agent": agent.pk}
    assert body["events"][1]["actor"] == "supervisor"


def test_detail_of_unknown_interaction_is_404(supervisor_client):
    assert supervisor_client.get("/api/interactions/999999/").status_code == 404


def test_interactions_are_read_only(supervisor_client):
    interaction = InteractionFactory()

    assert supervisor_client.post(LIST, {}, content_type="application/json").status_code == 405
    response = supervisor_client.patch(
        detail(interaction), {"status": "finished"}, content_type="application/json"
    )
    assert response.status_code == 405
    assert supervisor_client.delete(detail(interaction)).status_code == 405
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
