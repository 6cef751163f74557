"""Outbound SMS: refusals, sending through the fake Twilio, retries, exactly-once."""

import datetime

import pytest
from django.utils import timezone

from campaigns.models import BlacklistEntry, Interaction, InteractionEvent
from campaigns.services import blacklist_add_number, interaction_enqueue_new
from contactcenter.exceptions import ApplicationError
from sms_channel.models import Message
from sms_channel.providers import get_provider
from sms_channel.services import (
    MAX_SEND_ATTEMPTS,
    SEND_LEASE,
    STALE_AFTER,
    SendOutcome,
    _claim_for_sending,
    connector_opt_out_list,
    sms_conversation_start,
    sms_deliver,
    sms_redispatch_stale,
    sms_send,
)
from sms_channel.tasks import send_sms_task, sweep_stale_sms_task
from tests.factories import (
    AgentFactory,
    BlacklistEntryFactory,
    BlacklistFactory,
    CampaignFactory,
    MemberFactory,
    SmsChannelFactory,
)
from tests.sms_channel.twilio_helpers import ACCOUNT_SID, CUSTOMER, TWILIO_NUMBER

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2026, 3, 2, 15, 0, tzinfo=datetime.UTC)
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
MESSAGING_SERVICE_SID = "MG" + "0123456789abcdef" * 2


def seconds(n: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=n)


def open_interaction(channel, *, customer: str = CUSTOMER, now=T0) -> Interaction:
    return interaction_enqueue_new(
        campaign=channel.campaign,
        channel_kind="sms",
        customer_number=customer,
        max_queue_seconds=0,
        now=now,
    )


def queue_message(channel, *, body: str = "Your order ships today.", now=T0) -> Message:
    """Store a queued outbound message without running its task."""
    return sms_send(
        interaction=open_interaction(channel, now=now),
        body=body,
        sender=Message.Sender.AGENT,
        now=now,
    )


def gets(fake) -> list:
    return [r for r in fake.requests if r.method == "GET"]


# sms_send and the task, end to end -------------------------------------------


def test_send_stores_a_queued_message_and_the_task_posts_it(
    twilio_channel, fake_twilio, settings, django_capture_on_commit_callbacks
):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"
    interaction = open_interaction(twilio_channel)
    agent = AgentFactory()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = sms_send(
            interaction=interaction,
            body="  Your order ships today.  ",
            sender=Message.Sender.AGENT,
            user=agent,
            now=T0,
        )
    stored = Message.objects.get()
    assert stored.pk == message.pk
    assert (stored.direction, stored.sender, stored.sender_user) == ("outbound", "agent", agent)
    assert (stored.from_number, stored.to_number) == (TWILIO_NUMBER, CUSTOMER)
    assert stored.body == "Your order ships today."
    assert stored.status == Message.Status.QUEUED
    assert stored.interaction == interaction
    assert (stored.attempts, stored.next_attempt_at, stored.provider_sid) == (0, T0, None)
    assert fake_twilio.requests == []  # nothing leaves before the commit
    assert len(callbacks) == 1

    before = timezone.now()
    callbacks[0]()
    after = timezone.now()

    assert len(fake_twilio.requests) == 1
    request = fake_twilio.created[0]
    assert request.path == MESSAGES_PATH
    assert request.account_sid == ACCOUNT_SID
    assert request.form == {
        "To": CUSTOMER,
        "From": TWILIO_NUMBER,
        "Body": "Your order ships today.",
        "StatusCallback": "https://cc.example.com/sms/twilio/status/",
    }
    message.refresh_from_db()
    assert message.provider_sid == fake_twilio.sent[0]["sid"]
    assert message.status == "queued"
    assert before <= message.sent_at <= after
    assert message.attempts == 1
    assert message.next_attempt_at is None
    assert (message.outcome_unknown, message.duplicate_possible) == (False, False)
    interaction.refresh_from_db()
    assert interaction.last_message_at == T0


def test_messaging_service_sid_is_sent_instead_of_from(
    twilio_channel, fake_twilio, settings, django_capture_on_commit_callbacks
):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"
    connector = twilio_channel.connector
    connector.messaging_service_sid = MESSAGING_SERVICE_SID
    connector.save(update_fields=["messaging_service_sid"])

    with django_capture_on_commit_callbacks(execute=True):
        message = queue_message(twilio_channel)

    assert [r.form for r in fake_twilio.requests] == [
        {
            "To": CUSTOMER,
            "MessagingServiceSid": MESSAGING_SERVICE_SID,
            "Body": "Your order ships today.",
            "StatusCallback": "https://cc.example.com/sms/twilio/status/",
        }
    ]
    message.refresh_from_db()
    assert message.status == "accepted"
    assert message.provider_sid == fake_twilio.sent[0]["sid"]


def test_no_status_callback_without_a_public_base_url(
    twilio_channel, fake_twilio, settings, django_capture_on_commit_callbacks
):
    settings.PUBLIC_BASE_URL = ""

    with django_capture_on_commit_callbacks(execute=True):
        queue_message(twilio_channel)

    assert len(fake_twilio.created) == 1
    assert fake_twilio.created[0].form == {
        "To": CUSTOMER,
        "From": TWILIO_NUMBER,
        "Body": "Your order ships today.",
    }


def test_a_body_of_exactly_1600_characters_is_sent(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        queue_message(twilio_channel, body="x" * 1600)

    assert fake_twilio.created[0].form["Body"] == "x" * 1600


# Refusals -------------------------------------------------------------------


def assert_refused(channel, fake, capture, *, body="Hello", match: str) -> None:
    interaction = open_interaction(channel)
    with capture(execute=True) as callbacks, pytest.raises(ApplicationError, match=match):
        sms_send(interaction=interaction, body=body, sender=Message.Sender.AGENT, now=T0)
    assert callbacks == []
    assert not Message.objects.exists()
    assert fake.requests == []
    interaction.refresh_from_db()
    assert interaction.last_message_at == T0


@pytest.mark.parametrize("body", ["", "   \n "])
def test_empty_body_is_refused(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks, body
):
    assert_refused(
        twilio_channel,
        fake_twilio,
        django_capture_on_commit_callbacks,
        body=body,
        match="Type a message",
    )


def test_body_over_1600_characters_is_refused(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    assert_refused(
        twilio_channel,
        fake_twilio,
        django_capture_on_commit_callbacks,
        body="x" * 1601,
        match="at most 1600 characters; this one has 1601",
    )


def test_opted_out_number_is_refused(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    blacklist_add_number(
        blacklist=connector_opt_out_list(connector=twilio_channel.connector), number=CUSTOMER
    )
    assert_refused(
        twilio_channel,
        fake_twilio,
        django_capture_on_commit_callbacks,
        match=r"\+14155550199 has opted out",
    )


def test_number_on_an_enabled_outbound_blacklist_is_refused(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number=CUSTOMER)
    twilio_channel.outbound_blacklist_enabled = True
    twilio_channel.save(update_fields=["outbound_blacklist_enabled"])
    twilio_channel.outbound_blacklists.add(BlacklistFactory(), blacklist)

    assert_refused(
        twilio_channel,
        fake_twilio,
        django_capture_on_commit_callbacks,
        match="outbound blacklist",
    )


def test_outbound_blacklist_switched_off_does_not_refuse(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number=CUSTOMER)
    twilio_channel.outbound_blacklists.add(blacklist)
    assert twilio_channel.outbound_blacklist_enabled is False

    with django_capture_on_commit_callbacks(execute=True):
        message = queue_message(twilio_channel)

    assert [r.form["To"] for r in fake_twilio.created] == [CUSTOMER]
    message.refresh_from_db()
    assert message.provider_sid == fake_twilio.sent[0]["sid"]


def test_outbound_blacklist_only_refuses_numbers_on_the_chosen_lists(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    BlacklistEntryFactory(number=CUSTOMER)  # on a list the channel does not use
    twilio_channel.outbound_blacklist_enabled = True
    twilio_channel.save(update_fields=["outbound_blacklist_enabled"])
    twilio_channel.outbound_blacklists.add(BlacklistFactory())

    with django_capture_on_commit_callbacks(execute=True):
        queue_message(twilio_channel)

    assert len(fake_twilio.created) == 1


# Retries and exactly-once ----------------------------------------------------


def test_rate_limited_send_backs_off_then_succeeds(twilio_channel, fake_twilio):
    message = queue_message(twilio_channel)
    fake_twilio.fail_next(1, status=429, code=20429, message="Too Many Requests")

    assert sms_deliver(message_id=message.pk, now=T0) == (SendOutcome.RETRY_LATER, 2)
    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED
    assert (message.attempts, message.next_attempt_at) == (1, T0 + seconds(2))
    assert message.error_code == "20429"
    assert message.error_message.endswith("Too Many Requests")
    # A 429 was not processed by Twilio: nothing to look up next time.
    assert message.outcome_unknown is False

    assert sms_deliver(message_id=message.pk, now=T0 + seconds(1)) == (SendOutcome.NOT_DUE, 0)
    assert len(fake_twilio.requests) == 1

    assert sms_deliver(message_id=message.pk, now=T0 + seconds(2)) == (SendOutcome.SENT, 0)

    assert len(fake_twilio.sent) == 1
    assert len(fake_twilio.created) == 2
    assert gets(fake_twilio) == []
    assert fake_twilio.created[0].form == fake_twilio.created[1].form
    message.refresh_from_db()
    assert message.attempts == 2
    assert message.provider_sid == fake_twilio.sent[0]["sid"]
    assert message.status == "queued"  # Twilio's status from the fake
    assert message.sent_at == T0 + seconds(2)
    assert (message.error_code, message.error_message) == ("", "")
    assert message.next_attempt_at is None
    assert message.first_attempt_at == T0
    assert message.duplicate_possible is False


def test_5xx_after_twilio_stored_it_adopts_the_sid_without_sending_again(
    twilio_channel, fake_twilio
):
    message = queue_message(twilio_channel)
    fake_twilio.store_then_fail_status = 500

    assert sms_deliver(message_id=message.pk, now=T0) == (SendOutcome.RETRY_LATER, 2)
    message.refresh_from_db()
    assert message.outcome_unknown is True
    assert message.error_code == "20500"
    assert message.provider_sid is None
    assert len(fake_twilio.sent) == 1

    fake_twilio.store_then_fail_status = None
    assert sms_deliver(message_id=message.pk, now=T0 + seconds(2)) == (SendOutcome.SENT, 0)

    assert len(fake_twilio.created) == 1
    assert len(fake_twilio.sent) == 1
    [lookup] = gets(fake_twilio)
    assert lookup.path == MESSAGES_PATH
    assert (lookup.query["To"], lookup.query["From"]) == (CUSTOMER, TWILIO_NUMBER)
    message.refresh_from_db()
    assert message.provider_sid == fake_twilio.sent[0]["sid"]
    assert message.status == "queued"
    assert message.attempts == 2
    assert (message.outcome_unknown, message.duplicate_possible) == (False, False)
    assert (message.error_code, message.error_message) == ("", "")


def test_5xx_without_a_stored_message_sends_again_and_flags_a_possible_duplicate(
    twilio_channel, fake_twilio
):
    message = queue_message(twilio_channel)
    fake_twilio.fail_next(1, status=500, code=20500)

    assert sms_deliver(message_id=message.pk, now=T0) == (SendOutcome.RETRY_LATER, 2)
    assert sms_deliver(message_id=message.pk, now=T0 + seconds(2)) == (SendOutcome.SENT, 0)

    assert [r.method for r in fake_twilio.requests] == ["POST", "GET", "POST"]
    assert len(fake_twilio.sent) == 1
    message.refresh_from_db()
    assert message.provider_sid == fake_twilio.sent[0]["sid"]
    assert message.attempts == 2
    assert message.duplicate_possible is True
    assert message.outcome_unknown is False


def test_a_lookup_ignores_another_message_with_a_different_body(twilio_channel, fake_twilio):
    """Only a message with the same body counts as the earlier attempt."""
    earlier = queue_message(twilio_channel, body="An earlier text")
    assert sms_deliver(message_id=earlier.pk, now=T0)[0] is SendOutcome.SENT
    message = sms_send(
        interaction=earlier.interaction, body="A second text", sender="agent", now=T0
    )
    fake_twilio.fail_next(1, status=503, code=20503)

    sms_deliver(message_id=message.pk, now=T0)
    assert sms_deliver(message_id=message.pk, now=T0 + seconds(2))[0] is SendOutcome.SENT

    assert [m["body"] for m in fake_twilio.sent] == ["An earlier text", "A second text"]
    message.refresh_from_db()
    assert message.provider_sid == fake_twilio.sent[1]["sid"]
    assert message.duplicate_possible is True


def test_a_lookup_skips_an_identical_text_already_recorded_and_adopts_the_right_one(
    twilio_channel, fake_twilio
):
    """Agents and bots repeat short texts: the earlier "OK" is not this one."""
    earlier = queue_message(twilio_channel, body="OK")
    assert sms_deliver(message_id=earlier.pk, now=T0)[0] is SendOutcome.SENT
    message = sms_send(interaction=earlier.interaction, body="OK", sender="agent", now=T0)
    fake_twilio.store_then_fail_status = 500
    assert sms_deliver(message_id=message.pk, now=T0)[0] is SendOutcome.RETRY_LATER
    fake_twilio.store_then_fail_status = None

    assert sms_deliver(message_id=message.pk, now=T0 + seconds(2))[0] is SendOutcome.SENT

    assert [r.method for r in fake_twilio.requests] == ["POST", "POST", "GET"]
    assert len(fake_twilio.sent) == 2
    earlier.refresh_from_db()
    message.refresh_from_db()
    assert earlier.provider_sid == fake_twilio.sent[0]["sid"]
    assert message.provider_sid == fake_twilio.sent[1]["sid"]
    assert message.duplicate_possible is False


def test_a_worker_killed_before_sending_leaves_a_lease_then_the_message_is_sent_once(
    twilio_channel, fake_twilio
):
    message = queue_message(twilio_channel)
    claimed_message, previous_unknown = _claim_for_sending(message_id=message.pk, now=T0)
    assert (claimed_message.attempts, previous_unknown) == (1, False)
    # ... and the worker dies here, before any network call.
    message.refresh_from_db()
    assert (message.attempts, message.outcome_unknown) == (1, True)
    assert message.next_attempt_at == T0 + SEND_LEASE

    assert sms_deliver(message_id=message.pk, now=T0 + seconds(59)) == (SendOutcome.NOT_DUE, 0)
    assert fake_twilio.requests == []

    assert sms_deliver(message_id=message.pk, now=T0 + seconds(61)) == (SendOutcome.SENT, 0)

    assert [r.method for r in fake_twilio.requests] == ["GET", "POST"]
    assert len(fake_twilio.sent) == 1
    message.refresh_from_db()
    assert message.provider_sid == fake_twilio.sent[0]["sid"]
    assert message.attempts == 2
    assert message.sent_at == T0 + seconds(61)


def test_a_worker_killed_after_twilio_took_the_message_is_not_sent_twice(
    twilio_channel, fake_twilio
):
    message = queue_message(twilio_channel)
    claimed, _ = _claim_for_sending(message_id=message.pk, now=T0)
    get_provider(claimed.channel.connector).send(
        from_number=claimed.from_number,
        to_number=claimed.to_number,
        body=claimed.body,
        status_callback="",
    )
    # ... and the worker dies before recording the SID.

    assert sms_deliver(message_id=message.pk, now=T0 + SEND_LEASE + seconds(1))[0] is (
        SendOutcome.SENT
    )

    assert [r.method for r in fake_twilio.requests] == ["POST", "GET"]
    assert len(fake_twilio.sent) == 1
    message.refresh_from_db()
    assert message.provider_sid == fake_twilio.sent[0]["sid"]
    assert message.duplicate_possible is False


def test_a_permanent_4xx_fails_without_retrying(twilio_channel, fake_twilio):
    message = queue_message(twilio_channel)
    fake_twilio.fail_next(1, status=400, code=21211, message="Invalid 'To' Phone Number")

    assert sms_deliver(message_id=message.pk, now=T0) == (SendOutcome.FAILED, 0)

    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.error_code == "21211"
    assert message.error_message.endswith("Invalid 'To' Phone Number")
    assert message.next_attempt_at is None
    assert message.provider_sid is None
    assert message.attempts == 1
    assert message.status_updated_at == T0
    assert sms_deliver(message_id=message.pk, now=T0 + datetime.timedelta(hours=1)) == (
        SendOutcome.NOT_DUE,
        0,
    )
    assert len(fake_twilio.requests) == 1
    assert sms_redispatch_stale(now=T0 + datetime.timedelta(hours=1)) == []
    assert not BlacklistEntry.objects.exists()


def test_21610_fails_and_puts_the_number_on_the_opt_out_list(twilio_channel, fake_twilio):
    message = queue_message(twilio_channel)
    fake_twilio.fail_next(1, status=400, code=21610, message="Attempt to send to unsubscribed")

    assert sms_deliver(message_id=message.pk, now=T0) == (SendOutcome.FAILED, 0)

    message.refresh_from_db()
    assert (message.status, message.error_code) == (Message.Status.FAILED, "21610")
    assert message.next_attempt_at is None
    opt_out_list = connector_opt_out_list(connector=twilio_channel.connector)
    entry = BlacklistEntry.objects.get()
    assert (entry.blacklist, entry.number) == (opt_out_list, CUSTOMER)
    assert "21610" in entry.reason
    with pytest.raises(ApplicationError, match="has opted out"):
        sms_send(interaction=message.interaction, body="Hello?", sender="agent", now=T0)
    assert len(fake_twilio.requests) == 1


def test_retries_are_bounded_and_the_failure_says_it_may_have_been_sent(
    twilio_channel, fake_twilio
):
    message = queue_message(twilio_channel)
    fake_twilio.fail_next(MAX_SEND_ATTEMPTS, status=503, code=20503, message="Unavailable")

    now = T0
    outcomes = []
    for _ in range(MAX_SEND_ATTEMPTS):
        outcomes.append(sms_deliver(message_id=message.pk, now=now))
        message.refresh_from_db()
        now = message.next_attempt_at or now

    assert outcomes == [
        (SendOutcome.RETRY_LATER, 2),
        (SendOutcome.RETRY_LATER, 4),
        (SendOutcome.RETRY_LATER, 8),
        (SendOutcome.RETRY_LATER, 16),
        (SendOutcome.RETRY_LATER, 32),
        (SendOutcome.FAILED, 0),
    ]
    assert message.status == Message.Status.FAILED
    assert message.attempts == MAX_SEND_ATTEMPTS
    assert message.next_attempt_at is None
    assert message.error_code == "20503"
    assert message.error_message.startswith("Gave up after repeated errors")
    assert "the provider may still have sent it" in message.error_message
    assert message.error_message.endswith("Unavailable")
    assert message.duplicate_possible is True
    assert len(fake_twilio.created) == MAX_SEND_ATTEMPTS
    # Before each retry the provider was asked whether it had the message.
    assert len(gets(fake_twilio)) == MAX_SEND_ATTEMPTS - 1
    assert fake_twilio.sent == []
    assert sms_deliver(message_id=message.pk, now=now + datetime.timedelta(hours=1))[0] is (
        SendOutcome.NOT_DUE
    )
    assert len(fake_twilio.created) == MAX_SEND_ATTEMPTS


def test_a_redelivered_task_for_a_sent_message_sends_nothing(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_message(twilio_channel)
    message.refresh_from_db()
    sid, sent_at = message.provider_sid, message.sent_at

    assert send_sms_task.apply(args=(message.pk,)).get() == "not_due"
    assert sms_deliver(message_id=message.pk) == (SendOutcome.NOT_DUE, 0)

    assert len(fake_twilio.requests) == 1
    message.refresh_from_db()
    assert (message.provider_sid, message.sent_at, message.attempts) == (sid, sent_at, 1)


def test_the_task_for_an_unknown_message_does_nothing(fake_twilio):
    assert send_sms_task.apply(args=(987654,)).get() == "not_due"
    assert fake_twilio.requests == []


# The stale sweep ------------------------------------------------------------


def test_redispatch_takes_only_messages_overdue_by_more_than_stale_after(twilio_channel):
    now = T0 + datetime.timedelta(minutes=10)
    interaction = open_interaction(twilio_channel)

    def queued(due):
        return sms_send(interaction=interaction, body=f"due {due}", sender="agent", now=due)

    stale = queued(now - STALE_AFTER - seconds(1))
    older = queued(now - STALE_AFTER - seconds(300))
    almost = queued(now - STALE_AFTER + seconds(5))
    current = queued(now)
    sent = queued(now - seconds(600))
    Message.objects.filter(pk=sent.pk).update(
        status=Message.Status.SENT, provider_sid="SMsent", next_attempt_at=None
    )
    failed = queued(now - seconds(600))
    Message.objects.filter(pk=failed.pk).update(status=Message.Status.FAILED)

    assert sms_redispatch_stale(now=now) == [older.pk, stale.pk]

    stale.refresh_from_db()
    older.refresh_from_db()
    assert stale.next_attempt_at == now
    assert older.next_attempt_at == now
    assert sms_redispatch_stale(now=now + seconds(1)) == []
    # A minute later they are overdue again (their re-dispatched task was lost too).
    again = sms_redispatch_stale(now=now + STALE_AFTER + seconds(1))
    assert sorted(again) == sorted([stale.pk, older.pk, almost.pk, current.pk])


def test_redispatch_respects_the_limit(twilio_channel):
    interaction = open_interaction(twilio_channel)
    first, second = (
        sms_send(interaction=interaction, body=f"text {n}", sender="agent", now=T0 + seconds(n))
        for n in (0, 1)
    )
    later = T0 + datetime.timedelta(hours=1)

    assert sms_redispatch_stale(now=later, limit=1) == [first.pk]
    assert sms_redispatch_stale(now=later, limit=1) == [second.pk]
    assert sms_redispatch_stale(now=later, limit=1) == []


def test_sweep_task_sends_the_messages_whose_task_was_lost(twilio_channel, fake_twilio):
    long_ago = timezone.now() - datetime.timedelta(minutes=5)
    lost = queue_message(twilio_channel, now=long_ago)  # its on-commit task never ran
    recent = sms_send(
        interaction=lost.interaction, body="Just queued", sender="agent", now=timezone.now()
    )

    assert sweep_stale_sms_task.apply().get() == 1

    assert [r.form["Body"] for r in fake_twilio.created] == ["Your order ships today."]
    lost.refresh_from_db()
    assert lost.provider_sid == fake_twilio.sent[0]["sid"]
    assert lost.attempts == 1
    recent.refresh_from_db()
    assert (recent.provider_sid, recent.attempts) == (None, 0)
    assert sweep_stale_sms_task.apply().get() == 0
    assert len(fake_twilio.requests) == 1


# The Simulator connector ------------------------------------------------------


def test_simulator_connector_sends_nothing_over_http(
    fake_twilio, django_capture_on_commit_callbacks
):
    channel = SmsChannelFactory()

    with django_capture_on_commit_callbacks(execute=True):
        message = queue_message(channel)

    assert fake_twilio.requests == []
    message.refresh_from_db()
    assert message.status == Message.Status.DELIVERED
    assert message.provider_sid.startswith("SIM")
    assert message.attempts == 1
    assert message.sent_at is not None
    assert message.from_number == channel.phone_number.number


# Agent-started conversations ---------------------------------------------------


@pytest.fixture
def member_agent(twilio_channel):
    return MemberFactory(campaign=twilio_channel.campaign).agent


def test_conversation_start_opens_an_assigned_outbound_interaction(
    twilio_channel, member_agent, fake_twilio, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message = sms_conversation_start(
            campaign=twilio_channel.campaign,
            customer_number=" +1 (415) 555-0199 ",
            body="Hi, this is Support about your order.",
            agent=member_agent,
            now=T0,
        )

    interaction = Interaction.objects.get()
    assert interaction.customer_number == CUSTOMER
    assert interaction.direction == Interaction.Direction.OUTBOUND
    assert interaction.status == Interaction.Status.ASSIGNED
    assert (interaction.agent, interaction.assigned_at) == (member_agent, T0)
    assert interaction.campaign == twilio_channel.campaign
    event = InteractionEvent.objects.get()
    assert (event.interaction, event.from_status, event.to_status) == (
        interaction,
        "",
        "assigned",
    )
    assert (event.actor, event.user, event.created_at) == ("agent", member_agent, T0)

    message.refresh_from_db()
    assert message.interaction == interaction
    assert (message.sender, message.sender_user) == ("agent", member_agent)
    assert message.to_number == CUSTOMER
    assert message.provider_sid == fake_twilio.sent[0]["sid"]
    assert [(r.form["To"], r.form["Body"]) for r in fake_twilio.created] == [
        (CUSTOMER, "Hi, this is Support about your order.")
    ]


def assert_start_refused(channel, agent, fake, capture, *, number=CUSTOMER, match: str) -> None:
    interactions_before = Interaction.objects.count()
    with capture(execute=True) as callbacks, pytest.raises(ApplicationError, match=match):
        sms_conversation_start(
            campaign=channel.campaign,
            customer_number=number,
            body="Hello from Support",
            agent=agent,
            now=T0,
        )
    assert callbacks == []
    assert Interaction.objects.count() == interactions_before
    assert not Message.objects.exists()
    assert fake.requests == []


def test_conversation_start_refuses_a_non_member(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    outsider = MemberFactory(campaign=CampaignFactory()).agent
    assert_start_refused(
        twilio_channel,
        outsider,
        fake_twilio,
        django_capture_on_commit_callbacks,
        match="not an active member of campaign “Support”",
    )
    assert not InteractionEvent.objects.exists()


def test_conversation_start_refuses_an_inactive_member(
    twilio_channel, fake_twilio, django_capture_on_commit_callbacks
):
    member = MemberFactory(campaign=twilio_channel.campaign, active=False)
    assert_start_refused(
        twilio_channel,
        member.agent,
        fake_twilio,
        django_capture_on_commit_callbacks,
        match="not an active member",
    )


@pytest.mark.parametrize(
    ("number", "match"),
    [
        ("4155550199", "no country code"),
        ("+1 415", "wrong number of digits"),
        ("+1 call me", "not a phone number"),
        ("", "Enter a phone number"),
    ],
)
def test_conversation_start_refuses_an_invalid_number(
    twilio_channel, member_agent, fake_twilio, django_capture_on_commit_callbacks, number, match
):
    assert_start_refused(
        twilio_channel,
        member_agent,
        fake_twilio,
        django_capture_on_commit_callbacks,
        number=number,
        match=match,
    )


def test_conversation_start_refuses_an_opted_out_number(
    twilio_channel, member_agent, fake_twilio, django_capture_on_commit_callbacks
):
    blacklist_add_number(
        blacklist=connector_opt_out_list(connector=twilio_channel.connector), number=CUSTOMER
    )
    assert_start_refused(
        twilio_channel,
        member_agent,
        fake_twilio,
        django_capture_on_commit_callbacks,
        number="+1 415 555 0199",
        match="has opted out",
    )


def test_conversation_start_refuses_a_customer_with_an_open_conversation(
    twilio_channel, member_agent, fake_twilio, django_capture_on_commit_callbacks
):
    existing = open_interaction(twilio_channel)
    assert_start_refused(
        twilio_channel,
        member_agent,
        fake_twilio,
        django_capture_on_commit_callbacks,
        match=r"\+14155550199 already has an open conversation in “Support”",
    )
    existing.refresh_from_db()
    assert existing.status == Interaction.Status.QUEUED
    assert existing.agent is None
