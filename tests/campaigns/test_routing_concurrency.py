"""Routers and sweepers racing each other: real threads, real commits, real row locks."""

import datetime
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from campaigns.models import (
    AGENTS_GROUP,
    SUPERVISORS_GROUP,
    AgentProfile,
    Interaction,
    InteractionEvent,
)
from campaigns.routing import route_campaign, sweep_queue_timeouts, sweep_transfer_timeouts
from sms_channel.models import SmsChannel
from tests.factories import AgentFactory, MemberFactory, SmsChannelFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite serialises writers, so these races cannot happen there",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
def _groups():
    # Transactional tests flush the tables after each test, taking the
    # groups that a data migration made with them.
    for name in (AGENTS_GROUP, SUPERVISORS_GROUP):
        Group.objects.get_or_create(name=name)


def run_together(workers: list[Callable[[], object]]) -> list[object]:
    """Run `workers` at once, one thread and one database connection each."""
    start = threading.Barrier(len(workers))
    results: list[object] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(index: int, work: Callable[[], object]) -> None:
        try:
            start.wait(timeout=10)
            results[index] = work()
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker never finished"
    if errors:
        raise errors[0]
    return results


def queue(campaign, count: int, *, now, deadline=None) -> None:
    Interaction.objects.bulk_create(
        Interaction(
            campaign=campaign,
            customer_number=f"+1415555{i:04d}",
            status=Interaction.Status.QUEUED,
            created_at=now,
            queued_at=now + datetime.timedelta(microseconds=i),
            queue_deadline_at=deadline,
        )
        for i in range(count)
    )


def available_agents(campaign, count: int, *, capacity: int, now) -> list:
    agents = []
    for position in range(count):
        agent = AgentFactory()
        AgentProfile.objects.update_or_create(
            user=agent,
            defaults={"status": "available", "last_seen_at": now, "capacity": capacity},
        )
        MemberFactory(campaign=campaign, agent=agent, position=position)
        agents.append(agent)
    return agents


@pytest.mark.parametrize(
    "strategy",
    [
        SmsChannel.Strategy.RRMEMORY,
        SmsChannel.Strategy.LINEAR,
        SmsChannel.Strategy.LEASTRECENT,
        SmsChannel.Strategy.WRANDOM,
    ],
)
def test_four_routers_fill_every_slot_once_and_never_exceed_capacity(strategy):
    now = timezone.now()
    channel = SmsChannelFactory(strategy=strategy, service_level_seconds=3600)
    campaign = channel.campaign
    agents = available_agents(campaign, 30, capacity=3, now=now)
    queue(campaign, 300, now=now)

    # Small batches so the routers interleave many times.
    results = run_together(
        [lambda: route_campaign(campaign_id=campaign.pk, batch_size=7) for _ in range(4)]
    )

    assert sum(r.assigned for r in results) == 90
    assigned = Interaction.objects.filter(status=Interaction.Status.ASSIGNED)
    assert assigned.count() == 90
    loads = Counter(assigned.values_list("agent_id", flat=True))
    assert set(loads) == {a.pk for a in agents}
    assert max(loads.values()) == 3
    # Each assignment happened once: one "assigned" event per assigned row.
    events = (
        InteractionEvent.objects.filter(to_status=Interaction.Status.ASSIGNED)
        .values("interaction_id")
        .annotate(n=Count("id"))
    )
    assert len(events) == 90
    assert {e["n"] for e in events} == {1}
    # FIFO: the 90 oldest were served, the 210 newest still wait.
    oldest_waiting = Interaction.objects.filter(status="queued").order_by("queued_at").first()
    newest_served = assigned.order_by("-queued_at").first()
    assert newest_served.queued_at < oldest_waiting.queued_at
    assert Interaction.objects.filter(status="queued").count() == 210


def test_two_queue_sweepers_fire_each_deadline_once():
    now = timezone.now()
    channel = SmsChannelFactory(max_queue_seconds=60)
    queue(channel.campaign, 500, now=now, deadline=now - datetime.timedelta(seconds=1))

    def sweep_all() -> list[int]:
        swept = []
        while batch := sweep_queue_timeouts(batch_size=37):
            swept += batch
        return swept

    first, second = run_together([sweep_all, sweep_all])

    assert len(first) + len(second) == 500
    assert not set(first) & set(second)
    assert Interaction.objects.filter(status="timed_out", queue_outcome="timed_out").count() == 500
    assert (
        InteractionEvent.objects.filter(to_status="timed_out").values("interaction_id").count()
        == 500
    )


def test_two_transfer_sweepers_return_each_offer_once():
    now = timezone.now()
    channel = SmsChannelFactory(max_transfer_seconds=30)
    sender, receiver = available_agents(channel.campaign, 2, capacity=50, now=now)
    Interaction.objects.bulk_create(
        Interaction(
            campaign=channel.campaign,
            customer_number=f"+1415555{i:04d}",
            status=Interaction.Status.TRANSFERRING,
            agent=sender,
            transfer_to=receiver,
            transfer_deadline_at=now - datetime.timedelta(seconds=1),
        )
        for i in range(40)
    )

    def sweep_all() -> list[int]:
        swept = []
        while batch := sweep_transfer_timeouts(batch_size=3):
            swept += batch
        return swept

    first, second = run_together([sweep_all, sweep_all])

    assert sorted(first + second) == sorted(Interaction.objects.values_list("pk", flat=True))
    assert not set(first) & set(second)
    assert (
        Interaction.objects.filter(status="assigned", agent=sender, transfer_to=None).count() == 40
    )
