"""Twilio webhooks racing each other: real threads, real commits, real row locks.

Each request runs in its own thread with its own test client and database
connection; a barrier releases them together. The "interleaved" cases also
hold every request at one point inside `sms_receive` until all have reached
it, so that each has read "nothing there yet" before any of them writes: the
losing interleaving a real race only sometimes produces, here on every run.
"""

import contextlib
import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client

from campaigns.models import Interaction, InteractionEvent
from sms_channel import services
from sms_channel.models import Message
from tests.sms_channel.twilio_helpers import (
    INBOUND_PATH,
    form_post,
    new_sid,
    payload,
    sign,
)

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite serialises writers, so these races cannot happen there",
    ),
    pytest.mark.django_db(transaction=True),
]

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'

Request = Callable[[Client], HttpResponse]


def signed_inbound(*, sid: str, from_number: str, body: str = "Hi, I need help") -> Request:
    """A Twilio inbound webhook, signed up front so the threads start on equal terms."""
    params = payload("twilio_inbound_sms", MessageSid=sid, From=from_number, Body=body)
    params["SmsMessageSid"] = params["SmsSid"] = sid
    signature = sign(f"http://testserver{INBOUND_PATH}", params)
    return lambda client: form_post(client, INBOUND_PATH, params, HTTP_X_TWILIO_SIGNATURE=signature)


def race(requests: list[Request]) -> list[HttpResponse]:
    """Send `requests` at once, one thread and one connection each."""
    start = threading.Barrier(len(requests))
    responses: list[HttpResponse | None] = [None] * len(requests)
    errors: list[BaseException] = []

    def run(index: int, request: Request) -> None:
        client = Client()
        try:
            start.wait(timeout=10)
            responses[index] = request(client)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)
        finally:
            # Let the test database be flushed and dropped.
            connection.close()

    threads = [
        threading.Thread(target=run, args=(index, request))
        for index, request in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    if errors:
        raise errors[0]
    return responses


@pytest.fixture
def interleave(monkeypatch):
    """Make each thread's first call of `sms_channel.services.<name>` wait for all threads.

    Usage: `interleave("open_interaction_for", parties=2)`. The wrapped
    function runs first (inside the request's transaction), then the thread
    waits; a broken or timed-out barrier lets it go on, so a test that cannot
    interleave fails on its assertions rather than hanging.
    """

    def install(name: str, *, parties: int) -> None:
        real = getattr(services, name)
        barrier = threading.Barrier(parties, timeout=5)
        arrived: set[int] = set()
        lock = threading.Lock()

        def wrapper(*args, **kwargs):
            result = real(*args, **kwargs)
            with lock:
                first = threading.get_ident() not in arrived
                arrived.add(threading.get_ident())
            if first:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return result

        monkeypatch.setattr(services, name, wrapper)

    return install


def assert_all_ok(responses: list[HttpResponse]) -> None:
    assert [response.status_code for response in responses] == [200] * len(responses), [
        response.content[:200] for response in responses
    ]
    assert all(response.content == EMPTY_TWIML for response in responses)


@pytest.mark.parametrize("threads", [2, 8])
@pytest.mark.parametrize("interleaved", [False, True], ids=["free", "interleaved"])
def test_identical_retries_racing_store_one_message(
    twilio_channel, interleave, threads, interleaved
):
    if interleaved:
        # Between "is this SID stored?" and the insert.
        interleave("_channel_for_number", parties=threads)
    sid = new_sid()

    responses = race([signed_inbound(sid=sid, from_number="+14155550199")] * threads)

    assert_all_ok(responses)
    message = Message.objects.get()
    assert message.provider_sid == sid
    interaction = Interaction.objects.get()
    assert message.interaction == interaction
    assert interaction.status == Interaction.Status.QUEUED
    assert InteractionEvent.objects.count() == 1


@pytest.mark.parametrize("threads", [2, 8])
@pytest.mark.parametrize("interleaved", [False, True], ids=["free", "interleaved"])
def test_first_messages_of_one_customer_racing_open_one_conversation(
    twilio_channel, interleave, threads, interleaved
):
    if interleaved:
        # Between "has this customer an open conversation?" and opening one.
        interleave("open_interaction_for", parties=threads)
    sids = [new_sid() for _ in range(threads)]

    responses = race(
        [signed_inbound(sid=sid, from_number="+14155550199", body=f"Part {sid}") for sid in sids]
    )

    assert_all_ok(responses)
    interaction = Interaction.objects.get()
    assert interaction.status == Interaction.Status.QUEUED
    assert InteractionEvent.objects.count() == 1
    assert sorted(Message.objects.values_list("provider_sid", flat=True)) == sorted(sids)
    assert set(Message.objects.values_list("interaction", flat=True)) == {interaction.pk}


@pytest.mark.parametrize("interleaved", [False, True], ids=["free", "interleaved"])
def test_queue_cap_holds_when_new_customers_race(twilio_channel, interleave, interleaved):
    twilio_channel.max_interactions = 3
    twilio_channel.save(update_fields=["max_interactions"])
    if interleaved:
        # Every message is stored and has found no open conversation before
        # any of them takes the channel lock and counts the queue.
        interleave("open_interaction_for", parties=8)
    customers = [f"+1415555020{index}" for index in range(8)]

    responses = race([signed_inbound(sid=new_sid(), from_number=number) for number in customers])

    assert_all_ok(responses)
    assert Message.objects.count() == 8
    assert not Message.objects.filter(interaction__isnull=True).exists()
    by_customer = dict(Interaction.objects.values_list("customer_number", "status"))
    assert sorted(by_customer) == sorted(customers)
    assert list(by_customer.values()).count(Interaction.Status.QUEUED) == 3
    rejected = Interaction.objects.filter(status=Interaction.Status.REJECTED)
    assert list(rejected.values_list("reject_reason", flat=True)) == ["queue_full"] * 5
    assert InteractionEvent.objects.count() == 8
