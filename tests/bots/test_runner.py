"""The live bot runner on SMS conversations, end to end.

Customers text a Simulator number through the real intake; the steps the
services schedule run (eager Celery) when the on-commit callbacks execute, and
the Simulator provider "delivers" outbound messages to the local outbox. The
assertions read back the stored rows: sessions, messages, events, interactions.
"""

import datetime

import pytest
from django.utils import timezone

from bots.models import Bot, BotSession, BotStep
from bots.services import (
    bot_redispatch_stale,
    bot_run_step,
    bot_start,
    sweep_bot_waits,
)
from bots.tasks import run_bot_step_task
from campaigns.models import AgentProfile, Interaction, InteractionEvent
from campaigns.routing import interaction_finish, route_campaign, sweep_queue_timeouts
from sms_channel.models import Message, SmsChannel
from sms_channel.services import sms_simulate_inbound
from tests.factories import (
    AgentFactory,
    BotFactory,
    BotStepFactory,
    CampaignFactory,
    DispositionFactory,
    InteractionFactory,
    MemberFactory,
    SmsChannelFactory,
)

pytestmark = pytest.mark.django_db

NUMBER = "+12125550100"
CUSTOMER = "+15555550177"
SECRET = "whsec-test-0123456789abcdefghijklmnop"
S = Interaction.Status
Status = BotSession.Status
Trigger = BotSession.Trigger


@pytest.fixture
def channel(db) -> SmsChannel:
    """Campaign "Support", open 24/7, on a Simulator number, routed in member order."""
    return SmsChannelFactory(
        campaign=CampaignFactory(name="Support"),
        phone_number__number=NUMBER,
        strategy=SmsChannel.Strategy.LINEAR,
    )


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run a callable and then whatever it scheduled after commit (steps, sends)."""

    def run(function, /, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)

    return run


@pytest.fixture
def texts(run):
    """The customer texts the campaign's number; the intake and the bots run."""

    def texts(body: str, *, customer: str = CUSTOMER) -> Message:
        return run(sms_simulate_inbound, to_number=NUMBER, from_number=customer, body=body)

    return texts


def make_bot(*steps: tuple[str, str, dict], name: str = "Helper", **kwargs) -> Bot:
    """A bot with a webhook secret and these (kind, text, options) steps at 10, 20, ..."""
    bot = BotFactory(name=name, webhook_secret=SECRET, **kwargs)
    for n, (kind, text, options) in enumerate(steps, start=1):
        BotStepFactory(bot=bot, position=10 * n, kind=kind, text=text, options=options)
    return bot


def say(text: str) -> tuple[str, str, dict]:
    return (BotStep.Kind.SEND_MESSAGE, text, {})


def ask(text: str, **options) -> tuple[str, str, dict]:
    return (BotStep.Kind.ASK, text, options)


def use(channel: SmsChannel, **bots: Bot | None) -> None:
    SmsChannel.objects.filter(pk=channel.pk).update(**bots)


def bot_texts(customer: str = CUSTOMER) -> list[str]:
    """The bodies the bots sent to `customer`, oldest first."""
    return list(
        Message.objects.filter(sender=Message.Sender.BOT, to_number=customer)
        .order_by("id")
        .values_list("body", flat=True)
    )


def the_session(trigger: str = Trigger.START) -> BotSession:
    return BotSession.objects.get(trigger=trigger)


def bot_events(interaction: Interaction) -> list[str]:
    return list(
        InteractionEvent.objects.filter(interaction=interaction, actor=InteractionEvent.Actor.BOT)
        .order_by("id")
        .values_list("reason", flat=True)
    )


def available_agent(channel: SmsChannel):
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).update(
        status=AgentProfile.Status.AVAILABLE, last_seen_at=timezone.now()
    )
    MemberFactory(campaign=channel.campaign, agent=agent)
    return agent


def assigned_to_an_agent(channel: SmsChannel, run) -> tuple[Interaction, object]:
    agent = available_agent(channel)
    result = run(route_campaign, campaign_id=channel.campaign_id)
    assert result.assigned == 1
    interaction = Interaction.objects.get(agent=agent)
    assert interaction.status == S.ASSIGNED
    return interaction, agent


# Send a message ------------------------------------------------------------------------


def test_start_bot_greets_with_every_placeholder_filled(channel, texts):
    now = timezone.now()
    # Someone waits ahead, and a recent conversation waited two minutes.
    InteractionFactory(
        campaign=channel.campaign, customer_number="+15555550100", queued_at=now - seconds(60)
    )
    InteractionFactory(
        campaign=channel.campaign,
        customer_number="+15555550101",
        status=S.FINISHED,
        queued_at=now - seconds(600),
        left_queue_at=now - seconds(480),
        queue_outcome=Interaction.QueueOutcome.ATTENDED,
    )
    bot = make_bot(
        say("{campaign} here. You are number {queue_position}, wait {estimated_wait}."),
        say("We will text you at {customer_number}. {{Braces}} stay."),
        name="Greeter",
    )
    use(channel, bot_on_start=bot)

    texts("Hi, where is my order?")

    interaction = Interaction.objects.get(customer_number=CUSTOMER)
    assert interaction.status == S.QUEUED
    sent = Message.objects.filter(sender=Message.Sender.BOT).order_by("id")
    assert [m.body for m in sent] == [
        "Support here. You are number 2, wait about 2 minutes.",
        f"We will text you at {CUSTOMER}. {{Braces}} stay.",
    ]
    for message in sent:
        assert message.interaction == interaction
        assert (message.direction, message.status) == ("outbound", Message.Status.DELIVERED)
        assert (message.from_number, message.to_number) == (NUMBER, CUSTOMER)
    session = the_session()
    assert (session.bot, session.interaction, session.status) == (bot, interaction, Status.DONE)
    assert session.step_position == 20
    assert bot_events(interaction) == ["bot “Greeter” started (on start)"]


def test_estimated_wait_without_history_reads_a_few_minutes(channel, texts):
    use(channel, bot_on_start=make_bot(say("Wait: {estimated_wait}, #{queue_position}")))

    texts("Hello")

    assert bot_texts() == ["Wait: a few minutes, #1"]


# Ask a question ---------------------------------------------------------------------


def test_question_waits_for_the_reply_and_stores_it_under_its_key(channel, texts):
    bot = make_bot(
        ask("What is your order number?", key="order_number"),
        say("Thanks, order {answer:order_number} noted."),
    )
    use(channel, bot_on_start=bot)

    texts("Hi")

    session = the_session()
    assert (session.status, session.step_position, session.answers) == (Status.WAITING, 10, {})
    assert session.wait_deadline_at is None
    assert bot_texts() == ["What is your order number?"]

    reply = texts("  A-17 ")

    session.refresh_from_db()
    assert (session.status, session.answers) == (Status.DONE, {"order_number": "A-17"})
    assert bot_texts() == ["What is your order number?", "Thanks, order A-17 noted."]
    interaction = Interaction.objects.get()
    assert reply.interaction == interaction
    assert interaction.status == S.QUEUED


def test_choices_match_in_any_case_and_store_the_choice_as_written(channel, texts):
    bot = make_bot(
        ask("Is it about an Order or a Refund?", key="topic", choices=["Order", "Refund"]),
        say("You said {answer:topic}."),
    )
    use(channel, bot_on_start=bot)
    texts("Hi")

    texts(" rEFUND ")

    assert the_session().answers == {"topic": "Refund"}
    assert bot_texts()[-1] == "You said Refund."


def test_yes_answers_a_yes_or_no_question(channel, texts):
    bot = make_bot(ask("Is it about an order?", key="about_order", choices=["Yes", "No"]))
    use(channel, bot_on_start=bot)
    texts("Hi")

    reply = texts("Yes")

    assert reply.interaction == Interaction.objects.get()
    assert the_session().answers == {"about_order": "Yes"}


def test_a_wrong_answer_is_asked_again_then_the_bot_gives_up_and_moves_on(channel, texts):
    bot = make_bot(
        ask(
            "Yes or No?",
            key="ok",
            choices=["Yes", "No"],
            retry_text="Please answer Yes or No ({campaign}).",
            max_retries=1,
        ),
        say("Thanks, an agent will be with you."),
    )
    use(channel, bot_on_start=bot)
    texts("Hi")

    texts("maybe")

    session = the_session()
    assert (session.status, session.retries, session.step_position) == (Status.WAITING, 1, 10)
    assert bot_texts() == ["Yes or No?", "Please answer Yes or No (Support)."]

    texts("perhaps")

    session.refresh_from_db()
    assert (session.status, session.answers) == (Status.DONE, {})
    assert bot_texts() == [
        "Yes or No?",
        "Please answer Yes or No (Support).",
        "Thanks, an agent will be with you.",
    ]
    assert "no acceptable answer; the bot moved on" in bot_events(session.interaction)
    # Every customer message stayed on the one conversation.
    assert Interaction.objects.count() == 1
    assert Message.objects.filter(sender="customer", interaction=session.interaction).count() == 3


def test_no_reply_within_the_wait_limit_moves_on(channel, texts, run):
    bot = make_bot(
        ask("Your order number?", key="order", wait_seconds=60),
        say("No worries, an agent will ask you."),
    )
    use(channel, bot_on_start=bot)
    texts("Hi")
    session = the_session()
    deadline = session.wait_deadline_at
    assert deadline is not None
    assert datetime.timedelta(seconds=59) < deadline - session.updated_at <= seconds(60), (
        "the deadline is wait_seconds after the question went out"
    )

    assert run(sweep_bot_waits, now=deadline - seconds(1)) == []
    assert bot_texts() == ["Your order number?"]

    assert run(sweep_bot_waits, now=deadline) == [session.pk]

    session.refresh_from_db()
    assert (session.status, session.answers, session.wait_deadline_at) == (Status.DONE, {}, None)
    assert bot_texts() == ["Your order number?", "No worries, an agent will ask you."]
    assert "no reply in time; the bot moved on" in bot_events(session.interaction)

    # A late answer reaches the conversation (and the agent), not the bot.
    late = texts("A-17")
    assert late.interaction == session.interaction
    session.refresh_from_db()
    assert session.answers == {}
    assert len(bot_texts()) == 2


# Webhooks ---------------------------------------------------------------------------


def webhook(receiver, **options) -> tuple[str, str, dict]:
    return (BotStep.Kind.WEBHOOK, "", {"url": receiver.url, **options})


def test_webhook_is_signed_and_the_chosen_fields_are_stored(channel, texts, webhook_receiver):
    webhook_receiver.secret = SECRET
    webhook_receiver.reply = {"tier": "gold", "balance": 12, "internal_note": "do not keep"}
    bot = make_bot(
        ask("Your order number?", key="order"),
        webhook(webhook_receiver, store=["tier", "balance", "missing"]),
        say("You are {answer:tier} with {answer:balance} points."),
        name="Lookup",
    )
    use(channel, bot_on_start=bot)
    texts("Hi")

    texts("A-17")

    session = the_session()
    assert session.status == Status.DONE
    assert session.answers == {"order": "A-17", "tier": "gold", "balance": 12}
    assert bot_texts()[-1] == "You are gold with 12 points."
    (call,) = webhook_receiver.calls
    assert call.signature_ok
    assert call.path == "/hook"
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["X-Bot-Delivery"] == f"{session.pk}-20"
    interaction = session.interaction
    assert call.json == {
        "trigger": "start",
        "bot": {"id": bot.pk, "name": "Lookup"},
        "interaction": {
            "id": interaction.pk,
            "status": "queued",
            "campaign": {"id": channel.campaign_id, "name": "Support"},
            "customer_number": CUSTOMER,
            "agent": None,
        },
        "answers": {"order": "A-17"},
    }


def test_the_receiver_tells_a_signature_made_with_another_secret(channel, texts, webhook_receiver):
    webhook_receiver.secret = "not-the-bots-secret"
    use(channel, bot_on_start=make_bot(webhook(webhook_receiver), say("after")))

    texts("Hi")

    assert webhook_receiver.calls[0].signature_ok is False
    session = the_session()
    assert session.status == Status.FAILED
    assert session.error == f"The webhook {webhook_receiver.url} answered HTTP 401."


FAILURES = {
    "timeout": (dict(delay=1.5), "did not answer within 1 s."),
    "http_500": (dict(status=500), "answered HTTP 500."),
}


def test_fields_stored_by_a_webhook_that_is_the_last_step_are_kept(
    channel, texts, webhook_receiver
):
    webhook_receiver.secret = SECRET
    webhook_receiver.reply = {"ticket": "T-9"}
    use(channel, bot_on_start=make_bot(webhook(webhook_receiver, store=["ticket"])))

    texts("Hi")

    session = the_session()
    assert (session.status, session.answers) == (Status.DONE, {"ticket": "T-9"})


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_webhook_with_on_failure_continue_goes_on(
    channel, texts, webhook_receiver, failure
):
    webhook_receiver.secret = SECRET
    setup, says = FAILURES[failure]
    for name, value in setup.items():
        setattr(webhook_receiver, name, value)
    bot = make_bot(
        webhook(webhook_receiver, timeout_seconds=1, on_failure="continue", store=["tier"]),
        say("An agent will be with you."),
    )
    use(channel, bot_on_start=bot)

    texts("Hi")

    session = the_session()
    assert session.status == Status.DONE
    assert session.answers == {"_errors": [f"The webhook {webhook_receiver.url} {says}"]}
    assert bot_texts() == ["An agent will be with you."]
    assert len(webhook_receiver.calls) == 1


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_webhook_with_on_failure_stop_fails_the_bot_and_leaves_the_queue_working(
    channel, texts, webhook_receiver, run, failure
):
    webhook_receiver.secret = SECRET
    setup, says = FAILURES[failure]
    for name, value in setup.items():
        setattr(webhook_receiver, name, value)
    bot = make_bot(
        webhook(webhook_receiver, timeout_seconds=1, on_failure="stop"),
        say("never sent"),
        name="Lookup",
    )
    use(channel, bot_on_start=bot)

    texts("Hi")

    error = f"The webhook {webhook_receiver.url} {says}"
    session = the_session()
    assert (session.status, session.error, session.step_position) == (Status.FAILED, error, 10)
    assert bot_texts() == []
    event = InteractionEvent.objects.filter(interaction=session.interaction).latest("id")
    assert (event.actor, event.reason) == ("bot", f"bot “Lookup” failed: {error}")
    assert (event.from_status, event.to_status) == (S.QUEUED, S.QUEUED)
    assert event.data == {
        "bot": bot.pk,
        "session": session.pk,
        "trigger": "start",
        "error": error,
    }
    interaction = Interaction.objects.get()
    assert interaction.status == S.QUEUED
    # Not stuck: an agent still gets it.
    assigned, _ = assigned_to_an_agent(channel, run)
    assert assigned == interaction


# Finish and requeue steps --------------------------------------------------------------


def test_finish_step_ends_the_conversation_with_the_named_disposition(channel, texts):
    disposition = DispositionFactory(campaign=channel.campaign, name="Answered by bot")
    bot = make_bot(
        say("Our opening hours are 9 to 5."),
        (BotStep.Kind.FINISH, "", {"disposition": "answered BY bot"}),
        say("never sent"),
        name="FAQ",
    )
    use(channel, bot_on_start=bot)

    texts("When are you open?")

    interaction = Interaction.objects.get()
    assert interaction.status == S.FINISHED
    assert interaction.disposition == disposition
    assert interaction.close_reason == "finished by a bot"
    assert interaction.finished_at is not None
    assert interaction.queue_deadline_at is None
    last = interaction.events.latest("id")
    assert (last.from_status, last.to_status, last.actor) == (S.QUEUED, S.FINISHED, "bot")
    session = the_session()
    assert (session.status, session.step_position) == (Status.DONE, 20)
    assert bot_texts() == ["Our opening hours are 9 to 5."]


def test_finish_step_with_an_unknown_disposition_fails_the_bot(channel, texts):
    bot = make_bot((BotStep.Kind.FINISH, "", {"disposition": "Nope"}), name="FAQ")
    use(channel, bot_on_start=bot)

    texts("Hi")

    error = "Campaign “Support” has no disposition “Nope”."
    session = the_session()
    assert (session.status, session.error) == (Status.FAILED, error)
    assert Interaction.objects.get().status == S.QUEUED
    assert bot_events(session.interaction)[-1] == f"bot “FAQ” failed: {error}"


def test_timeout_bot_requeues_once_and_does_not_run_on_the_next_timeout(channel, texts, run):
    SmsChannel.objects.filter(pk=channel.pk).update(max_queue_seconds=10)
    bot = make_bot(
        say("Sorry for the wait, you keep your place in line."),
        (BotStep.Kind.REQUEUE, "", {}),
        name="Second chance",
    )
    use(channel, bot_after_timeout=bot)
    texts("Hi")
    interaction = Interaction.objects.get()
    first_deadline = interaction.queue_deadline_at

    assert run(sweep_queue_timeouts, now=first_deadline) == [interaction.pk]

    interaction.refresh_from_db()
    assert interaction.status == S.QUEUED
    assert interaction.queue_deadline_at > first_deadline
    assert (interaction.finished_at, interaction.close_reason) == (None, "")
    transitions = list(interaction.events.order_by("id").values_list("to_status", "actor"))
    assert (S.TIMED_OUT, "system") in transitions
    assert transitions[-1] == (S.QUEUED, "bot")
    session = the_session(Trigger.TIMEOUT)
    assert session.status == Status.DONE
    assert bot_texts() == ["Sorry for the wait, you keep your place in line."]

    later = interaction.queue_deadline_at + seconds(1)
    assert run(sweep_queue_timeouts, now=later) == [interaction.pk]

    interaction.refresh_from_db()
    assert interaction.status == S.TIMED_OUT
    assert BotSession.objects.filter(trigger=Trigger.TIMEOUT).count() == 1
    assert bot_texts() == ["Sorry for the wait, you keep your place in line."]


def test_requeue_step_to_another_campaign_moves_the_conversation(channel, texts, run):
    overflow = SmsChannelFactory(campaign=CampaignFactory(name="Overflow"), max_queue_seconds=0)
    SmsChannel.objects.filter(pk=channel.pk).update(max_queue_seconds=10)
    bot = make_bot((BotStep.Kind.REQUEUE, "", {"campaign": "Overflow"}))
    use(channel, bot_after_timeout=bot)
    texts("Hi")
    interaction = Interaction.objects.get()

    run(sweep_queue_timeouts, now=interaction.queue_deadline_at)

    interaction.refresh_from_db()
    assert (interaction.status, interaction.campaign) == (S.QUEUED, overflow.campaign)
    assert the_session(Trigger.TIMEOUT).status == Status.DONE


# Hand-over, finish and timeout bots ---------------------------------------------------------


def test_an_agent_taking_the_conversation_stops_the_start_bot(channel, texts, run):
    bot = make_bot(ask("Your order number?", key="order"), say("never sent"), name="Greeter")
    use(channel, bot_on_start=bot)
    texts("Hi")
    assert the_session().status == Status.WAITING

    interaction, _ = assigned_to_an_agent(channel, run)

    session = the_session()
    assert (session.status, session.error) == (Status.STOPPED, "an agent took over")
    assert bot_events(interaction)[-1] == "bot “Greeter” stopped: an agent took over"

    reply = texts("A-17")

    assert reply.interaction == interaction
    session.refresh_from_db()
    assert (session.status, session.answers) == (Status.STOPPED, {})
    assert bot_texts() == ["Your order number?"]
    assert Interaction.objects.count() == 1


def survey_bot() -> Bot:
    return make_bot(
        ask("Thanks! How did we do? Rate 1-5", key="csat", choices=["1", "2", "3", "4", "5"]),
        name="Survey",
    )


def finished_by_agent(channel, texts, run) -> Interaction:
    texts("Hi, my order is late")
    interaction, agent = assigned_to_an_agent(channel, run)
    run(interaction_finish, interaction_id=interaction.pk, by=agent)
    interaction.refresh_from_db()
    assert interaction.status == S.FINISHED
    return interaction


def test_finish_bot_survey_stores_the_rating_on_the_closed_conversation(channel, texts, run):
    use(channel, bot_on_finish=survey_bot())

    interaction = finished_by_agent(channel, texts, run)

    session = the_session(Trigger.FINISH)
    assert (session.interaction, session.status) == (interaction, Status.WAITING)
    assert bot_texts() == ["Thanks! How did we do? Rate 1-5"]
    assert Message.objects.get(sender="bot").interaction == interaction

    reply = texts("5")

    session.refresh_from_db()
    assert (session.status, session.answers) == (Status.DONE, {"csat": "5"})
    assert reply.interaction == interaction
    assert Interaction.objects.count() == 1
    interaction.refresh_from_db()
    assert interaction.status == S.FINISHED


def test_a_new_question_instead_of_a_rating_ends_the_survey_and_opens_a_conversation(
    channel, texts, run
):
    use(channel, bot_on_finish=survey_bot())
    finished = finished_by_agent(channel, texts, run)

    reply = texts("I have another problem with my bill")

    session = the_session(Trigger.FINISH)
    assert session.status == Status.STOPPED
    assert session.error == "the customer wrote something other than an answer"
    assert reply.interaction != finished
    assert reply.interaction.status == S.QUEUED
    assert bot_texts() == ["Thanks! How did we do? Rate 1-5"]


def test_stop_while_the_survey_waits_stops_the_bot(channel, texts, run):
    use(channel, bot_on_finish=survey_bot())
    finished_by_agent(channel, texts, run)

    texts("STOP")

    session = the_session(Trigger.FINISH)
    assert (session.status, session.error) == (Status.STOPPED, "the customer opted out")
    assert session.answers == {}
    assert bot_texts() == ["Thanks! How did we do? Rate 1-5"]
    assert Interaction.objects.count() == 1


def test_after_timeout_bot_runs_after_the_queue_sweep(channel, texts, run):
    SmsChannel.objects.filter(pk=channel.pk).update(max_queue_seconds=30)
    bot = make_bot(say("Sorry, nobody could answer in time. Call us on 555-0100."), name="Sorry")
    use(channel, bot_after_timeout=bot)
    texts("Hi")
    interaction = Interaction.objects.get()
    assert bot_texts() == []

    run(sweep_queue_timeouts, now=interaction.queue_deadline_at)

    interaction.refresh_from_db()
    assert interaction.status == S.TIMED_OUT
    session = the_session(Trigger.TIMEOUT)
    assert session.status == Status.DONE
    assert bot_texts() == ["Sorry, nobody could answer in time. Call us on 555-0100."]
    assert Message.objects.get(sender="bot").interaction == interaction


def test_timeout_stops_a_start_bot_that_still_waits(channel, texts, run):
    SmsChannel.objects.filter(pk=channel.pk).update(max_queue_seconds=30)
    use(
        channel,
        bot_on_start=make_bot(ask("Order?", key="order"), name="Greeter"),
        bot_after_timeout=make_bot(say("Sorry!"), name="Sorry"),
    )
    texts("Hi")
    interaction = Interaction.objects.get()

    run(sweep_queue_timeouts, now=interaction.queue_deadline_at)

    start = the_session(Trigger.START)
    assert start.status == Status.STOPPED
    assert the_session(Trigger.TIMEOUT).status == Status.DONE
    assert bot_texts() == ["Order?", "Sorry!"]


# Redelivery and the stale sweep ----------------------------------------------------------


def started_without_running(channel, bot) -> BotSession:
    """A start bot whose first step task was scheduled but has not run."""
    interaction = InteractionFactory(campaign=channel.campaign, customer_number=CUSTOMER)
    return bot_start(interaction_id=interaction.pk, bot=bot, trigger=Trigger.START)


def test_a_redelivered_step_sends_exactly_one_sms(channel, run):
    session = started_without_running(channel, make_bot(say("Hello"), say("Still there?")))

    assert run(bot_run_step, session_id=session.pk, position=10) == "go_on"
    assert run(bot_run_step, session_id=session.pk, position=10) == "skipped"
    run(run_bot_step_task.delay, session.pk, 10)
    run(run_bot_step_task.delay, session.pk, 20)

    assert bot_texts() == ["Hello", "Still there?"]
    session.refresh_from_db()
    assert session.status == Status.DONE


def test_a_step_task_delivered_twice_runs_once(channel, run):
    session = started_without_running(channel, make_bot(say("Hello")))

    def twice():
        run_bot_step_task.delay(session.pk, 10)
        run_bot_step_task.delay(session.pk, 10)

    run(twice)

    assert bot_texts() == ["Hello"]


def test_redispatch_restarts_a_running_session_untouched_for_over_a_minute(channel, run):
    stale = started_without_running(channel, make_bot(say("Hello")))
    now = timezone.now()
    BotSession.objects.filter(pk=stale.pk).update(updated_at=now - seconds(61))
    other = InteractionFactory(campaign=channel.campaign, customer_number="+15555550188")
    recent = bot_start(interaction_id=other.pk, bot=stale.bot, trigger=Trigger.START)
    BotSession.objects.filter(pk=recent.pk).update(updated_at=now - seconds(30))

    assert run(bot_redispatch_stale, now=now) == 1

    stale.refresh_from_db()
    assert stale.status == Status.DONE
    assert bot_texts() == ["Hello"]
    recent.refresh_from_db()
    assert recent.status == Status.RUNNING
    assert bot_texts("+15555550188") == []

    # The "lost" task turns up after all: nothing more is sent.
    run(run_bot_step_task.delay, stale.pk, 10)
    assert run(bot_redispatch_stale, now=now + seconds(120)) == 1  # only `recent` is left
    assert bot_texts() == ["Hello"]
    assert bot_texts("+15555550188") == ["Hello"]


# Inactive and removed bots --------------------------------------------------------------


def test_an_inactive_bot_does_not_start(channel, texts):
    use(channel, bot_on_start=make_bot(say("Hello"), active=False))

    texts("Hi")

    assert Interaction.objects.get().status == S.QUEUED
    assert not BotSession.objects.exists()
    assert bot_texts() == []


def test_a_bot_removed_from_the_channel_does_not_start(channel, texts):
    make_bot(say("Hello"))
    use(channel, bot_on_start=None)

    texts("Hi")

    assert Interaction.objects.get().status == S.QUEUED
    assert not BotSession.objects.exists()
    assert bot_texts() == []


def test_a_bot_made_inactive_mid_run_stops_at_its_next_step(channel, run):
    bot = make_bot(say("Hello"), say("never sent"), name="Greeter")
    session = started_without_running(channel, bot)
    # Step 10 runs; the task of step 20 is scheduled but not run yet.
    assert bot_run_step(session_id=session.pk, position=10) == "go_on"
    Bot.objects.filter(pk=bot.pk).update(active=False)

    assert run(bot_run_step, session_id=session.pk, position=20) == "stopped"

    session.refresh_from_db()
    assert (session.status, session.error) == (Status.STOPPED, "the bot was made inactive")
    assert bot_texts() == ["Hello"]
    assert bot_events(session.interaction)[-1] == "bot “Greeter” stopped: the bot was made inactive"


def test_a_bot_made_inactive_while_it_waits_ignores_the_reply(channel, texts):
    bot = make_bot(ask("Order?", key="order"), say("never sent"))
    use(channel, bot_on_start=bot)
    texts("Hi")
    Bot.objects.filter(pk=bot.pk).update(active=False)

    reply = texts("A-17")

    session = the_session()
    assert (session.status, session.error, session.answers) == (
        Status.STOPPED,
        "the bot was made inactive",
        {},
    )
    assert reply.interaction == session.interaction
    assert bot_texts() == ["Order?"]


# The customer leaves while a start bot waits ----------------------------------------------


def test_after_stop_and_start_a_new_message_opens_a_new_conversation(channel, texts):
    use(channel, bot_on_start=make_bot(ask("Order?", key="order"), name="Greeter"))
    texts("Hi")
    first = Interaction.objects.get()

    texts("STOP")
    texts("START")
    hello = texts("Hello again")

    first.refresh_from_db()
    assert first.status == S.ABANDONED
    assert hello.interaction != first
    assert hello.interaction.status == S.QUEUED
    assert BotSession.objects.get(interaction=hello.interaction).status == Status.WAITING
    assert BotSession.objects.get(interaction=first).answers == {}
    assert bot_texts() == ["Order?", "Order?"]


def seconds(n: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=n)


def test_stop_while_the_greeting_waits_stops_the_bot(channel, texts):
    bot = make_bot(ask("What is your order number?", key="order"))
    use(channel, bot_on_start=bot)
    texts("Hi")
    assert the_session().status == Status.WAITING

    texts("STOP")

    session = the_session()
    assert (session.status, session.error) == (Status.STOPPED, "the customer left the queue")
    assert Interaction.objects.get().status == S.ABANDONED
