"""Fault 1: a Celery worker SIGKILLed while it routes 1,000 conversations
(and, as a companion, while it sends a text).

The first kill lands inside a routing transaction, on purpose: the test
holds one agent's profile row locked, so the router blocks half-way through
a batch (conversations claimed, some agents locked) and is killed there. The
second kill lands wherever the next worker happens to be once it passes a
random number of assignments. Then, as beat would, `route_all_campaigns_task` is published to a
fresh worker, which must finish the queue.
"""

import datetime
import random
import time
from collections import Counter

import psycopg
import pytest
from django.utils import timezone

from campaigns.models import AgentProfile, Interaction, InteractionEvent, Member
from campaigns.tasks import route_all_campaigns_task, route_campaign_task
from sms_channel.models import Message
from sms_channel.services import (
    SEND_LEASE,
    STALE_AFTER,
    SendOutcome,
    sms_deliver,
    sms_redispatch_stale,
    sms_send,
)
from tests.factories import (
    AgentFactory,
    InteractionFactory,
    PhoneNumberFactory,
    SmsChannelFactory,
    TwilioConnectorFactory,
)
from tests.faults.conftest import database_url, other_backends
from tests.faults.servers import ACCEPT_THEN_HANG, wait_for
from tests.sms_channel.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, TWILIO_NUMBER

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

CONVERSATIONS = 1000
AGENTS = 42
CAPACITY = 24  # 1,008 places for 1,000 conversations: every one fits, barely
BLOCKED_POSITION = 20  # the agent whose profile row the test holds locked

_S = Interaction.Status


def _assigned(campaign) -> int:
    return Interaction.objects.filter(campaign=campaign, status=_S.ASSIGNED).count()


def _check_consistent(campaign) -> None:
    """Every conversation is either still waiting, untouched, or assigned
    with exactly one "assigned" event naming the agent it is with."""
    rows = dict(Interaction.objects.filter(campaign=campaign).values_list("pk", "status"))
    agents = dict(Interaction.objects.filter(campaign=campaign).values_list("pk", "agent_id"))
    events = list(
        InteractionEvent.objects.filter(
            interaction__campaign=campaign, to_status=_S.ASSIGNED
        ).values_list("interaction_id", "data")
    )
    per_row = Counter(interaction_id for interaction_id, _ in events)
    assert len(rows) == CONVERSATIONS
    assert set(rows.values()) <= {_S.QUEUED, _S.ASSIGNED}
    twice = {pk: n for pk, n in per_row.items() if n > 1}
    assert not twice, f"conversations assigned more than once: {twice}"
    assigned = {pk for pk, status in rows.items() if status == _S.ASSIGNED}
    assert assigned == set(per_row), "an assignment without its event, or the reverse"
    assert all(agents[pk] is None for pk, status in rows.items() if status == _S.QUEUED)
    wrong = [pk for pk, data in events if data.get("agent") != agents[pk]]
    assert not wrong, f"event names another agent than the row holds: {wrong[:5]}"
    loads = Counter(agents[pk] for pk in assigned)
    over = {agent: n for agent, n in loads.items() if n > CAPACITY}
    assert not over, f"agents above their capacity of {CAPACITY}: {over}"


def _wait_until_gone(pid: int) -> None:
    wait_for(
        lambda: pid not in {p for p, _, _ in other_backends()},
        timeout=60,
        what=f"the killed worker's database session {pid} to end",
    )


def test_worker_killed_mid_routing_assigns_every_conversation_exactly_once(
    groups_exist, processes, measure
):
    channel = SmsChannelFactory(strategy="linear", service_level_seconds=60)
    campaign = channel.campaign
    now = timezone.now()
    agents = AgentFactory.create_batch(AGENTS)
    AgentProfile.objects.filter(user__in=agents).update(
        status=AgentProfile.Status.AVAILABLE,
        status_changed_at=now,
        last_seen_at=now,
        capacity=CAPACITY,
    )
    Member.objects.bulk_create(
        Member(campaign=campaign, agent=agent, position=position)
        for position, agent in enumerate(agents, start=1)
    )
    Interaction.objects.bulk_create(
        Interaction(
            campaign=campaign,
            channel_kind="sms",
            customer_number=f"+1415777{i:04d}",
            status=_S.QUEUED,
            created_at=now,
            queued_at=now - datetime.timedelta(seconds=CONVERSATIONS - i),
            last_message_at=now,
        )
        for i in range(CONVERSATIONS)
    )
    blocked = agents[BLOCKED_POSITION - 1]
    started = time.monotonic()

    # Kill 1: inside a routing transaction, blocked on the held profile lock.
    locker = psycopg.connect(database_url())
    try:
        locker.execute(
            f"SELECT id FROM {AgentProfile._meta.db_table} WHERE user_id = %s FOR UPDATE",
            [blocked.pk],
        )
        first = processes.worker("worker-1")
        route_campaign_task.delay(campaign.pk)
        waiting = wait_for(
            lambda: [pid for pid, wait, _ in other_backends() if wait == "Lock"],
            timeout=60,
            what="the router to block on the locked agent",
        )
        in_flight_committed = _assigned(campaign)
        first.kill()
    finally:
        locker.rollback()
        locker.close()
    # The killed worker's session notices only when it next talks to its client.
    _wait_until_gone(waiting[0])
    after_first = _assigned(campaign)
    assert 0 < after_first < CONVERSATIONS, "the kill did not land mid-way"
    assert after_first == in_flight_committed, "the batch in flight left rows behind"
    _check_consistent(campaign)

    # Kill 2: wherever the next worker is once it passes a random mark.
    mark = random.randint(after_first + 1, CONVERSATIONS - 1)
    second = processes.worker("worker-2")
    route_all_campaigns_task.delay()
    wait_for(
        lambda: _assigned(campaign) >= mark,
        timeout=60,
        interval=0.002,
        what="the second worker to make progress",
    )
    second.kill()
    wait_for(
        lambda: not other_backends(),
        timeout=60,
        what="the second worker's database session to end",
    )
    after_second = _assigned(campaign)
    _check_consistent(campaign)

    # What beat does every 5 s: route every campaign with someone waiting.
    third = processes.worker("worker-3")
    route_all_campaigns_task.delay()
    wait_for(
        lambda: not Interaction.objects.filter(campaign=campaign, status=_S.QUEUED).exists(),
        timeout=120,
        interval=0.2,
        what="the third worker to empty the queue",
    )
    third.stop()
    elapsed = time.monotonic() - started

    _check_consistent(campaign)
    assert _assigned(campaign) == CONVERSATIONS
    loads = Counter(
        Interaction.objects.filter(campaign=campaign).values_list("agent_id", flat=True)
    )
    assert sum(loads.values()) == CONVERSATIONS
    assert max(loads.values()) <= CAPACITY
    assert not Interaction.objects.filter(
        campaign=campaign, queue_outcome=Interaction.QueueOutcome.ATTENDED, left_queue_at=None
    ).exists()
    measure(
        f"assigned when killed: {after_first} (blocked mid-batch), {after_second} "
        f"(second kill, mark {mark}); then {CONVERSATIONS - after_second} by the third worker; "
        f"{len(loads)} agents, most loaded {max(loads.values())}/{CAPACITY}; {elapsed:.1f} s"
    )


def test_worker_killed_after_twilio_accepted_a_text_never_sends_it_twice(
    processes, scripted_twilio, measure
):
    """The sending worker dies between Twilio accepting a text and recording its SID.

    The kill is real; the recovery (beat's stale-send sweep, then the
    re-dispatched attempt) runs here with the clock moved past the lease
    and the sweep's threshold, which a worker would reach two minutes later.
    """
    fake = scripted_twilio
    fake.hang_seconds = 60  # Twilio has it, and the answer never comes
    connector = TwilioConnectorFactory(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    number = PhoneNumberFactory(connector=connector, number=TWILIO_NUMBER)
    channel = SmsChannelFactory(phone_number=number, connector=connector)
    processes.extra_env["TWILIO_API_BASE_URL"] = fake.base_url
    worker = processes.worker("worker")
    body = "Your order has shipped"
    fake.script(body, [ACCEPT_THEN_HANG])
    interaction = InteractionFactory(campaign=channel.campaign, customer_number="+14155550123")
    message = sms_send(interaction=interaction, body=body, sender=Message.Sender.SYSTEM)

    wait_for(lambda: fake.accepted_for(body), timeout=60, what="Twilio to accept the text")
    worker.kill()
    killed_at = timezone.now()
    message.refresh_from_db()
    assert message.provider_sid is None
    assert message.outcome_unknown
    assert message.attempts == 1

    # Inside the lease, a redelivered task must not touch it.
    outcome, _ = sms_deliver(message_id=message.pk, now=killed_at + SEND_LEASE / 2)
    assert outcome is SendOutcome.NOT_DUE
    # Beat's sweep finds it once the lease has run out and a minute more has passed.
    later = killed_at + SEND_LEASE + STALE_AFTER + datetime.timedelta(seconds=1)
    assert sms_redispatch_stale(now=later) == [message.pk]
    outcome, _ = sms_deliver(message_id=message.pk, now=later)

    assert outcome is SendOutcome.SENT
    message.refresh_from_db()
    assert fake.posts_for(body) == 1, "the text was sent again"
    (accepted,) = fake.accepted_for(body)
    assert message.provider_sid == accepted["sid"]
    assert not message.duplicate_possible
    assert not message.outcome_unknown
    measure(
        f"1 POST, adopted by look-up {(later - killed_at).total_seconds():.0f} s "
        "(virtual) after the kill"
    )
