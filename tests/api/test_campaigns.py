"""GET /api/campaigns/ and /api/campaigns/<id>/statistics/: supervisors only."""

import datetime
from dataclasses import asdict

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from campaigns.models import AgentProfile, Interaction
from campaigns.selectors import campaign_statistics
from tests.factories import AgentFactory, CampaignFactory, InteractionFactory, MemberFactory

pytestmark = pytest.mark.django_db

LIST = "/api/campaigns/"
Status = Interaction.Status
Outcome = Interaction.QueueOutcome


def statistics_url(campaign) -> str:
    return f"/api/campaigns/{campaign.pk}/statistics/"


def test_anonymous_gets_401(client):
    campaign = CampaignFactory()

    assert client.get(LIST).status_code == 401
    assert client.get(statistics_url(campaign)).status_code == 401


def test_agent_gets_403(agent_client):
    campaign = CampaignFactory()

    assert agent_client.get(LIST).status_code == 403
    assert agent_client.get(statistics_url(campaign)).status_code == 403


def test_supervisor_lists_campaigns_by_name(supervisor_client):
    sales = CampaignFactory(name="Sales", time_zone="America/Montevideo")
    billing = CampaignFactory(name="Billing", active=False)

    response = supervisor_client.get(LIST)

    assert response.status_code == 200
    assert response.json()["results"] == [
        {"id": billing.pk, "name": "Billing", "active": False, "time_zone": "UTC"},
        {"id": sales.pk, "name": "Sales", "active": True, "time_zone": "America/Montevideo"},
    ]


@pytest.mark.parametrize("rows", [2, 10])
def test_list_runs_a_fixed_number_of_queries(
    supervisor_client, django_assert_max_num_queries, rows
):
    CampaignFactory.create_batch(rows)

    with django_assert_max_num_queries(5):
        response = supervisor_client.get(LIST)

    assert response.json()["count"] == rows


def test_statistics_of_unknown_campaign_is_404(supervisor_client):
    assert supervisor_client.get("/api/campaigns/999999/statistics/").status_code == 404


def test_statistics_match_the_selector(supervisor_client):
    campaign = CampaignFactory()
    now = timezone.now()

    def ago(**kwargs):
        return now - datetime.timedelta(**kwargs)

    busy, idle, away = AgentFactory.create_batch(3)
    for agent in (busy, idle, away):
        MemberFactory(campaign=campaign, agent=agent)
    AgentProfile.objects.filter(user__in=[busy, idle]).update(status=AgentProfile.Status.AVAILABLE)
    AgentProfile.objects.filter(user=away).update(status=AgentProfile.Status.BREAK)
    InteractionFactory(
        campaign=campaign,
        status=Status.ASSIGNED,
        agent=busy,
        queued_at=ago(minutes=10),
        left_queue_at=ago(minutes=9, seconds=50),
        assigned_at=ago(minutes=9, seconds=50),
        queue_outcome=Outcome.ATTENDED,
        service_level_met=True,
    )
    InteractionFactory(
        campaign=campaign,
        status=Status.TIMED_OUT,
        queued_at=ago(minutes=20),
        left_queue_at=ago(minutes=15),
        queue_outcome=Outcome.TIMED_OUT,
        service_level_met=False,
    )
    InteractionFactory(campaign=campaign, queued_at=ago(seconds=90))
    InteractionFactory(
        campaign=campaign, status=Status.REJECTED, reject_reason="out_of_hours", queued_at=None
    )

    response = supervisor_client.get(statistics_url(campaign))

    assert response.status_code == 200
    body = response.json()
    generated_at = parse_datetime(body.pop("generated_at"))
    expected = asdict(campaign_statistics(campaign=campaign, now=generated_at))
    assert body == {"campaign": campaign.pk, **expected}
    # And the figures are the ones built above, not just whatever the selector says.
    assert body["queued_now"] == 1
    assert body["last_hour"]["entered"] == 3
    assert body["last_hour"]["attended"] == 1
    assert body["last_hour"]["timed_out"] == 1
    assert body["last_hour"]["sl_percent"] == 50.0
    assert body["last_hour"]["rejected_by_reason"] == {"out_of_hours": 1}
    assert body["agents_by_status"] == {"available": 2, "break": 1, "offline": 0}
    assert body["agents_busy"] == 1
    assert body["longest_waiting_seconds"] >= 90
