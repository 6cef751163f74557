"""What tests/sms_channel/test_webhook_fuzz.py leaves out: the URL's query
string, methods and content types, bodies past Django's limits, and signed
requests replayed as they were or with something changed.

A refusal must leave every table as it was; a 200 means the message is stored once.
"""

import json
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from hypothesis import event, given
from hypothesis import strategies as st

from sms_channel.models import Message
from tests.factories import PhoneNumberFactory
from tests.robustness.conftest import snapshot
from tests.robustness.strategies import ROBUST, junk_text, mostly
from tests.sms_channel.twilio_helpers import (
    CUSTOMER,
    INBOUND_PATH,
    STATUS_PATH,
    TWILIO_NUMBER,
    new_sid,
    payload,
    sign,
)

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
PATHS = [INBOUND_PATH, STATUS_PATH]


def inbound_params(**overrides) -> dict[str, str]:
    sid = new_sid()
    return payload("twilio_inbound_sms", MessageSid=sid, SmsMessageSid=sid, SmsSid=sid, **overrides)


def status_params(sid: str, **overrides) -> dict[str, str]:
    return payload("twilio_status_delivered", MessageSid=sid, SmsSid=sid, **overrides)


def post(client, url: str, body: str | bytes, signature: str | None, content_type: str = FORM):
    headers = {} if signature is None else {"HTTP_X_TWILIO_SIGNATURE": signature}
    # generic() sends the body as UTF-8 whatever charset the content type names.
    return client.generic("POST", url, data=body, content_type=content_type, **headers)


def params_for(path: str) -> dict[str, str]:
    return inbound_params() if path == INBOUND_PATH else status_params(_OUTBOUND_SID)


_OUTBOUND_SID = "SM" + "7" * 32


@pytest.fixture
def outbound(twilio_channel) -> Message:
    """A message we sent, for status callbacks to move along."""
    return Message.objects.create(
        channel=twilio_channel,
        direction=Message.Direction.OUTBOUND,
        sender=Message.Sender.AGENT,
        from_number=TWILIO_NUMBER,
        to_number=CUSTOMER,
        body="On its way",
        provider_sid=_OUTBOUND_SID,
        status=Message.Status.SENT,
    )


def stored_state(message: Message) -> tuple:
    message.refresh_from_db()
    return snapshot(), message.status, message.error_code, message.status_updated_at


# Query strings, methods, content types ----------------------------------------------------

query_pairs = st.lists(st.tuples(junk_text, junk_text), max_size=4)


@ROBUST
@given(
    path=st.sampled_from(PATHS),
    query=query_pairs,
    signed_with_query=mostly(st.just(True), st.booleans()),
)
def test_junk_query_string_is_never_5xx(client, outbound, path, query, signed_with_query):
    params = params_for(path)
    url = f"{path}?{urlencode(query)}" if query else path
    # Twilio signs the URL it calls, query included: a query added on the way is a forgery.
    signed_url = "http://testserver" + (url if signed_with_query else path)
    before = stored_state(outbound)

    response = post(client, url, urlencode(params), sign(signed_url, params))

    event(f"HTTP {response.status_code}")
    if signed_with_query or not query:
        # The query is Twilio's business (it signed it): the fields are fine.
        assert response.status_code == 200, response.content[:300]
    else:
        assert response.status_code == 403, response.content[:300]
        assert stored_state(outbound) == before


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "options", "head"])
def test_other_methods_are_refused(client, twilio_channel, path, method):
    params = params_for(path)
    before = snapshot()

    response = client.generic(
        method.upper(),
        f"{path}?{urlencode(params)}",
        data=urlencode(params),
        content_type=FORM,
        HTTP_X_TWILIO_SIGNATURE=sign(f"http://testserver{path}", params),
    )

    assert response.status_code == 405
    assert snapshot() == before


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "multipart/form-data; boundary=BoUnDaRy",
        "text/plain",
        "text/xml",
        "",
    ],
)
def test_a_body_that_is_not_a_form_is_refused_with_415(client, outbound, path, content_type):
    params = params_for(path)
    # Signed as if the fields had come as a form: only the content type is wrong.
    signature = sign(f"http://testserver{path}", params)
    before = stored_state(outbound)

    response = post(client, path, json.dumps(params), signature, content_type=content_type)

    assert response.status_code == 415, response.content
    assert stored_state(outbound) == before


@ROBUST
@given(
    path=st.sampled_from(PATHS),
    parameters=st.sampled_from(
        ["", "; charset=utf-8", "; charset=latin-1", "; charset=utf-16", "; charset=nope"]
    ).map(lambda extra: FORM + extra),
)
def test_form_charset_parameters_are_never_5xx(client, outbound, path, parameters):
    params = params_for(path)
    before = stored_state(outbound)

    response = post(
        client, path, urlencode(params), sign(f"http://testserver{path}", params), parameters
    )

    event(f"HTTP {response.status_code}")
    assert response.status_code in {200, 400, 403}, response.content[:300]
    if response.status_code != 200:
        assert stored_state(outbound) == before


# Size --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("signed", [True, False])
def test_a_body_past_the_upload_limit_is_refused(client, outbound, path, signed):
    params = params_for(path) | {"Body": "x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    signature = sign(f"http://testserver{path}", params) if signed else None
    before = stored_state(outbound)

    response = post(client, path, urlencode(params), signature)

    assert response.status_code in {400, 413}
    assert stored_state(outbound) == before


@pytest.mark.parametrize("path", PATHS)
def test_too_many_fields_are_refused(client, outbound, path):
    params = params_for(path)
    params |= {f"Extra{n}": "x" for n in range(django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)}
    before = stored_state(outbound)

    response = post(client, path, urlencode(params), sign(f"http://testserver{path}", params))

    assert response.status_code == 400
    assert stored_state(outbound) == before


def test_a_body_just_under_the_limit_is_read(client, twilio_channel):
    # The limit refuses junk, not Twilio: a 1600-character SMS with every
    # field Twilio sends is far below it.
    params = inbound_params(Body="é" * 1600)

    response = post(
        client, INBOUND_PATH, urlencode(params), sign(f"http://testserver{INBOUND_PATH}", params)
    )

    assert response.status_code == 200
    assert Message.objects.get(provider_sid=params["MessageSid"]).body == "é" * 1600


# Replays -----------------------------------------------------------------------------------


def _altered_inbound(params: dict[str, str]) -> list[tuple[str, dict[str, str], str]]:
    """(what changed, the params sent, the query string sent) for a request signed
    for `params` at INBOUND_PATH + "?a=1&b=2"."""
    return [
        ("Body", params | {"Body": "Send my refund to another account"}, "a=1&b=2"),
        ("To", params | {"To": "+14155550111"}, "a=1&b=2"),
        ("From", params | {"From": "+14155550123"}, "a=1&b=2"),
        ("MessageSid", params | {"MessageSid": new_sid()}, "a=1&b=2"),
        ("added param", params | {"MediaUrl0": "https://example.com/x.jpg"}, "a=1&b=2"),
        ("dropped param", {k: v for k, v in params.items() if k != "FromCity"}, "a=1&b=2"),
        ("reordered query", params, "b=2&a=1"),
        ("changed query", params, "a=1&b=3"),
        ("dropped query", params, ""),
        ("added query", params, "a=1&b=2&c=3"),
    ]


@pytest.mark.parametrize(
    "index", range(len(_altered_inbound({}))), ids=[name for name, *_ in _altered_inbound({})]
)
def test_a_signed_inbound_request_replayed_with_a_change_is_refused(client, twilio_channel, index):
    # A second number of the same connector: a changed To still finds it.
    PhoneNumberFactory(connector=twilio_channel.connector, number="+14155550111")
    params = inbound_params()
    signature = sign(f"http://testserver{INBOUND_PATH}?a=1&b=2", params)
    name, sent, query = _altered_inbound(params)[index]
    before = snapshot()

    url = f"{INBOUND_PATH}?{query}" if query else INBOUND_PATH
    response = post(client, url, urlencode(sent), signature)

    assert response.status_code == 403, (name, response.content)
    assert snapshot() == before


@pytest.mark.parametrize(
    "change",
    [
        {"MessageStatus": "failed", "ErrorCode": "30007"},
        {"MessageStatus": "undelivered"},
        {"MessageSid": "SM" + "8" * 32},
        {"AccountSid": "AC" + "9" * 32},
        {"Extra": "1"},
    ],
    ids=str,
)
def test_a_signed_status_callback_replayed_with_a_change_is_refused(client, outbound, change):
    params = status_params(_OUTBOUND_SID)
    signature = sign(f"http://testserver{STATUS_PATH}", params)
    before = stored_state(outbound)

    response = post(client, STATUS_PATH, urlencode(params | change), signature)

    assert response.status_code == 403, response.content
    assert stored_state(outbound) == before


def test_a_replayed_identical_inbound_request_is_stored_once(client, twilio_channel):
    params = inbound_params()
    body = urlencode(params)
    signature = sign(f"http://testserver{INBOUND_PATH}", params)

    first = post(client, INBOUND_PATH, body, signature)
    after_first = snapshot()
    replays = [post(client, INBOUND_PATH, body, signature) for _ in range(3)]
    # The signature covers the fields sorted by name: the same fields in
    # another order are the same request.
    reordered = urlencode(dict(reversed(list(params.items()))))
    replays.append(post(client, INBOUND_PATH, reordered, signature))

    assert first.status_code == 200
    assert [r.status_code for r in replays] == [200] * 4
    assert Message.objects.filter(provider_sid=params["MessageSid"]).count() == 1
    assert snapshot() == after_first


def test_a_replayed_identical_status_callback_changes_nothing_more(client, outbound):
    params = status_params(_OUTBOUND_SID)
    body = urlencode(params)
    signature = sign(f"http://testserver{STATUS_PATH}", params)

    first = post(client, STATUS_PATH, body, signature)
    after_first = stored_state(outbound)
    replay = post(client, STATUS_PATH, body, signature)

    assert (first.status_code, replay.status_code) == (200, 200)
    assert after_first[1] == Message.Status.DELIVERED
    assert stored_state(outbound) == after_first
