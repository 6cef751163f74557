"""Twilio webhooks: authenticate, parse, call one service, answer after commit.

Order of checks, each refusing before anything is written: method and
content type (405/415), the number or account the request is for (400 if
absent, 404 if we do not serve it), the X-Twilio-Signature (403), the
account (403), then every field (400 naming the field).
"""

import logging
import re
import time

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from campaigns.phone import E164FormField, normalize_e164
from sms_channel.models import Connector, Message, PhoneNumber
from sms_channel.providers.twilio import signature_is_valid
from sms_channel.services import (
    MAX_BODY_LENGTH,
    InboundSms,
    NumberNotServed,
    sms_receive,
    sms_status_update,
)

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_MEDIA = 10
# Twilio SIDs: two letters and 32 hex digits (SM/MM messages, AC accounts).
SID_REGEX = r"^[A-Z]{2}[0-9a-fA-F]{32}$"
# Raw values go into a query only in these shapes: PostgreSQL refuses NUL.
ACCOUNT_SID_RE = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID_RE = re.compile(r"MG[0-9a-fA-F]{32}")
# No whitespace or control characters (jsonb cannot hold \u0000).
MEDIA_URL_RE = re.compile(r"https?://[^\s\x00-\x1f\x7f]+")


def _no_nul(value: str) -> None:
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail later.
    if "\x00" in value:
        raise forms.ValidationError("must not contain NUL characters.")


class InboundForm(forms.Form):
    MessageSid = forms.RegexField(regex=SID_REGEX, max_length=34)
    AccountSid = forms.RegexField(regex=r"^AC[0-9a-fA-F]{32}$", max_length=34)
    From = E164FormField()
    To = E164FormField()
    Body = forms.CharField(
        required=False, strip=False, max_length=MAX_BODY_LENGTH, validators=[_no_nul]
    )
    NumMedia = forms.IntegerField(required=False, min_value=0, max_value=MAX_MEDIA)

    def clean(self):
        data = super().clean()
        num_media = data.get("NumMedia") or 0
        media = []
        for index in range(num_media):
            url = self.data.get(f"MediaUrl{index}", "")
            if not MEDIA_URL_RE.fullmatch(url) or len(url) > 2000:
                self.add_error(None, f"MediaUrl{index} must be an http(s) URL.")
                continue
            content_type = self.data.get(f"MediaContentType{index}", "")[:100]
            if "\x00" in content_type:
                self.add_error(None, f"MediaContentType{index} must not contain NUL characters.")
                continue
            media.append({"url": url, "content_type": content_type})
        data["media"] = media
        if not (data.get("Body") or "").strip() and not num_media and "Body" not in self.errors:
            self.add_error("Body", "is required when the message has no media.")
        return data


class StatusForm(forms.Form):
    MessageSid = forms.RegexField(regex=SID_REGEX, max_length=34)
    AccountSid = forms.RegexField(regex=r"^AC[0-9a-fA-F]{32}$", max_length=34)
    MessageStatus = forms.ChoiceField(choices=Message.Status.choices)
    ErrorCode = forms.RegexField(regex=r"^[0-9]{1,8}$", required=False)


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain")


def _form_errors(form: forms.Form) -> str:
    parts = []
    for name, errors in form.errors.items():
        label = "" if name == "__all__" else f"{name}: "
        parts.extend(f"{label}{error}" for error in errors)
    return "Bad request. " + " ".join(parts)


def _signed_url(request: HttpRequest) -> str:
    """The URL Twilio signed: behind a proxy, the public one, query included."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + request.get_full_path()
    return request.build_absolute_uri()


def _authenticate(request: HttpRequest, connector: Connector) -> HttpResponse | None:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature_is_valid(
        auth_token=connector.auth_token,
        url=_signed_url(request),
        params=request.POST,
        signature=signature,
    ):
        logger.warning(
            "Refused a Twilio webhook with a %s signature for connector %s from %s",
            "wrong" if signature else "missing",
            connector.pk,
            request.META.get("REMOTE_ADDR"),
        )
        return _text(403, "Forbidden: invalid or missing X-Twilio-Signature.")
    if request.POST.get("AccountSid") != connector.account_sid:
        logger.warning("Refused a Twilio webhook for another account (connector %s)", connector.pk)
        return _text(403, "Forbidden: AccountSid does not match this number's connector.")
    return None


def _precheck(request: HttpRequest) -> HttpResponse | None:
    if request.content_type != FORM_CONTENT_TYPE:
        return _text(415, f"Unsupported media type: send {FORM_CONTENT_TYPE}.")
    return None


def _connector_for_inbound(request: HttpRequest) -> Connector | HttpResponse:
    to = request.POST.get("To", "")
    if not to:
        return _text(400, "Bad request. To: This field is required.")
    try:
        # A lookup on E164Field normalises its value and raises on junk.
        to = normalize_e164(to)
    except ValidationError as error:
        return _text(400, "Bad request. To: " + " ".join(error.messages))
    number = (
        PhoneNumber.objects.select_related("connector")
        .filter(number=to, connector__provider=Connector.Provider.TWILIO)
        .first()
    )
    if number is not None:
        return number.connector
    service_sid = request.POST.get("MessagingServiceSid", "")
    if SERVICE_SID_RE.fullmatch(service_sid):
        connector = Connector.objects.filter(
            provider=Connector.Provider.TWILIO, messaging_service_sid=service_sid
        ).first()
        if connector is not None:
            return connector
    logger.warning("Inbound SMS for %r, which no connector serves", to[:20])
    return _text(404, "Not found: no SMS channel serves this number.")


def _with_retries(operation):
    """Run a durable transaction, retrying when a concurrent request won a
    unique-index race (duplicate webhook, two first messages from one
    customer): the retry then sees the winner's rows."""
    for attempt in range(3):
        try:
            with transaction.atomic(durable=True):
                return operation()
        except IntegrityError:
            if attempt == 2:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    refused = _precheck(request)
    if refused:
        return refused
    connector = _connector_for_inbound(request)
    if isinstance(connector, HttpResponse):
        return connector
    refused = _authenticate(request, connector)
    if refused:
        return refused
    form = InboundForm(request.POST)
    if not form.is_valid():
        return _text(400, _form_errors(form))
    data = form.cleaned_data
    inbound = InboundSms(
        provider_sid=data["MessageSid"],
        from_number=data["From"],
        to_number=data["To"],
        body=data["Body"],
        media=data["media"],
    )
    try:
        _with_retries(lambda: sms_receive(inbound=inbound))
    except NumberNotServed:
        logger.warning(
            "Inbound SMS %s for %s: no SMS channel uses it", inbound.provider_sid, inbound.to_number
        )
        return _text(404, "Not found: no SMS channel serves this number.")
    except OperationalError:
        # The database is unreachable: a 5xx makes Twilio retry later.
        logger.exception("Inbound SMS %s not stored: database error", inbound.provider_sid)
        return _text(503, "Service unavailable: try again.")
    # Only now, after the commit, does Twilio learn the message is safe.
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    refused = _precheck(request)
    if refused:
        return refused
    account_sid = request.POST.get("AccountSid", "")
    connector = (
        Connector.objects.filter(provider=Connector.Provider.TWILIO, account_sid=account_sid)
        .order_by("pk")
        .first()
        if ACCOUNT_SID_RE.fullmatch(account_sid)
        else None
    )
    if connector is None:
        logger.warning("Status callback for an account no connector has")
        return _text(403, "Forbidden: unknown AccountSid.")
    refused = _authenticate(request, connector)
    if refused:
        return refused
    form = StatusForm(request.POST)
    if not form.is_valid():
        return _text(400, _form_errors(form))
    data = form.cleaned_data
    try:
        with transaction.atomic(durable=True):
            message = sms_status_update(
                provider_sid=data["MessageSid"],
                status=data["MessageStatus"],
                error_code=data["ErrorCode"] or "",
            )
    except OperationalError:
        logger.exception("Status callback for %s not stored: database error", data["MessageSid"])
        return _text(503, "Service unavailable: try again.")
    if message is None:
        logger.info("Status callback for unknown message %s ignored", data["MessageSid"])
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
