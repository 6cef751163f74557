"""Build webhook requests exactly as Twilio would: realistic payloads, real signatures."""

import json
import uuid
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ACCOUNT_SID = "ACae4e1ee5a9b5b2b71c2c7b1f1f2d3e4f"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
TWILIO_NUMBER = "+14155550100"
CUSTOMER = "+14155550199"
INBOUND_PATH = "/sms/twilio/inbound/"
STATUS_PATH = "/sms/twilio/status/"


def payload(name: str, **overrides) -> dict[str, str]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def new_sid(prefix: str = "SM") -> str:
    return prefix + uuid.uuid4().hex


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post_signed(
    client,
    path: str,
    params: dict[str, str],
    *,
    token: str = AUTH_TOKEN,
    signed_url: str | None = None,
    **extra,
):
    """POST form data signed for `signed_url` (default: the test server's URL)."""
    url = signed_url or f"http://testserver{path}"
    return form_post(
        client, path, params, HTTP_X_TWILIO_SIGNATURE=sign(url, params, token), **extra
    )


def form_post(client, path: str, params: dict[str, str], **extra):
    """POST as Twilio does: application/x-www-form-urlencoded."""
    return client.post(
        path, data=urlencode(params), content_type="application/x-www-form-urlencoded", **extra
    )


def inbound(
    client,
    *,
    body: str = "Hi, I need help with my order",
    sid: str | None = None,
    from_number: str = CUSTOMER,
    **overrides,
):
    params = payload(
        "twilio_inbound_sms",
        Body=body,
        MessageSid=sid or new_sid(),
        From=from_number,
        **overrides,
    )
    params["SmsMessageSid"] = params["SmsSid"] = params["MessageSid"]
    return post_signed(client, INBOUND_PATH, params)
