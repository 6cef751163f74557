"""Fault 3: Twilio's REST API answering 500, 503 and 429 in bursts.

Two angles on the same retry path:

- Real workers and real Celery retries (`send_sms_task` raising
  `self.retry(countdown=...)`, the countdown kept by the worker): first two
  outage windows (503s, then 429s) that hit every message at whatever
  attempt it is, then failures scripted per message, so that each one's
  number of POSTs is known exactly.
- `sms_deliver` driven with an advancing clock, with the base fake's own
  `fail_next` bursts: the whole retry budget (6 attempts, 62 s of backoff)
  in a second of real time, which a worker would take a minute for.

The guarantee: a message the provider accepted is recorded with that SID
and never POSTed again; one refused with a 4xx is `failed` with the
provider's code and never retried; retries stop after MAX_SEND_ATTEMPTS.
"""

import datetime
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.utils import timezone

from campaigns.models import BlacklistEntry
from sms_channel.models import Message
from sms_channel.services import MAX_SEND_ATTEMPTS, connector_opt_out_list, sms_deliver, sms_send
from tests.factories import (
    InteractionFactory,
    PhoneNumberFactory,
    SmsChannelFactory,
    TwilioConnectorFactory,
)
from tests.faults.servers import ACCEPT_THEN_500, ACCEPT_THEN_HANG, wait_for
from tests.sms_channel.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, TWILIO_NUMBER

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

R429 = (429, 20429)
E500 = (500, 20500)
E503 = (503, 20503)
SENT = "sent"


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: list
    outcome: str  # SENT, or the error code it fails with
    posts: int
    duplicate_possible: bool
    count: int = 3


SCENARIOS = [
    Scenario("clean", [], SENT, posts=1, duplicate_possible=False),
    Scenario("rate limited 3x", [R429] * 3, SENT, posts=4, duplicate_possible=False),
    # A 5xx with no trace at Twilio: sent again, flagged as a possible duplicate.
    Scenario("server error 2x", [E500, E503], SENT, posts=3, duplicate_possible=True),
    Scenario("429, 500, 429", [R429, E500, R429], SENT, posts=4, duplicate_possible=True),
    # Twilio has it but we never heard: found by the look-up, adopted, not resent.
    Scenario("accepted, then 500", [ACCEPT_THEN_500], SENT, posts=1, duplicate_possible=False),
    Scenario(
        "accepted, then no answer",
        [ACCEPT_THEN_HANG],
        SENT,
        posts=1,
        duplicate_possible=False,
        count=2,
    ),
    Scenario("unsubscribed", [(400, 21610)], "21610", posts=1, duplicate_possible=False),
    Scenario("invalid number", [(400, 21211)], "21211", posts=1, duplicate_possible=False),
    Scenario("429 then refused", [R429, (400, 21408)], "21408", posts=2, duplicate_possible=False),
]
BURST_MESSAGES = 30


def _twilio_channel():
    connector = TwilioConnectorFactory(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    number = PhoneNumberFactory(connector=connector, number=TWILIO_NUMBER)
    return SmsChannelFactory(phone_number=number, connector=connector)


def _queue_message(channel, index: int, body: str) -> Message:
    interaction = InteractionFactory(
        campaign=channel.campaign, customer_number=f"+1415888{index:04d}"
    )
    return sms_send(interaction=interaction, body=body, sender=Message.Sender.SYSTEM)


def _gets_for(fake, to_number: str) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.query.get("To") == to_number)


def _assert_sent_once(fake, message: Message) -> None:
    accepted = fake.accepted_for(message.body)
    assert len(accepted) == 1, f"{message.body!r}: Twilio accepted it {len(accepted)} times"
    assert message.provider_sid == accepted[0]["sid"], f"{message.body!r}: SID not recorded"
    assert not message.outcome_unknown
    assert message.sent_at is not None
    assert message.error_code == ""


def test_provider_error_bursts_with_real_workers_send_each_message_once(
    processes, scripted_twilio, measure
):
    fake = scripted_twilio
    fake.hang_seconds = settings.TWILIO_TIMEOUT_SECONDS + 1
    channel = _twilio_channel()
    processes.extra_env["TWILIO_API_BASE_URL"] = fake.base_url
    processes.worker("worker-1")
    processes.worker("worker-2")

    unsent = Message.objects.filter(
        direction=Message.Direction.OUTBOUND,
        status=Message.Status.QUEUED,
        provider_sid__isnull=True,
    )
    started = time.monotonic()
    # Phase 1, every message: 503s at once, then 429s. A message retries
    # after 2, 4, 8 s, so it meets between one and three errors.
    fake.outage(starts_in=0.0, lasts=3.0, status=503, code=20503)
    fake.outage(starts_in=3.5, lasts=6.0, status=429, code=20429)
    bursts = [
        _queue_message(channel, n, f"burst #{n}: your order has shipped").pk
        for n in range(BURST_MESSAGES)
    ]
    wait_for(lambda: not unsent.exists(), timeout=120, interval=0.5, what="the bursts to clear")

    # Phase 2, a script per message.
    expected: dict[int, Scenario] = {}
    index = BURST_MESSAGES
    for scenario in SCENARIOS:
        for n in range(scenario.count):
            body = f"{scenario.name} #{n}: your order has shipped"
            fake.script(body, scenario.steps)
            expected[_queue_message(channel, index, body).pk] = scenario
            index += 1
    wait_for(
        lambda: not unsent.exists(),
        timeout=180,
        interval=0.5,
        what="every outbound message to be sent or failed",
    )
    elapsed = time.monotonic() - started

    opted_out = set(
        BlacklistEntry.objects.filter(
            blacklist=connector_opt_out_list(connector=channel.connector)
        ).values_list("number", flat=True)
    )
    for pk, scenario in expected.items():
        message = Message.objects.get(pk=pk)
        label = f"{scenario.name}: {message.body!r}"
        assert fake.posts_for(message.body) == scenario.posts, label
        assert message.duplicate_possible == scenario.duplicate_possible, label
        if scenario.outcome == SENT:
            _assert_sent_once(fake, message)
            assert message.attempts == len(scenario.steps) + 1, label
        else:
            assert message.status == Message.Status.FAILED, label
            assert message.error_code == scenario.outcome, label
            assert fake.accepted_for(message.body) == [], label
            assert message.provider_sid is None, label
        if any(step in (E500, E503, ACCEPT_THEN_500, ACCEPT_THEN_HANG) for step in scenario.steps):
            assert _gets_for(fake, message.to_number) >= 1, f"{label}: no look-up before resending"
        assert (message.to_number in opted_out) == (scenario.outcome == "21610"), label

    burst_posts = []
    for pk in bursts:
        message = Message.objects.get(pk=pk)
        _assert_sent_once(fake, message)
        burst_posts.append(fake.posts_for(message.body))
    assert max(burst_posts) <= MAX_SEND_ATTEMPTS
    assert max(burst_posts) > 1, "the outage windows hit nothing: the test tested nothing"

    measure(
        f"{len(expected) + len(bursts)} messages, {len(fake.created)} POSTs "
        f"({len(fake.sent)} accepted), "
        f"{sum(1 for r in fake.requests if r.method == 'GET')} look-ups; burst messages "
        f"needed {sorted(Counter(burst_posts).items())} (POSTs, messages); "
        f"all settled in {elapsed:.1f} s"
    )


def _drive(message_ids: list[int], *, seconds: int) -> int:
    """Run `sms_deliver` for every due message, one virtual second at a time.

    What workers do with `send_sms_task`'s countdowns, without the wait.
    Returns the virtual seconds until nothing was left to send.
    """
    start = clock = timezone.now()
    for _ in range(seconds):
        due = Message.objects.filter(
            pk__in=message_ids,
            status=Message.Status.QUEUED,
            provider_sid__isnull=True,
            next_attempt_at__lte=clock,
        ).order_by("pk")
        for message_id in due.values_list("pk", flat=True):
            sms_deliver(message_id=message_id, now=clock)
        if not Message.objects.filter(
            pk__in=message_ids, status=Message.Status.QUEUED, provider_sid__isnull=True
        ).exists():
            return int((clock - start).total_seconds())
        clock += datetime.timedelta(seconds=1)
    raise AssertionError(f"messages still unsent after {seconds} virtual seconds")


@pytest.mark.django_db
def test_bursts_longer_than_the_retry_budget_fail_cleanly(fake_twilio, measure):
    channel = _twilio_channel()

    # Five rounds of errors for all ten messages, then a sixth for half of them.
    ten = [_queue_message(channel, n, f"budget #{n}").pk for n in range(10)]
    for status, code in [E503, R429, E500, R429, E500]:
        fake_twilio.fail_next(10, status=status, code=code)
    fake_twilio.fail_next(5, status=500, code=20500)
    seconds = _drive(ten, seconds=200)
    for n, pk in enumerate(ten):
        message = Message.objects.get(pk=pk)
        posts = [r for r in fake_twilio.created if r.form["Body"] == message.body]
        gets = _gets_for(fake_twilio, message.to_number)
        assert len(posts) == MAX_SEND_ATTEMPTS
        assert message.attempts == MAX_SEND_ATTEMPTS
        # A look-up after each 5xx: attempts 2, 4 and 6.
        assert gets == 3
        assert message.duplicate_possible
        if n < 5:
            assert message.status == Message.Status.FAILED
            assert message.error_code == "20500"
            assert message.error_message.startswith("Gave up after repeated errors")
            assert [m for m in fake_twilio.sent if m["body"] == message.body] == []
        else:
            (accepted,) = [m for m in fake_twilio.sent if m["body"] == message.body]
            assert message.provider_sid == accepted["sid"]
            assert not message.outcome_unknown

    # Rate limiting alone never means "maybe sent": no look-ups, no duplicate flag.
    four = [_queue_message(channel, 100 + n, f"limited #{n}").pk for n in range(4)]
    fake_twilio.fail_next(4 * MAX_SEND_ATTEMPTS, status=429, code=20429)
    _drive(four, seconds=200)
    for pk in four:
        message = Message.objects.get(pk=pk)
        assert message.status == Message.Status.FAILED
        assert message.error_code == "20429"
        assert not message.duplicate_possible
        assert _gets_for(fake_twilio, message.to_number) == 0
        assert sum(1 for r in fake_twilio.created if r.form["Body"] == message.body) == 6
    # The same words sent to the same customer earlier are not taken for this
    # text's lost attempt: the look-up skips SIDs already recorded.
    interaction = InteractionFactory(campaign=channel.campaign, customer_number="+14158889999")
    earlier = sms_send(interaction=interaction, body="See you tomorrow", sender="system")
    _drive([earlier.pk], seconds=5)
    fake_twilio.fail_next(1, status=500, code=20500)
    again = sms_send(interaction=interaction, body="See you tomorrow", sender="system")
    _drive([again.pk], seconds=10)
    earlier.refresh_from_db()
    again.refresh_from_db()
    to_customer = [m["sid"] for m in fake_twilio.sent if m["to"] == "+14158889999"]
    assert sorted(to_customer) == sorted([earlier.provider_sid, again.provider_sid])
    assert len(set(to_customer)) == 2
    assert again.duplicate_possible

    measure(
        f"gave up after {MAX_SEND_ATTEMPTS} attempts and {seconds} virtual seconds of "
        f"backoff; {len(fake_twilio.created)} POSTs, {len(fake_twilio.sent)} accepted"
    )
