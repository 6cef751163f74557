"""Bot steps racing the rest of the contact center: real threads, commits and row locks."""

import threading
import time

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from bots import services
from bots.models import Bot, BotSession, BotStep
from bots.services import bot_run_step, bot_stop
from campaigns.models import AGENTS_GROUP, SUPERVISORS_GROUP, AgentProfile, Interaction
from campaigns.routing import route_campaign
from sms_channel.models import Message, SmsChannel
from tests.factories import (
    AgentFactory,
    BotFactory,
    BotStepFactory,
    InteractionFactory,
    MemberFactory,
    SmsChannelFactory,
)

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


def in_thread(target, errors: list) -> threading.Thread:
    def run():
        try:
            target()
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("kind", "text", "options", "ends"),
    [
        # The bot's only step was done; a question was stopped by the hand-over.
        (BotStep.Kind.SEND_MESSAGE, "Hello", {}, BotSession.Status.DONE),
        (BotStep.Kind.ASK, "Your order number?", {"key": "order"}, BotSession.Status.STOPPED),
    ],
)
def test_a_step_running_while_an_agent_gets_the_conversation_does_not_deadlock(
    monkeypatch, kind, text, options, ends
):
    """The router locks the conversation, then stops its start bot; the step
    must take the same locks in the same order, or each waits for the other."""
    channel = SmsChannelFactory(strategy=SmsChannel.Strategy.LINEAR)
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).update(
        status=AgentProfile.Status.AVAILABLE, last_seen_at=timezone.now()
    )
    MemberFactory(campaign=channel.campaign, agent=agent)
    bot = BotFactory()
    BotStepFactory(bot=bot, position=1, kind=kind, text=text, options=options)
    interaction = InteractionFactory(campaign=channel.campaign)
    session = BotSession.objects.create(
        interaction=interaction, bot=bot, trigger=BotSession.Trigger.START, step_position=1
    )

    step_started = threading.Event()
    router_blocked = threading.Event()
    pids = {}
    original_send = services._LivePort.send

    def send_when_the_router_waits(port, body):
        step_started.set()
        router_blocked.wait(timeout=10)
        original_send(port, body)

    monkeypatch.setattr(services._LivePort, "send", send_when_the_router_waits)

    def step():
        bot_run_step(session_id=session.pk, position=1)

    def router():
        step_started.wait(timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pids["router"] = cursor.fetchone()[0]
        route_campaign(campaign_id=channel.campaign_id)

    errors: list[BaseException] = []
    threads = [in_thread(step, errors), in_thread(router, errors)]
    step_started.wait(timeout=10)
    wait_until(lambda: "router" in pids)
    # Give the router time to reach its first lock wait, if it has one.
    time.sleep(0.5)
    router_blocked.set()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    # The router may have skipped the conversation the step held; the next pass takes it.
    route_campaign(campaign_id=channel.campaign_id)
    interaction.refresh_from_db()
    assert (interaction.status, interaction.agent_id) == (Interaction.Status.ASSIGNED, agent.pk)
    session.refresh_from_db()
    assert session.status == ends
    # The step spoke before the agent had the conversation.
    (message,) = Message.objects.filter(sender="bot")
    assert message.created_at <= interaction.assigned_at


def test_stopping_a_bot_locks_only_its_session(monkeypatch):
    """bot_stop must not hold the conversation or the bot: routers and every
    other conversation starting the same bot would wait on it."""
    bot = BotFactory()
    interaction = InteractionFactory(campaign=SmsChannelFactory().campaign)
    BotSession.objects.create(
        interaction=interaction, bot=bot, trigger=BotSession.Trigger.START, step_position=1
    )
    stopped, release = threading.Event(), threading.Event()

    def stop_and_hold():
        with transaction.atomic():
            assert bot_stop(interaction_id=interaction.pk, reason="test") == 1
            stopped.set()
            release.wait(timeout=10)

    errors: list[BaseException] = []
    thread = in_thread(stop_and_hold, errors)
    try:
        assert stopped.wait(timeout=10)
        with transaction.atomic():
            Bot.objects.select_for_update(nowait=True).get(pk=bot.pk)
            Interaction.objects.select_for_update(nowait=True).get(pk=interaction.pk)
    finally:
        release.set()
        thread.join(timeout=10)
    assert errors == []
