"""Junk in any field of a Twilio webhook: never a 5xx, and a refusal writes nothing.

Each example is posted both correctly signed (so it reaches field validation
when `To` is the channel's number) and unsigned or with a forged signature.
A 200 must mean the message is stored; a 4xx must leave every table as it was.
"""

import operator
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from campaigns.models import BlacklistEntry, Interaction, InteractionEvent
from sms_channel.models import Message
from tests.sms_channel.twilio_helpers import (
    CUSTOMER,
    INBOUND_PATH,
    STATUS_PATH,
    TWILIO_NUMBER,
    form_post,
    new_sid,
    payload,
    sign,
)

pytestmark = pytest.mark.django_db

ALLOWED_STATUSES = {200, 400, 403, 404, 415}
FUZZ_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any Unicode scalar value (NUL and other control characters included), plus
# the awkward cases written out so that every run tries them.
any_text = st.text(max_size=40)
control_text = st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=10)
long_text = st.builds(
    lambda chunk, times: chunk * times,
    st.text(min_size=1, max_size=4),
    st.integers(min_value=200, max_value=3000),
)
edge_text = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\r\n",
        "\ufeff",
        "\u202e",
        "💬" * 5,
        "%00",
        "%FF",
        "&=&=",
        "' OR 1=1 --",
        "<Response/>",
        "null",
        "-1",
        "1e3",
        "١٢",
        "９",
    ]
)
junk = st.one_of(any_text, control_text, long_text, edge_text)


def near(valid: str) -> st.SearchStrategy[str]:
    """Strings close to `valid`: junk added before, inside or after it."""
    return st.one_of(
        st.builds(lambda extra: valid + extra, junk),
        st.builds(lambda extra: extra + valid, junk),
        st.builds(lambda cut, extra: valid[:cut] + extra + valid[cut:], st.integers(0, 34), junk),
    )


hex_text = st.text("0123456789abcdefABCDEFxyz", max_size=40)
sid_like = st.builds(operator.add, st.sampled_from(["SM", "MM", "AC", "MG", "sm"]), hex_text)
number_like = st.one_of(
    st.builds(operator.add, st.just("+"), st.text("0123456789 -()", max_size=24)),
    st.sampled_from(["+14155550111", "+442071838750", "+1 (415) 555-0100", "14155550100"]),
)
VARIANTS = {
    "MessageSid": [sid_like],
    "AccountSid": [sid_like],
    "MessagingServiceSid": [sid_like],
    "From": [number_like],
    "To": [number_like],
    "NumMedia": [st.integers(-3, 15).map(str)],
    "MediaUrl0": [
        st.builds(
            operator.add,
            st.sampled_from(["https://api.twilio.com/", "http://", "ftp://", "https://"]),
            junk,
        )
    ],
    "MessageStatus": [st.sampled_from([value for value, _ in Message.Status.choices])],
    "ErrorCode": [st.sampled_from(["21610", "0", "123456789", "-1"])],
}
extra_fields = st.dictionaries(st.one_of(any_text, edge_text), junk, max_size=4)


@st.composite
def mutated(draw, valid: dict[str, str]) -> dict[str, str]:
    """`valid` with up to three fields dropped or replaced by junk, plus unknown keys.

    Most fields stay valid so that the one broken field reaches its own check.
    """
    params = {**draw(extra_fields), **valid}
    names = sorted(set(valid) | {"MessagingServiceSid"})
    for name in draw(st.sets(st.sampled_from(names), max_size=3)):
        value = draw(st.one_of(st.none(), junk, near(valid.get(name, "")), *VARIANTS.get(name, [])))
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return params


fresh_sid = st.uuids().map(lambda uuid: "SM" + uuid.hex)
# "": signed correctly; None: no header; anything else: a forged header.
signature_header = st.one_of(st.just(""), st.just(""), st.none(), any_text)


def _state() -> tuple:
    return (
        Message.objects.count(),
        Interaction.objects.count(),
        InteractionEvent.objects.count(),
        BlacklistEntry.objects.count(),
    )


def _post(client, path: str, params: dict[str, str], signature: str | None):
    headers = {}
    if signature == "":
        headers["HTTP_X_TWILIO_SIGNATURE"] = sign(f"http://testserver{path}", params)
    elif signature is not None:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    return form_post(client, path, params, **headers)


def _check(response, before: tuple) -> None:
    event(f"HTTP {response.status_code}")
    assert response.status_code in ALLOWED_STATUSES, response.content[:300]
    if response.status_code != 200:
        assert _state() == before, response.content[:300]


@st.composite
def inbound_params(draw) -> dict[str, str]:
    sid = draw(fresh_sid)
    media = draw(st.booleans())
    valid = payload(
        "twilio_inbound_mms" if media else "twilio_inbound_sms",
        MessageSid=sid,
        SmsMessageSid=sid,
        SmsSid=sid,
    )
    return draw(mutated(valid))


@FUZZ_SETTINGS
@given(params=inbound_params(), signature=signature_header)
def test_inbound_junk_is_never_5xx_and_a_refusal_stores_nothing(
    client, twilio_channel, params, signature
):
    before = _state()

    response = _post(client, INBOUND_PATH, params, signature)

    _check(response, before)
    if response.status_code == 200:
        assert response["Content-Type"] == "text/xml"
        assert Message.objects.filter(provider_sid=params["MessageSid"]).exists()


KNOWN_SID = "SM" + "5" * 32


@FUZZ_SETTINGS
@given(
    params=st.one_of(
        mutated(payload("twilio_status_delivered", MessageSid=KNOWN_SID, SmsSid=KNOWN_SID)),
        mutated(payload("twilio_status_delivered", MessageStatus="undelivered", ErrorCode="30007")),
    ),
    signature=signature_header,
)
def test_status_junk_is_never_5xx_and_a_refusal_changes_nothing(
    client, twilio_channel, params, signature
):
    message, _ = Message.objects.update_or_create(
        provider_sid=KNOWN_SID,
        defaults={"status": Message.Status.QUEUED, "error_code": ""},
        create_defaults={
            "channel": twilio_channel,
            "direction": Message.Direction.OUTBOUND,
            "sender": Message.Sender.AGENT,
            "from_number": TWILIO_NUMBER,
            "to_number": CUSTOMER,
            "body": "On its way",
            "status": Message.Status.QUEUED,
        },
    )
    before = _state(), (message.status, message.error_code, message.status_updated_at)

    response = _post(client, STATUS_PATH, params, signature)

    event(f"HTTP {response.status_code}")
    assert response.status_code in ALLOWED_STATUSES, response.content[:300]
    if response.status_code != 200:
        message.refresh_from_db()
        after = _state(), (message.status, message.error_code, message.status_updated_at)
        assert after == before, response.content[:300]


valid_form = urlencode(payload("twilio_inbound_sms", MessageSid=None)).encode()
raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda raw: valid_form + b"&MessageSid=SM" + b"b" * 32 + b"&" + raw, st.binary()),
    st.builds(
        lambda raw: valid_form + b"&MessageSid=SM" + b"c" * 32 + b"&Body=" + raw,
        st.binary(min_size=1).filter(lambda raw: b"&" not in raw),
    ),
)


@FUZZ_SETTINGS
@given(raw=raw_bodies, path=st.sampled_from([INBOUND_PATH, STATUS_PATH]), signed=st.booleans())
def test_non_utf8_form_body_is_never_5xx(client, twilio_channel, raw, path, signed):
    headers = {}
    if signed:
        # Sign what Django will parse (undecodable bytes become U+FFFD), so the
        # request reaches field validation rather than stopping at the 403.
        parsed = QueryDict(raw, encoding="utf-8")
        headers["HTTP_X_TWILIO_SIGNATURE"] = sign(f"http://testserver{path}", parsed)
    before = _state()

    response = client.post(
        path, data=raw, content_type="application/x-www-form-urlencoded", **headers
    )

    _check(response, before)


# Inputs the fuzzer found that once raised (a 500 to Twilio, which then retries).
@pytest.mark.parametrize(
    ("path", "overrides", "expected"),
    [
        # E164Field normalises lookup values, so a malformed To raised ValidationError.
        (INBOUND_PATH, {"To": "0"}, 400),
        (INBOUND_PATH, {"To": "+1415"}, 400),
        (INBOUND_PATH, {"To": "hello"}, 400),
        # PostgreSQL cannot hold NUL in text nor \u0000 in jsonb.
        (INBOUND_PATH, {"To": "+19999999999", "MessagingServiceSid": "MG\x00"}, 404),
        (INBOUND_PATH, {"NumMedia": "1", "MediaUrl0": "https://a\x00b"}, 400),
        (
            INBOUND_PATH,
            {"NumMedia": "1", "MediaUrl0": "https://a/b", "MediaContentType0": "image/\x00"},
            400,
        ),
        (STATUS_PATH, {"AccountSid": "AC\x00"}, 403),
    ],
    ids=str,
)
def test_junk_found_by_fuzzing_is_refused(client, twilio_channel, path, overrides, expected):
    base = "twilio_inbound_sms" if path == INBOUND_PATH else "twilio_status_delivered"
    params = payload(base, MessageSid=new_sid(), **overrides)
    before = _state()

    response = _post(client, path, params, signature="")

    assert response.status_code == expected, response.content
    assert _state() == before
