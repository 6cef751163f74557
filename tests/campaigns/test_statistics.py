"""Per-campaign service level and statistics, on hand-built conversations."""

import datetime
import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import AgentProfile, Interaction
from campaigns.selectors import (
    CampaignStatistics,
    PeriodStatistics,
    campaign_period_statistics,
    campaign_statistics,
)
from tests.factories import AgentFactory, CampaignFactory, MemberFactory

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
START = datetime.datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
END = datetime.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

Status = Interaction.Status
Outcome = Interaction.QueueOutcome
Reason = Interaction.RejectReason
STATUS_AFTER = {
    Outcome.ATTENDED: Status.FINISHED,
    Outcome.TIMED_OUT: Status.TIMED_OUT,
    Outcome.ABANDONED: Status.ABANDONED,
}

_numbers = itertools.count()


def interaction(campaign, *, status=Status.FINISHED, **fields):
    return Interaction.objects.create(
        campaign=campaign,
        customer_number=f"+1415666{next(_numbers) % 10000:04d}",
        status=status,
        **fields,
    )


def stay(campaign, *, queued_at, waited=None, outcome="", met=None, status=None, **fields):
    """A conversation that entered the queue at `queued_at` and left `waited` seconds later."""
    if status is None:
        status = STATUS_AFTER.get(outcome, Status.QUEUED)
    left_queue_at = None if waited is None else queued_at + datetime.timedelta(seconds=waited)
    return interaction(
        campaign,
        status=status,
        queued_at=queued_at,
        left_queue_at=left_queue_at,
        queue_outcome=outcome,
        service_level_met=met,
        **fields,
    )


def rejected(campaign, *, reason, created_at):
    return interaction(
        campaign, status=Status.REJECTED, reject_reason=reason, created_at=created_at
    )


def at(minutes, seconds=0):
    return START + datetime.timedelta(minutes=minutes, seconds=seconds)


def member(campaign, *, status=AgentProfile.Status.AVAILABLE, active=True, agent=None):
    """Make `agent` (a new one with `status` by default) a member of `campaign`."""
    if agent is None:
        agent = AgentFactory()
        AgentProfile.objects.filter(user=agent).update(status=status)
    MemberFactory(campaign=campaign, agent=agent, active=active)
    return agent


EMPTY = PeriodStatistics(
    entered=0,
    attended=0,
    attended_within=0,
    timed_out=0,
    abandoned=0,
    abandoned_within=0,
    sl_percent=None,
    sl_percent_with_abandoned=None,
    average_wait_seconds=None,
    longest_wait_seconds=None,
    rejected_by_reason={},
)


def test_period_counts_every_outcome_of_the_cohort(django_assert_max_num_queries):
    campaign = CampaignFactory()
    other = CampaignFactory()
    stay(campaign, queued_at=at(0), waited=10.5, outcome=Outcome.ATTENDED, met=True)
    # Left exactly at the service level: the routing service decided it was met.
    stay(campaign, queued_at=at(5), waited=20, outcome=Outcome.ATTENDED, met=True)
    stay(campaign, queued_at=at(10), waited=45, outcome=Outcome.ATTENDED, met=False)
    stay(campaign, queued_at=at(15), waited=120, outcome=Outcome.TIMED_OUT, met=False)
    stay(campaign, queued_at=at(20), waited=5, outcome=Outcome.ABANDONED, met=True)
    stay(campaign, queued_at=at(25), waited=90, outcome=Outcome.ABANDONED, met=False)
    stay(campaign, queued_at=at(59, 59))  # still waiting
    # Outside the cohort: before the start, at the (exclusive) end, another
    # campaign, and an agent-started conversation that never queued.
    stay(
        campaign,
        queued_at=START - datetime.timedelta(microseconds=1),
        waited=300,
        outcome=Outcome.ATTENDED,
        met=True,
    )
    stay(campaign, queued_at=END, waited=300, outcome=Outcome.ATTENDED, met=True)
    stay(other, queued_at=at(30), waited=300, outcome=Outcome.ATTENDED, met=True)
    interaction(campaign, direction=Interaction.Direction.OUTBOUND, created_at=at(30))
    rejected(campaign, reason=Reason.OUT_OF_HOURS, created_at=START)
    rejected(campaign, reason=Reason.OUT_OF_HOURS, created_at=at(40))
    rejected(campaign, reason=Reason.QUEUE_FULL, created_at=at(59, 59))
    rejected(campaign, reason=Reason.BLACKLISTED, created_at=END)
    rejected(campaign, reason=Reason.BLACKLISTED, created_at=START - datetime.timedelta(seconds=1))
    rejected(other, reason=Reason.CHANNEL_DISABLED, created_at=at(30))

    with django_assert_max_num_queries(2):
        stats = campaign_period_statistics(campaign_id=campaign.pk, start=START, end=END)

    assert stats == PeriodStatistics(
        entered=7,
        attended=3,
        attended_within=2,
        timed_out=1,
        abandoned=2,
        abandoned_within=1,
        sl_percent=33.3,  # 2 of 6 that left the queue
        sl_percent_with_abandoned=50.0,  # (2 + 1) of 6
        average_wait_seconds=25.2,  # (10.5 + 20 + 45) / 3
        longest_wait_seconds=45.0,
        rejected_by_reason={"out_of_hours": 2, "queue_full": 1},
    )


def test_period_without_conversations_has_no_percentages():
    campaign = CampaignFactory()
    stay(campaign, queued_at=END, waited=3, outcome=Outcome.ATTENDED, met=True)

    stats = campaign_period_statistics(campaign_id=campaign.pk, start=START, end=END)

    assert stats == EMPTY


def test_period_with_only_waiting_conversations_has_no_percentages():
    campaign = CampaignFactory()
    stay(campaign, queued_at=at(1))
    stay(campaign, queued_at=at(2))

    stats = campaign_period_statistics(campaign_id=campaign.pk, start=START, end=END)

    assert stats.entered == 2
    assert (stats.attended, stats.timed_out, stats.abandoned) == (0, 0, 0)
    assert stats.sl_percent is None
    assert stats.sl_percent_with_abandoned is None
    assert stats.average_wait_seconds is None
    assert stats.longest_wait_seconds is None


def test_abandoned_within_the_service_level_counts_only_with_abandoned():
    campaign = CampaignFactory()
    stay(campaign, queued_at=at(1), waited=4, outcome=Outcome.ATTENDED, met=True)
    stay(campaign, queued_at=at(2), waited=60, outcome=Outcome.ATTENDED, met=False)
    stay(campaign, queued_at=at(3), waited=2, outcome=Outcome.ABANDONED, met=True)

    stats = campaign_period_statistics(campaign_id=campaign.pk, start=START, end=END)

    assert stats.attended_within == 1
    assert stats.abandoned_within == 1
    assert stats.sl_percent == 33.3
    assert stats.sl_percent_with_abandoned == 66.7
    # Waits are over attended conversations only.
    assert stats.average_wait_seconds == 32.0
    assert stats.longest_wait_seconds == 60.0


def test_every_conversation_within_the_service_level_is_100_percent():
    campaign = CampaignFactory()
    stay(campaign, queued_at=at(1), waited=0, outcome=Outcome.ATTENDED, met=True)

    stats = campaign_period_statistics(campaign_id=campaign.pk, start=START, end=END)

    assert stats.sl_percent == 100.0
    assert stats.sl_percent_with_abandoned == 100.0
    assert stats.average_wait_seconds == 0.0
    assert stats.longest_wait_seconds == 0.0


def test_today_starts_at_midnight_in_the_campaign_time_zone():
    campaign = CampaignFactory(time_zone="America/New_York")
    # 10:00 in New York (EST, UTC−5); UTC midnight would be 19:00 yesterday there.
    now = datetime.datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    stay(  # 23:30 yesterday in New York
        campaign,
        queued_at=datetime.datetime(2026, 11, 25, 4, 30, tzinfo=UTC),
        waited=10,
        outcome=Outcome.ATTENDED,
        met=True,
    )
    stay(  # 00:30 today in New York
        campaign,
        queued_at=datetime.datetime(2026, 11, 25, 5, 30, tzinfo=UTC),
        waited=40,
        outcome=Outcome.ATTENDED,
        met=False,
    )
    stay(  # 00:00 today in New York, the first instant of the day
        campaign,
        queued_at=datetime.datetime(2026, 11, 25, 5, 0, tzinfo=UTC),
        waited=30,
        outcome=Outcome.TIMED_OUT,
        met=False,
    )
    rejected(  # 23:59:59 yesterday in New York
        campaign,
        reason=Reason.OUT_OF_HOURS,
        created_at=datetime.datetime(2026, 11, 25, 4, 59, 59, tzinfo=UTC),
    )
    rejected(
        campaign,
        reason=Reason.OUT_OF_HOURS,
        created_at=datetime.datetime(2026, 11, 25, 5, 0, tzinfo=UTC),
    )

    today = campaign_statistics(campaign=campaign, now=now).today

    assert today.entered == 2
    assert today.attended == 1
    assert today.timed_out == 1
    assert today.sl_percent == 0.0
    assert today.longest_wait_seconds == 40.0
    assert today.rejected_by_reason == {"out_of_hours": 1}


def test_today_in_summer_time_follows_the_offset_of_that_day():
    campaign = CampaignFactory(time_zone="America/New_York")
    now = datetime.datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 08:00 EDT, UTC−4
    stay(campaign, queued_at=datetime.datetime(2026, 7, 1, 3, 59, tzinfo=UTC))  # 23:59 yesterday
    stay(campaign, queued_at=datetime.datetime(2026, 7, 1, 4, 0, tzinfo=UTC))  # 00:00 today

    assert campaign_statistics(campaign=campaign, now=now).today.entered == 1


def test_last_hour_is_the_hour_before_now():
    campaign = CampaignFactory()
    now = END
    stay(
        campaign,
        queued_at=now - datetime.timedelta(hours=1, seconds=1),
        waited=5,
        outcome=Outcome.ATTENDED,
        met=True,
    )
    stay(
        campaign,
        queued_at=now - datetime.timedelta(hours=1),
        waited=50,
        outcome=Outcome.ATTENDED,
        met=False,
    )
    stay(campaign, queued_at=now - datetime.timedelta(seconds=1))
    rejected(campaign, reason=Reason.QUEUE_FULL, created_at=now - datetime.timedelta(minutes=61))
    rejected(campaign, reason=Reason.QUEUE_FULL, created_at=now - datetime.timedelta(minutes=59))

    stats = campaign_statistics(campaign=campaign, now=now)

    assert stats.last_hour == PeriodStatistics(
        entered=2,
        attended=1,
        attended_within=0,
        timed_out=0,
        abandoned=0,
        abandoned_within=0,
        sl_percent=0.0,
        sl_percent_with_abandoned=0.0,
        average_wait_seconds=50.0,
        longest_wait_seconds=50.0,
        rejected_by_reason={"queue_full": 1},
    )
    assert stats.today.entered == 3
    assert stats.today.rejected_by_reason == {"queue_full": 2}


def test_queued_now_and_longest_waiting():
    campaign = CampaignFactory()
    now = END
    stay(campaign, queued_at=now - datetime.timedelta(seconds=30))
    stay(campaign, queued_at=now - datetime.timedelta(seconds=95.5))
    stay(campaign, queued_at=now - datetime.timedelta(seconds=10))
    # Not waiting now: left the queue, or waiting in another campaign.
    stay(
        campaign,
        queued_at=now - datetime.timedelta(minutes=20),
        waited=60,
        outcome=Outcome.TIMED_OUT,
    )
    stay(CampaignFactory(), queued_at=now - datetime.timedelta(minutes=10))

    stats = campaign_statistics(campaign=campaign, now=now)

    assert stats.queued_now == 3
    assert stats.longest_waiting_seconds == 95.5


def test_nothing_waiting_has_no_longest_wait():
    campaign = CampaignFactory()

    stats = campaign_statistics(campaign=campaign, now=END)

    assert stats == CampaignStatistics(
        today=EMPTY,
        last_hour=EMPTY,
        queued_now=0,
        longest_waiting_seconds=None,
        agents_by_status={"available": 0, "break": 0, "offline": 0},
        agents_busy=0,
    )


def test_agents_by_status_counts_active_members_only():
    campaign = CampaignFactory()
    other = CampaignFactory()
    member(campaign, status=AgentProfile.Status.AVAILABLE)
    member(campaign, status=AgentProfile.Status.AVAILABLE)
    member(campaign, status=AgentProfile.Status.BREAK)
    member(campaign, status=AgentProfile.Status.AVAILABLE, active=False)
    member(other, status=AgentProfile.Status.OFFLINE)
    # A member of both campaigns counts once here.
    member(other, agent=member(campaign, status=AgentProfile.Status.BREAK))

    stats = campaign_statistics(campaign=campaign, now=END)

    assert stats.agents_by_status == {"available": 2, "break": 2, "offline": 0}


def test_agents_busy_counts_active_members_with_any_open_conversation():
    campaign = CampaignFactory()
    other = CampaignFactory()
    assigned = member(campaign)
    stay(
        campaign,
        queued_at=at(1),
        waited=1,
        outcome=Outcome.ATTENDED,
        status=Status.ASSIGNED,
        agent=assigned,
    )
    two = member(campaign)
    interaction(campaign, status=Status.ASSIGNED, agent=two)
    interaction(campaign, status=Status.ASSIGNED, agent=two)
    # Load counts conversations in every campaign, transfers in flight included.
    elsewhere = member(campaign)
    interaction(other, status=Status.TRANSFERRING, agent=elsewhere, transfer_to=AgentFactory())
    idle = member(campaign)
    interaction(campaign, status=Status.FINISHED, agent=idle)
    # Being offered a transfer is not load until it is accepted.
    offered = member(campaign)
    interaction(campaign, status=Status.TRANSFERRING, agent=AgentFactory(), transfer_to=offered)
    paused = member(campaign, active=False)
    interaction(campaign, status=Status.ASSIGNED, agent=paused)

    stats = campaign_statistics(campaign=campaign, now=END)

    assert stats.agents_busy == 3


def populate(campaign, n):
    other = CampaignFactory()
    statuses = AgentProfile.Status.values
    for i in range(n):
        agent = member(campaign, status=statuses[i % 3], active=i % 4 != 0)
        member(other, agent=agent)
        queued_at = END - datetime.timedelta(minutes=2 * i + 1)
        stay(campaign, queued_at=queued_at, waited=i, outcome=Outcome.ATTENDED, met=i % 2 == 0)
        stay(
            campaign,
            queued_at=queued_at,
            waited=30,
            outcome=Outcome.ATTENDED,
            status=Status.ASSIGNED,
            agent=agent,
        )
        stay(campaign, queued_at=queued_at, waited=60, outcome=Outcome.ABANDONED, met=False)
        stay(campaign, queued_at=queued_at)
        rejected(campaign, reason=Reason.values[i % len(Reason.values)], created_at=queued_at)


def test_query_count_does_not_grow_with_conversations_or_agents():
    small, large = CampaignFactory(), CampaignFactory()
    populate(small, 3)
    populate(large, 30)

    counts = []
    for campaign in (small, large):
        with CaptureQueriesContext(connection) as queries:
            stats = campaign_statistics(campaign=campaign, now=END)
        counts.append(len(queries))

    # Two per period, one for the queue now, one for the agents.
    assert counts == [6, 6]
    assert stats.queued_now == 30
    assert stats.agents_busy == 22  # the active members, each with one assignment
    assert stats.agents_by_status == {"available": 7, "break": 7, "offline": 8}
