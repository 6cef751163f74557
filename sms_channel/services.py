import datetime
import enum
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, When
from django.urls import reverse
from django.utils import timezone

from bots.models import BotSession
from bots.services import bot_customer_replied, bot_start, bot_stop, waiting_session_for
from campaigns.models import Blacklist, Campaign, Interaction
from campaigns.phone import normalize_e164
from campaigns.routing import interaction_close_by_customer
from campaigns.schedule import campaign_is_open
from campaigns.selectors import campaign_queued_count, number_is_listed, open_interaction_for
from campaigns.services import (
    blacklist_add_number,
    blacklist_remove_number,
    interaction_enqueue_new,
    interaction_reject_new,
    interaction_start_outbound,
    interaction_touch,
)
from contactcenter.celery import publish_on_commit
from contactcenter.exceptions import ApplicationError
from sms_channel.models import Connector, Message, PhoneNumber, SmsChannel, account_sid_validator
from sms_channel.providers import ProviderError, get_provider
from sms_channel.providers.base import UNSUBSCRIBED_RECIPIENT

CHANNEL_KIND = "sms"
# Twilio's limit for one message body (it is split into segments).
MAX_BODY_LENGTH = 1600

# Written by connector_save on an existing row; opt_out_list is left out because
# only this module sets it, and a stale form instance must not clear it.
CONNECTOR_EDITABLE_FIELDS = [
    field.name
    for field in Connector._meta.concrete_fields
    if field.editable and not field.primary_key
]


@transaction.atomic
def connector_save(*, connector: Connector, auth_token: str | None = None) -> Connector:
    """Validate and save `connector`, creating its opt-out list if it has none.

    `auth_token` replaces the stored token; None or "" keeps it, because a
    password field is never filled back in and so posts "" for "unchanged".
    """
    if connector.pk is None:
        if auth_token:
            connector.auth_token = auth_token
        connector.full_clean()
        connector.save()
    else:
        # The lock serialises concurrent saves, so a connector gets one opt-out list.
        stored = Connector.objects.select_for_update().get(pk=connector.pk)
        connector.auth_token = auth_token or stored.auth_token
        connector.opt_out_list_id = stored.opt_out_list_id
        connector.full_clean()
        connector.save(update_fields=CONNECTOR_EDITABLE_FIELDS)
    connector_opt_out_list(connector=connector)
    return connector


def _opt_out_list_create(*, connector: Connector) -> Blacklist:
    max_length = Blacklist._meta.get_field("name").max_length
    base = f"Opt-outs: {connector.name}"[:max_length]
    name = base
    # A deleted connector leaves its list behind (it holds customers' STOPs), so
    # a new connector with the same name gets a numbered list of its own.
    suffix_number = 2
    while Blacklist.objects.filter(name=name).exists():
        suffix = f" ({suffix_number})"
        name = base[: max_length - len(suffix)] + suffix
        suffix_number += 1
    return Blacklist.objects.create(
        name=name,
        is_opt_out_list=True,
        description=f"Customers who texted STOP to a number of connector “{connector.name}”.",
    )


@transaction.atomic
def sms_channel_save(*, channel: SmsChannel) -> SmsChannel:
    """Validate and save a campaign's SMS channel (its blacklists are saved by the caller).

    full_clean() runs here, not only in the admin form, because the rules that
    are not database constraints (the number belongs to the connector, an
    enabled channel's connector is active) bind every caller.
    """
    channel.full_clean()
    channel.save()
    return channel


@transaction.atomic
def connector_opt_out_list(*, connector: Connector) -> Blacklist:
    """The connector's opt-out list, created on first use if it has none."""
    if connector.opt_out_list_id is None:
        locked = Connector.objects.select_for_update().get(pk=connector.pk)
        if locked.opt_out_list_id is None:
            locked.opt_out_list = _opt_out_list_create(connector=locked)
            locked.save(update_fields=["opt_out_list"])
        connector.opt_out_list = locked.opt_out_list
    return connector.opt_out_list


# Inbound SMS ----------------------------------------------------------------

# Twilio's default keywords, matched on the whole trimmed body, any case.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})


class NumberNotServed(Exception):
    """No SMS channel uses the number a message was sent to."""


@dataclass(frozen=True)
class InboundSms:
    provider_sid: str
    from_number: str
    to_number: str
    body: str
    media: list[dict] = field(default_factory=list)


def _channel_for_number(number: str) -> SmsChannel:
    """The enabled channel on `number`, else the last disabled one using it."""
    channel = (
        SmsChannel.objects.select_related("campaign", "connector", "phone_number")
        .filter(phone_number__number=number)
        .order_by(Case(When(status=SmsChannel.Status.ENABLED, then=0), default=1), "-updated_at")
        .first()
    )
    if channel is None:
        raise NumberNotServed(number)
    return channel


@transaction.atomic
def sms_receive(*, inbound: InboundSms, now: datetime.datetime | None = None) -> Message:
    """Store one inbound SMS and apply the channel's intake rules, in order.

    A message whose provider SID is already stored changes nothing (provider
    retries). The Message insert comes first so that two identical webhooks
    racing each other collide on the SID's unique index before doing any work;
    the loser raises IntegrityError and its retry finds the stored message.
    """
    now = now or timezone.now()
    existing = Message.objects.filter(provider_sid=inbound.provider_sid).first()
    if existing is not None:
        return existing
    channel = _channel_for_number(inbound.to_number)
    message = Message.objects.create(
        channel=channel,
        direction=Message.Direction.INBOUND,
        sender=Message.Sender.CUSTOMER,
        from_number=inbound.from_number,
        to_number=inbound.to_number,
        body=inbound.body,
        media=inbound.media,
        provider_sid=inbound.provider_sid,
        status=Message.Status.RECEIVED,
        created_at=now,
        status_updated_at=now,
    )
    _apply_intake_rules(channel=channel, message=message, now=now)
    return message


def _apply_intake_rules(*, channel: SmsChannel, message: Message, now) -> None:
    campaign = channel.campaign
    customer = message.from_number
    keyword = message.body.strip().upper()
    open_interaction = open_interaction_for(
        campaign=campaign, channel_kind=CHANNEL_KIND, customer_number=customer
    )

    # 1. Opt-out / opt-in / help keywords.
    if keyword in OPT_OUT_KEYWORDS:
        _set_purpose(message, Message.Purpose.OPT_OUT, interaction=open_interaction)
        blacklist_add_number(
            blacklist=connector_opt_out_list(connector=channel.connector),
            number=customer,
            reason=f"Texted {keyword} to {message.to_number}",
        )
        if open_interaction is not None:
            interaction_close_by_customer(
                interaction_id=open_interaction.pk, reason="opted_out", now=now
            )
        elif survey := waiting_session_for(campaign_id=campaign.pk, customer_number=customer):
            bot_stop(interaction_id=survey.interaction_id, reason="the customer opted out", now=now)
        return
    # YES is also an everyday answer: it opts in only someone who opted out.
    if keyword in OPT_IN_KEYWORDS and (keyword != "YES" or _opted_out(channel, customer)):
        _set_purpose(message, Message.Purpose.OPT_IN, interaction=open_interaction)
        if channel.connector.opt_out_list_id:
            blacklist_remove_number(blacklist=channel.connector.opt_out_list, number=customer)
        return
    if keyword in HELP_KEYWORDS:
        # Twilio answers HELP itself; we only keep the message.
        _set_purpose(message, Message.Purpose.HELP, interaction=open_interaction)
        return

    # 2. Channel disabled (or its campaign switched off).
    if channel.status != SmsChannel.Status.ENABLED:
        _reject(message=message, campaign=campaign, reason="channel_disabled", now=now)
        return
    if not campaign.active:
        _reject(message=message, campaign=campaign, reason="campaign_inactive", now=now)
        return

    # 3. Inbound blacklist: stored and rejected, never answered.
    if channel.inbound_blacklist_enabled and number_is_listed(
        number=customer, blacklist_ids=list(channel.inbound_blacklists.values_list("id", flat=True))
    ):
        _reject(message=message, campaign=campaign, reason="blacklisted", now=now)
        return

    # 4. An open conversation takes the message (and its bot, if one asked).
    if open_interaction is not None:
        _attach(message, open_interaction)
        interaction_touch(interaction=open_interaction, now=now)
        bot_customer_replied(interaction_id=open_interaction.pk, text=message.body, now=now)
        return
    # A bot on a closed conversation (a survey) waits for this reply; anything
    # but an answer ends it and opens a new conversation below.
    survey = waiting_session_for(campaign_id=campaign.pk, customer_number=customer)
    if survey and bot_customer_replied(
        interaction_id=survey.interaction_id, text=message.body, only_answers=True, now=now
    ):
        _attach(message, survey.interaction)
        return

    # 5. Out of hours.
    if not campaign_is_open(campaign, at=now):
        _reject(message=message, campaign=campaign, reason="out_of_hours", now=now)
        _auto_reply(
            channel=channel,
            to_number=customer,
            body=channel.out_of_hours_message,
            purpose=Message.Purpose.OUT_OF_HOURS,
            interaction=message.interaction,
            at_most_every=datetime.timedelta(hours=channel.out_of_hours_repeat_hours),
            now=now,
        )
        return

    # 6. Queue at its cap. The channel row lock serialises intake on this
    # channel, so two messages cannot both take the last place.
    if channel.max_interactions:
        SmsChannel.objects.select_for_update(no_key=True).filter(pk=channel.pk).first()
        if campaign_queued_count(campaign=campaign) >= channel.max_interactions:
            _reject(message=message, campaign=campaign, reason="queue_full", now=now)
            _auto_reply(
                channel=channel,
                to_number=customer,
                body=channel.queue_full_message,
                purpose=Message.Purpose.QUEUE_FULL,
                interaction=message.interaction,
                now=now,
            )
            return

    # 7. A new conversation waits in the queue.
    interaction = interaction_enqueue_new(
        campaign=campaign,
        channel_kind=CHANNEL_KIND,
        customer_number=customer,
        max_queue_seconds=channel.max_queue_seconds,
        now=now,
    )
    _attach(message, interaction)
    bot_start(
        interaction_id=interaction.pk,
        bot=channel.bot_on_start,
        trigger=BotSession.Trigger.START,
        now=now,
    )


def _opted_out(channel: SmsChannel, number: str) -> bool:
    opt_out_id = channel.connector.opt_out_list_id
    return bool(opt_out_id) and number_is_listed(number=number, blacklist_ids=[opt_out_id])


def _set_purpose(message: Message, purpose: str, *, interaction: Interaction | None) -> None:
    message.purpose = purpose
    message.interaction = interaction
    message.save(update_fields=["purpose", "interaction"])


def _attach(message: Message, interaction: Interaction) -> None:
    message.interaction = interaction
    message.save(update_fields=["interaction"])


def _reject(*, message: Message, campaign, reason: str, now) -> None:
    interaction = interaction_reject_new(
        campaign=campaign,
        channel_kind=CHANNEL_KIND,
        customer_number=message.from_number,
        reason=reason,
        now=now,
    )
    _attach(message, interaction)


def _auto_reply(
    *,
    channel: SmsChannel,
    to_number: str,
    body: str,
    purpose: str,
    interaction: Interaction | None,
    now,
    at_most_every: datetime.timedelta | None = None,
) -> Message | None:
    """Send a system reply unless it is empty, already sent recently, or the
    customer may not be texted (opted out, outbound blacklist)."""
    if not body.strip() or sms_refusal_reason(channel=channel, to_number=to_number):
        return None
    if (
        at_most_every
        and Message.objects.filter(
            channel=channel,
            to_number=to_number,
            purpose=purpose,
            created_at__gte=now - at_most_every,
        ).exists()
    ):
        return None
    return _queue_outbound(
        channel=channel,
        to_number=to_number,
        body=body,
        sender=Message.Sender.SYSTEM,
        purpose=purpose,
        interaction=interaction,
        now=now,
    )


# Delivery status callbacks ---------------------------------------------------

# Statuses only move forward; callbacks may arrive out of order.
_STATUS_RANK = {
    Message.Status.QUEUED: 0,
    Message.Status.ACCEPTED: 1,
    Message.Status.SCHEDULED: 1,
    Message.Status.SENDING: 2,
    Message.Status.SENT: 3,
    Message.Status.DELIVERED: 4,
    Message.Status.UNDELIVERED: 4,
    Message.Status.FAILED: 4,
    Message.Status.CANCELED: 4,
    Message.Status.PARTIALLY_DELIVERED: 4,
    Message.Status.READ: 5,
}


@transaction.atomic
def sms_status_update(
    *, provider_sid: str, status: str, error_code: str = "", now: datetime.datetime | None = None
) -> Message | None:
    """Apply a delivery-status callback; returns None for an unknown SID."""
    now = now or timezone.now()
    message = (
        Message.objects.select_for_update(no_key=True)
        .filter(provider_sid=provider_sid, direction=Message.Direction.OUTBOUND)
        .first()
    )
    if message is None:
        return None
    if _STATUS_RANK.get(status, -1) <= _STATUS_RANK.get(message.status, -1):
        return message
    message.status = status
    message.status_updated_at = now
    fields = ["status", "status_updated_at"]
    if error_code:
        message.error_code = error_code
        fields.append("error_code")
    message.save(update_fields=fields)
    if error_code == UNSUBSCRIBED_RECIPIENT:
        _opt_out_after_21610(message)
    return message


# Outbound SMS ---------------------------------------------------------------

MAX_SEND_ATTEMPTS = 6
# How long one attempt may hold a message: above the provider timeout (twice:
# a look-up and a send), so a lease only expires when the worker is gone.
SEND_LEASE = datetime.timedelta(seconds=60)


def sms_refusal_reason(*, channel: SmsChannel, to_number: str) -> str:
    """Why `to_number` may not be texted on `channel`, or "" if it may."""
    if channel.connector_id and _opted_out(channel, to_number):
        return f"{to_number} has opted out (texted STOP); they must text START first."
    if channel.outbound_blacklist_enabled and number_is_listed(
        number=to_number,
        blacklist_ids=list(channel.outbound_blacklists.values_list("id", flat=True)),
    ):
        return f"{to_number} is on this campaign's outbound blacklist."
    return ""


def _queue_outbound(
    *,
    channel: SmsChannel,
    to_number: str,
    body: str,
    sender: str,
    purpose: str = Message.Purpose.CONVERSATION,
    interaction: Interaction | None = None,
    user=None,
    now: datetime.datetime,
) -> Message:
    message = Message.objects.create(
        channel=channel,
        interaction=interaction,
        direction=Message.Direction.OUTBOUND,
        sender=sender,
        sender_user=user,
        purpose=purpose,
        from_number=channel.phone_number.number,
        to_number=to_number,
        body=body,
        status=Message.Status.QUEUED,
        next_attempt_at=now,
        created_at=now,
    )
    from sms_channel.tasks import send_sms_task

    publish_on_commit(send_sms_task, message.pk)
    return message


def _validated_body(body: str) -> str:
    body = body.strip()
    if not body:
        raise ApplicationError("Type a message to send.")
    if len(body) > MAX_BODY_LENGTH:
        raise ApplicationError(
            f"An SMS can be at most {MAX_BODY_LENGTH} characters; this one has {len(body)}."
        )
    return body


@transaction.atomic
def sms_send(
    *,
    interaction: Interaction,
    body: str,
    sender: str,
    user=None,
    now: datetime.datetime | None = None,
) -> Message:
    """Queue a text to the customer of `interaction`; it is sent after commit.

    Refuses (ApplicationError) an empty or oversized body, an opted-out
    number and one on the outbound blacklist. Who may send on which
    conversation is the caller's check (agent pages, bots).
    """
    now = now or timezone.now()
    body = _validated_body(body)
    channel = (
        SmsChannel.objects.select_related("connector", "phone_number")
        .filter(campaign_id=interaction.campaign_id)
        .first()
    )
    if channel is None or channel.phone_number_id is None:
        raise ApplicationError(f"Campaign “{interaction.campaign}” has no SMS number to send from.")
    refusal = sms_refusal_reason(channel=channel, to_number=interaction.customer_number)
    if refusal:
        raise ApplicationError(refusal)
    message = _queue_outbound(
        channel=channel,
        to_number=interaction.customer_number,
        body=body,
        sender=sender,
        interaction=interaction,
        user=user,
        now=now,
    )
    interaction_touch(interaction=interaction, now=now, by_agent=sender == Message.Sender.AGENT)
    return message


@transaction.atomic
def sms_conversation_start(
    *, campaign, customer_number: str, body: str, agent, now: datetime.datetime | None = None
) -> Message:
    """An agent texts a customer first: a new conversation owned by that agent."""
    now = now or timezone.now()
    try:
        customer_number = normalize_e164(customer_number)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0]) from None
    body = _validated_body(body)
    channel = (
        SmsChannel.objects.select_related("connector", "phone_number")
        .filter(campaign=campaign, status=SmsChannel.Status.ENABLED)
        .first()
    )
    if channel is None:
        raise ApplicationError(f"Campaign “{campaign}” has no enabled SMS channel.")
    refusal = sms_refusal_reason(channel=channel, to_number=customer_number)
    if refusal:
        raise ApplicationError(refusal)
    interaction = interaction_start_outbound(
        campaign=campaign,
        channel_kind=CHANNEL_KIND,
        customer_number=customer_number,
        agent=agent,
        now=now,
    )
    return sms_send(
        interaction=interaction, body=body, sender=Message.Sender.AGENT, user=agent, now=now
    )


class SendOutcome(enum.Enum):
    SENT = "sent"
    NOT_DUE = "not_due"
    RETRY_LATER = "retry_later"
    FAILED = "failed"


def _claim_for_sending(*, message_id: int, now) -> tuple[Message, bool] | None:
    """Lease a due, unsent message to this worker (short transaction).

    Returns the message and whether the previous attempt's outcome is
    unknown, or None when the message is sent, failed, or leased elsewhere.
    """
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(no_key=True, of=("self",))
            .select_related("channel__connector")
            .filter(pk=message_id)
            .first()
        )
        if (
            message is None
            or message.status != Message.Status.QUEUED
            or message.provider_sid
            or (message.next_attempt_at and message.next_attempt_at > now)
        ):
            return None
        previous_unknown = message.outcome_unknown
        message.attempts += 1
        message.first_attempt_at = message.first_attempt_at or now
        message.next_attempt_at = now + SEND_LEASE
        message.outcome_unknown = True
        message.save(
            update_fields=["attempts", "first_attempt_at", "next_attempt_at", "outcome_unknown"]
        )
        return message, previous_unknown


def sms_deliver(
    *, message_id: int, now: datetime.datetime | None = None
) -> tuple[SendOutcome, int]:
    """Make one attempt to hand a queued outbound message to its provider.

    Returns the outcome and, for RETRY_LATER, the seconds to wait. Idempotent
    and safe from any number of workers: the attempt is claimed under a lease
    first, and no lock is held during network calls. If an earlier attempt's
    outcome is unknown (worker killed, timeout, 5xx), the provider is asked
    whether it already has the message before sending again, so a message
    the provider accepted is never sent twice.
    """
    now = now or timezone.now()
    claimed = _claim_for_sending(message_id=message_id, now=now)
    if claimed is None:
        return SendOutcome.NOT_DUE, 0
    message, previous_unknown = claimed
    provider = get_provider(message.channel.connector)
    try:
        if previous_unknown:
            found = provider.find_sent(
                from_number=message.from_number,
                to_number=message.to_number,
                body=message.body,
                since=message.first_attempt_at - datetime.timedelta(minutes=1),
            )
            recorded = set(
                Message.objects.filter(provider_sid__in=[f.sid for f in found]).values_list(
                    "provider_sid", flat=True
                )
            )
            for candidate in found:
                if candidate.sid not in recorded:
                    return _record_sent(message, candidate, now=now)
            message.duplicate_possible = True
        result = provider.send(
            from_number=message.from_number,
            to_number=message.to_number,
            body=message.body,
            status_callback=status_callback_url(),
        )
    except ProviderError as exc:
        return _record_failure(message, exc, now=now)
    return _record_sent(message, result, now=now)


def _record_sent(message: Message, result, *, now) -> tuple[SendOutcome, int]:
    Message.objects.filter(pk=message.pk).update(
        provider_sid=result.sid,
        status=result.status,
        sent_at=now,
        status_updated_at=now,
        next_attempt_at=None,
        outcome_unknown=False,
        duplicate_possible=message.duplicate_possible,
        error_code="",
        error_message="",
    )
    return SendOutcome.SENT, 0


def _record_failure(message: Message, exc: ProviderError, *, now) -> tuple[SendOutcome, int]:
    update = {
        "error_code": exc.code,
        "error_message": exc.message[:255],
        "outcome_unknown": exc.ambiguous,
        "duplicate_possible": message.duplicate_possible,
        "status_updated_at": now,
    }
    if exc.retryable and message.attempts < MAX_SEND_ATTEMPTS:
        # Exponential backoff: 2, 4, 8, 16, 32 s.
        retry_in = 2**message.attempts
        update["next_attempt_at"] = now + datetime.timedelta(seconds=retry_in)
        Message.objects.filter(pk=message.pk).update(**update)
        return SendOutcome.RETRY_LATER, retry_in
    update["status"] = Message.Status.FAILED
    update["next_attempt_at"] = None
    if exc.ambiguous:
        update["error_message"] = (
            "Gave up after repeated errors; the provider may still have sent it. " + exc.message
        )[:255]
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(**update)
        if exc.code == UNSUBSCRIBED_RECIPIENT:
            _opt_out_after_21610(message)
    return SendOutcome.FAILED, 0


def _opt_out_after_21610(message: Message) -> None:
    """The provider says the customer unsubscribed: mirror it in our list."""
    blacklist_add_number(
        blacklist=connector_opt_out_list(connector=message.channel.connector),
        number=message.to_number,
        reason="Provider reported the recipient unsubscribed (21610)",
    )


# A due message untouched this long had its task lost (broker restart, worker
# killed before acking): the sweep dispatches it again.
STALE_AFTER = datetime.timedelta(seconds=60)


@transaction.atomic
def sms_redispatch_stale(*, now: datetime.datetime | None = None, limit: int = 500) -> list[int]:
    """Claim outbound messages whose send is overdue and restart their clock.

    Returns their ids for the caller to dispatch. Claimed with SKIP LOCKED so
    several sweepers never take the same rows, and the due time moves to now,
    so a message is re-dispatched at most once per STALE_AFTER.
    """
    now = now or timezone.now()
    ids = list(
        Message.objects.select_for_update(skip_locked=True, no_key=True)
        .filter(
            status=Message.Status.QUEUED,
            direction=Message.Direction.OUTBOUND,
            next_attempt_at__lte=now - STALE_AFTER,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    Message.objects.filter(pk__in=ids).update(next_attempt_at=now)
    return ids


def status_callback_url() -> str:
    """Where the provider reports delivery; empty when no public URL is set."""
    if not settings.PUBLIC_BASE_URL:
        return ""
    return settings.PUBLIC_BASE_URL + reverse("sms_channel:twilio-status")


# Set-up --------------------------------------------------------------------


@transaction.atomic
def twilio_connect(
    *, campaign_name: str, account_sid: str, auth_token: str, number: str
) -> SmsChannel:
    """Point a campaign's SMS channel at a Twilio number, creating what is missing.

    The connector is found by Account SID (or created), its token updated;
    the number must not belong to another connector. Raises ApplicationError
    or ValidationError, and then nothing is changed.
    """
    campaign = Campaign.objects.filter(name=campaign_name).first()
    if campaign is None:
        raise ApplicationError(f"No campaign is named “{campaign_name}”.")
    try:
        account_sid_validator(account_sid)
        number = normalize_e164(number)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0]) from None
    if not auth_token.strip():
        raise ApplicationError("The auth token is empty.")
    connector = (
        Connector.objects.filter(provider=Connector.Provider.TWILIO, account_sid=account_sid)
        .order_by("pk")
        .first()
    ) or Connector(
        name=f"Twilio {account_sid[-6:]}",
        provider=Connector.Provider.TWILIO,
        account_sid=account_sid,
    )
    connector.active = True
    connector = connector_save(connector=connector, auth_token=auth_token.strip())
    phone_number = PhoneNumber.objects.filter(number=number).first()
    if phone_number is None:
        phone_number = PhoneNumber(connector=connector, number=number, label=campaign.name)
        phone_number.full_clean()
        phone_number.save()
    elif phone_number.connector_id != connector.pk:
        raise ApplicationError(
            f"{number} belongs to connector “{phone_number.connector}”, not to this account."
        )
    channel = SmsChannel.objects.filter(campaign=campaign).first() or SmsChannel(campaign=campaign)
    channel.connector = connector
    channel.phone_number = phone_number
    channel.status = SmsChannel.Status.ENABLED
    return sms_channel_save(channel=channel)


def sms_simulate_inbound(
    *, to_number: str, from_number: str, body: str, now: datetime.datetime | None = None
) -> Message:
    """Deliver a customer's text to a Simulator number through the real intake."""
    is_simulator = PhoneNumber.objects.filter(
        number=to_number, connector__provider=Connector.Provider.SIMULATOR
    ).exists()
    if not is_simulator:
        raise ApplicationError(f"{to_number} is not a Simulator number.")
    inbound = InboundSms(
        provider_sid=f"SM{uuid.uuid4().hex}",
        from_number=from_number,
        to_number=to_number,
        body=body,
    )
    try:
        return sms_receive(inbound=inbound, now=now)
    except NumberNotServed:
        raise ApplicationError(
            f"No SMS channel uses {to_number}; give a campaign's SMS channel this number."
        ) from None
