"""Twilio: the only module that imports the Twilio SDK."""

import datetime

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sms_channel.providers.base import ProviderError, SendResult


def signature_is_valid(*, auth_token: str, url: str, params, signature: str) -> bool:
    """Check X-Twilio-Signature; `url` must be exactly the URL Twilio called."""
    if not auth_token or not signature:
        return False
    return RequestValidator(auth_token).validate(url, params, signature)


class TwilioProvider:
    def __init__(self, connector) -> None:
        self.connector = connector

    def _client(self) -> Client:
        # The SDK's HTTP client waits forever by default; a worker must not.
        http_client = TwilioHttpClient(timeout=settings.TWILIO_TIMEOUT_SECONDS)
        client = Client(
            self.connector.account_sid, self.connector.auth_token, http_client=http_client
        )
        client.api.base_url = settings.TWILIO_API_BASE_URL
        return client

    def send(
        self, *, from_number: str, to_number: str, body: str, status_callback: str
    ) -> SendResult:
        params = {"to": to_number, "body": body}
        if status_callback:
            params["status_callback"] = status_callback
        if self.connector.messaging_service_sid:
            params["messaging_service_sid"] = self.connector.messaging_service_sid
        else:
            params["from_"] = from_number
        try:
            message = self._client().messages.create(**params)
        except TwilioRestException as exc:
            raise _error_from_rest(exc) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise ProviderError("Twilio could not be reached.", retryable=True) from exc
        except requests.exceptions.RequestException as exc:
            # A read timeout or a dropped connection: the request may have landed.
            raise ProviderError(
                f"No answer from Twilio ({type(exc).__name__}).", retryable=True, ambiguous=True
            ) from exc
        return SendResult(sid=message.sid, status=message.status)

    def find_sent(
        self, *, from_number: str, to_number: str, body: str, since: datetime.datetime
    ) -> list[SendResult]:
        filters = {"to": to_number, "date_sent_after": since, "limit": 50}
        if not self.connector.messaging_service_sid:
            filters["from_"] = from_number
        try:
            candidates = self._client().messages.list(**filters)
        except (TwilioRestException, requests.exceptions.RequestException) as exc:
            raise ProviderError(
                "Could not ask Twilio whether an earlier attempt was sent.",
                retryable=True,
                ambiguous=True,
            ) from exc
        return [
            SendResult(sid=message.sid, status=message.status)
            for message in candidates
            if message.body == body and message.direction.startswith("outbound")
        ]


def _error_from_rest(exc: TwilioRestException) -> ProviderError:
    code = str(exc.code or exc.status)
    if exc.status == 429:
        # Twilio did not process it: safe to retry after a pause.
        return ProviderError(exc.msg or "Rate limited by Twilio.", code=code, retryable=True)
    if exc.status >= 500:
        return ProviderError(
            exc.msg or "Twilio server error.", code=code, retryable=True, ambiguous=True
        )
    return ProviderError(exc.msg or "Twilio refused the message.", code=code)
