"""The live bot runner: sessions in the database, one Celery task per step.

A step task locks its session and runs only if the session still points at
that step, then moves the pointer in the same transaction as the step's
effects (a queued SMS, an answer, a finished conversation). A redelivered
task finds the pointer moved and does nothing, so no message goes out twice;
a worker that dies mid-step rolls back and the redelivery runs it again.
Webhook calls are the exception that cannot be rolled back: a redelivery may
POST again, with the same X-Bot-Delivery header so the receiver can tell.
"""

import datetime
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from bots.models import Bot, BotSession, BotStep
from bots.runner import BotFailure, Context, Next, Reply, post_webhook, run_step, take_reply
from bots.steps import WebhookOptions, ask_options
from campaigns.channels import get_channel
from campaigns.locks import interaction_locked
from campaigns.models import Interaction, InteractionEvent, display_name
from campaigns.routing import interaction_bot_finish, interaction_bot_requeue
from campaigns.selectors import queue_placeholders
from contactcenter.celery import publish_on_commit
from contactcenter.exceptions import ApplicationError

logger = logging.getLogger(__name__)

_Status = BotSession.Status
SWEEP_BATCH_SIZE = 200


def bot_save(*, bot: Bot) -> Bot:
    """Save a bot; a new one gets its webhook signing secret."""
    if not bot.webhook_secret:
        bot.webhook_secret = secrets.token_urlsafe(32)
    bot.full_clean(exclude=["webhook_secret"])
    bot.save()
    return bot


def bot_rotate_secret(*, bot: Bot) -> Bot:
    """Give the bot a new webhook signing secret; the old one stops working at once."""
    bot.webhook_secret = secrets.token_urlsafe(32)
    bot.save(update_fields=["webhook_secret"])
    return bot


def _note(session: BotSession, reason: str, **data) -> None:
    InteractionEvent.objects.create(
        interaction_id=session.interaction_id,
        from_status=session.interaction.status,
        to_status=session.interaction.status,
        actor=InteractionEvent.Actor.BOT,
        reason=reason[:255],
        data={"bot": session.bot_id, "session": session.pk, "trigger": session.trigger, **data},
    )


def _schedule(session: BotSession) -> None:
    from bots.tasks import run_bot_step_task

    publish_on_commit(run_bot_step_task, session.pk, session.step_position)


def _save(session: BotSession, now: datetime.datetime, *fields: str) -> None:
    session.updated_at = now
    session.save(update_fields=[*fields, "updated_at"])


def _end(session: BotSession, status: str, now: datetime.datetime, error: str = "") -> None:
    session.status = status
    session.error = error
    session.wait_deadline_at = None
    # The answers too: the last step may have just stored one.
    _save(session, now, "status", "error", "wait_deadline_at", "answers")


# Starting and stopping -------------------------------------------------------


@transaction.atomic
def bot_start(
    *, interaction_id: int, bot: Bot | None, trigger: str, now: datetime.datetime | None = None
) -> BotSession | None:
    """Start `bot` on the conversation for `trigger`; its first step runs after commit.

    Nothing starts for no bot, an inactive one, one without steps, or a
    trigger that already fired on this conversation. Any other bot still
    running on the conversation stops: one bot talks at a time.
    """
    now = now or timezone.now()
    if bot is None or not bot.active:
        return None
    first = bot.steps.order_by("position", "id").first()
    if first is None:
        return None
    if BotSession.objects.filter(interaction_id=interaction_id, trigger=trigger).exists():
        return None
    bot_stop(interaction_id=interaction_id, reason=f"another bot started ({trigger})", now=now)
    session = BotSession.objects.create(
        interaction_id=interaction_id,
        bot=bot,
        trigger=trigger,
        step_position=first.position,
        created_at=now,
        updated_at=now,
    )
    session.interaction = Interaction.objects.get(pk=interaction_id)
    _note(session, f"bot “{bot}” started ({session.get_trigger_display().lower()})")
    _schedule(session)
    return session


@transaction.atomic
def bot_stop(
    *,
    interaction_id: int,
    reason: str,
    triggers: tuple[str, ...] | None = None,
    now: datetime.datetime | None = None,
) -> int:
    """Stop the bots still active on a conversation; returns how many stopped."""
    now = now or timezone.now()
    # Only the session rows: locking the joined conversation and bot rows too
    # would wait on routers and block every other conversation's use of the bot.
    sessions = BotSession.objects.select_for_update(of=("self",)).filter(
        interaction_id=interaction_id, status__in=BotSession.ACTIVE_STATUSES
    )
    if triggers:
        sessions = sessions.filter(trigger__in=triggers)
    stopped = 0
    for session in sessions.select_related("interaction", "bot"):
        _end(session, _Status.STOPPED, now, error=reason)
        _note(session, f"bot “{session.bot}” stopped: {reason}")
        stopped += 1
    return stopped


def bot_hand_over(*, interaction_ids: list[int], now: datetime.datetime | None = None) -> int:
    """Agents took these conversations: their start bots stop at once.

    Called inside the assigning transaction, so the bot's next step (which
    re-checks its session) never speaks after the agent has the conversation.
    """
    now = now or timezone.now()
    # SKIP LOCKED: a session locked now is in a webhook call (other steps lock
    # the conversation first, so routers never get here for theirs); waiting
    # would stall routing for up to the webhook's timeout. That step's next
    # step sees the conversation assigned and stops the bot.
    sessions = list(
        BotSession.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            interaction_id__in=interaction_ids,
            trigger=BotSession.Trigger.START,
            status__in=BotSession.ACTIVE_STATUSES,
        )
        .select_related("interaction", "bot")
    )
    if not sessions:
        return 0
    BotSession.objects.filter(pk__in=[s.pk for s in sessions]).update(
        status=_Status.STOPPED,
        error="an agent took over",
        wait_deadline_at=None,
        updated_at=now,
    )
    InteractionEvent.objects.bulk_create(
        InteractionEvent(
            interaction_id=s.interaction_id,
            from_status=s.interaction.status,
            to_status=s.interaction.status,
            actor=InteractionEvent.Actor.BOT,
            reason=f"bot “{s.bot}” stopped: an agent took over",
            data={"bot": s.bot_id, "session": s.pk, "trigger": s.trigger},
            created_at=now,
        )
        for s in sessions
    )
    return len(sessions)


# Running steps ---------------------------------------------------------------


class _LivePort:
    """Effects of a step on the real conversation."""

    def __init__(self, session: BotSession, now: datetime.datetime) -> None:
        self.session = session
        self.interaction = session.interaction
        self.now = now

    def send(self, text: str) -> None:
        try:
            get_channel(self.interaction.channel_kind).send_text(
                interaction=self.interaction, body=text
            )
        except ApplicationError as error:
            raise BotFailure(str(error)) from None

    def finish(self, disposition: str) -> None:
        try:
            interaction_bot_finish(
                interaction_id=self.interaction.pk, disposition_name=disposition, now=self.now
            )
        except ApplicationError as error:
            raise BotFailure(str(error)) from None

    def requeue(self, campaign: str) -> None:
        try:
            interaction_bot_requeue(
                interaction_id=self.interaction.pk, campaign_name=campaign, now=self.now
            )
        except ApplicationError as error:
            raise BotFailure(str(error)) from None

    def call_webhook(self, options: WebhookOptions, payload: dict) -> Mapping[str, Any]:
        return post_webhook(
            options,
            payload,
            secret=self.session.bot.webhook_secret,
            delivery=f"{self.session.pk}-{self.session.step_position}",
        )


def _context(session: BotSession, now: datetime.datetime) -> Context:
    interaction = session.interaction
    agent = interaction.agent
    values = {
        "customer_number": interaction.customer_number,
        "campaign": interaction.campaign.name,
        "agent_name": display_name(agent),
        **queue_placeholders(interaction=interaction, now=now),
    }
    payload = {
        "trigger": session.trigger,
        "bot": {"id": session.bot_id, "name": session.bot.name},
        "interaction": {
            "id": interaction.pk,
            "status": interaction.status,
            "campaign": {"id": interaction.campaign_id, "name": interaction.campaign.name},
            "customer_number": interaction.customer_number,
            "agent": agent.get_username() if agent else None,
        },
    }
    return Context(values=values, answers=dict(session.answers), payload=payload)


def _next_position(session: BotSession) -> int | None:
    return (
        BotStep.objects.filter(bot_id=session.bot_id, position__gt=session.step_position)
        .order_by("position")
        .values_list("position", flat=True)
        .first()
    )


def _go_on(session: BotSession, now: datetime.datetime) -> None:
    """Point the session at the following step and schedule it, or end it."""
    following = _next_position(session)
    if following is None:
        _end(session, _Status.DONE, now)
        return
    session.step_position = following
    session.status = _Status.RUNNING
    session.retries = 0
    session.wait_deadline_at = None
    _save(session, now, "step_position", "status", "retries", "wait_deadline_at", "answers")
    _schedule(session)


def _fail(session: BotSession, error: str, now: datetime.datetime) -> None:
    _end(session, _Status.FAILED, now, error=error)
    _note(session, f"bot “{session.bot}” failed: {error}", error=error)
    logger.warning("Bot session %s failed: %s", session.pk, error)


def _locked_session(session_id: int) -> BotSession | None:
    return (
        BotSession.objects.select_for_update(of=("self",))
        .select_related("bot", "interaction__campaign", "interaction__agent")
        .filter(pk=session_id)
        .first()
    )


def _still_wanted(session: BotSession) -> str:
    """Why the session must stop before its next step, or ""."""
    if not session.bot.active:
        return "the bot was made inactive"
    if (
        session.trigger == BotSession.Trigger.START
        and session.interaction.status != Interaction.Status.QUEUED
    ):
        return "the conversation left the queue"
    return ""


def _lock_conversation_first(session_id: int, position: int) -> None:
    """Lock the conversation before the session when the step may change it.

    Routers lock the conversation and then stop its start bot (the session),
    so a step that locked the session first and then wrote to the
    conversation (a message, finishing it) could deadlock with them. A
    webhook step writes nothing there and does not hold the conversation
    during its HTTP call.
    """
    row = (
        BotSession.objects.filter(pk=session_id, status=_Status.RUNNING, step_position=position)
        .values("interaction_id", "bot_id")
        .first()
    )
    if row is None:
        return  # a redelivery: the step is done, and the session lock below says so
    kind = (
        BotStep.objects.filter(bot_id=row["bot_id"], position=position)
        .values_list("kind", flat=True)
        .first()
    )
    if kind != BotStep.Kind.WEBHOOK:
        interaction_locked(interaction_id=row["interaction_id"])


@transaction.atomic
def bot_run_step(*, session_id: int, position: int, now: datetime.datetime | None = None) -> str:
    """Run the step at `position` of the session, if the session still expects it."""
    now = now or timezone.now()
    _lock_conversation_first(session_id, position)
    session = _locked_session(session_id)
    if session is None or session.status != _Status.RUNNING or session.step_position != position:
        return "skipped"
    if reason := _still_wanted(session):
        _end(session, _Status.STOPPED, now, error=reason)
        _note(session, f"bot “{session.bot}” stopped: {reason}")
        return "stopped"
    step = BotStep.objects.filter(bot_id=session.bot_id, position=position).first()
    if step is None:
        # The supervisor removed the step meanwhile: carry on with the next.
        _go_on(session, now)
        return "moved on"
    context = _context(session, now)
    try:
        # A savepoint, so a step that fails half-way leaves none of its effects.
        with transaction.atomic():
            outcome = run_step(step, context, _LivePort(session, now))
    except BotFailure as failure:
        _fail(session, str(failure), now)
        return "failed"
    session.answers = context.answers
    if outcome is Next.WAIT:
        wait = ask_options(step.options).wait_seconds
        session.status = _Status.WAITING
        session.wait_deadline_at = now + datetime.timedelta(seconds=wait) if wait else None
        _save(session, now, "status", "wait_deadline_at", "answers")
    elif outcome is Next.END:
        session.status = _Status.DONE
        _save(session, now, "status", "answers")
    else:
        _go_on(session, now)
    return outcome.value


@transaction.atomic
def bot_customer_replied(
    *,
    interaction_id: int,
    text: str,
    only_answers: bool = False,
    now: datetime.datetime | None = None,
) -> bool:
    """Give the customer's message to the bot waiting for an answer, if any.

    Returns True when a bot took it. The message itself is already stored on
    the conversation, where the agent sees it too. With `only_answers` (a
    survey on a closed conversation), a reply that is not one of the
    question's choices stops the bot and is not taken: the customer has
    moved on, and their message should open a new conversation.
    """
    now = now or timezone.now()
    session_id = (
        BotSession.objects.filter(interaction_id=interaction_id, status=_Status.WAITING)
        .values_list("pk", flat=True)
        .first()
    )
    if session_id is None:
        return False
    # Conversation, then session: the order of routers and of bot_run_step.
    interaction_locked(interaction_id=interaction_id)
    session = _locked_session(session_id)
    if session is None or session.status != _Status.WAITING:
        return False
    if reason := _still_wanted(session):
        _end(session, _Status.STOPPED, now, error=reason)
        _note(session, f"bot “{session.bot}” stopped: {reason}")
        return False
    step = BotStep.objects.filter(bot_id=session.bot_id, position=session.step_position).first()
    if step is None or step.kind != BotStep.Kind.ASK:
        _go_on(session, now)
        return True
    context = _context(session, now)
    verdict, retry_text = take_reply(step, text, retries=session.retries, context=context)
    if only_answers and verdict is not Reply.ANSWERED:
        reason = "the customer wrote something other than an answer"
        _end(session, _Status.STOPPED, now, error=reason)
        _note(session, f"bot “{session.bot}” stopped: {reason}")
        return False
    session.answers = context.answers
    if verdict is Reply.ASK_AGAIN:
        session.retries += 1
        _save(session, now, "retries")
        try:
            _LivePort(session, now).send(retry_text)
        except BotFailure as failure:
            _fail(session, str(failure), now)
        return True
    if verdict is Reply.GIVE_UP:
        _note(session, "no acceptable answer; the bot moved on", step=step.position)
    _go_on(session, now)
    return True


def waiting_session_for(*, campaign_id: int, customer_number: str) -> BotSession | None:
    """A bot on a closed conversation (a survey, an apology) waiting for this customer."""
    return (
        BotSession.objects.filter(
            status=_Status.WAITING,
            # A start bot talks only while its conversation waits in the queue; one
            # left waiting on a closed conversation must not take the customer's
            # next message, which opens a new conversation.
            trigger__in=[BotSession.Trigger.FINISH, BotSession.Trigger.TIMEOUT],
            interaction__campaign_id=campaign_id,
            interaction__customer_number=customer_number,
        )
        .exclude(interaction__status__in=Interaction.OPEN_STATUSES)
        .select_related("interaction")
        .order_by("-created_at")
        .first()
    )


@transaction.atomic
def sweep_bot_waits(
    *, now: datetime.datetime | None = None, batch_size: int = SWEEP_BATCH_SIZE
) -> list[int]:
    """Move on the questions whose wait limit passed without an answer."""
    now = now or timezone.now()
    due = list(
        BotSession.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=_Status.WAITING, wait_deadline_at__lte=now)
        .select_related("bot", "interaction")
        .order_by("wait_deadline_at")[:batch_size]
    )
    for session in due:
        _note(session, "no reply in time; the bot moved on", step=session.step_position)
        _go_on(session, now)
    return [s.pk for s in due]


# A running session untouched this long lost its step task (a broker restart).
STALE_AFTER = datetime.timedelta(minutes=1)


@transaction.atomic
def bot_redispatch_stale(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Schedule again the steps of running sessions whose task seems lost.

    Harmless when the task was only slow: the step runs once, whichever
    delivery comes first.
    """
    now = now or timezone.now()
    stale = list(
        BotSession.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            status=_Status.RUNNING, updated_at__lt=now - STALE_AFTER
        )[:limit]
    )
    for session in stale:
        _save(session, now)
        _schedule(session)
    return len(stale)
