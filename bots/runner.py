"""How one step runs, independent of where its effects go.

The live runner (`bots/services.py`) and the admin's "try this bot" view
share this code; each passes a `Port` that carries out the effects: the live
one sends SMS through the channel and changes the conversation, the trial
one writes a transcript.
"""

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bots import steps
from bots.models import BotStep


class BotFailure(Exception):
    """The bot cannot go on; the message says why, for the supervisor."""


class Port(Protocol):
    def send(self, text: str) -> None: ...

    def finish(self, disposition: str) -> None: ...

    def requeue(self, campaign: str) -> None: ...

    def call_webhook(self, options: steps.WebhookOptions, payload: dict) -> Mapping[str, Any]: ...


class Next(enum.Enum):
    GO_ON = "go_on"  # run the following step
    WAIT = "wait"  # wait for the customer's reply to a question
    END = "end"  # the bot is done


@dataclass
class Context:
    """What a step may read: placeholder values and the answers so far."""

    values: dict[str, str]
    answers: dict[str, Any] = field(default_factory=dict)
    # Sent with webhooks.
    payload: dict[str, Any] = field(default_factory=dict)

    def render(self, text: str) -> str:
        return steps.render(text, self.values, self.answers)


def run_step(step: BotStep, context: Context, port: Port) -> Next:
    """Carry out one step; raise BotFailure when it cannot be done."""
    if step.kind == BotStep.Kind.SEND_MESSAGE:
        port.send(context.render(step.text))
        return Next.GO_ON
    if step.kind == BotStep.Kind.ASK:
        port.send(context.render(step.text))
        return Next.WAIT
    if step.kind == BotStep.Kind.WEBHOOK:
        options = steps.webhook_options(step.options)
        payload = {**context.payload, "answers": context.answers}
        try:
            reply = port.call_webhook(options, payload)
        except BotFailure as failure:
            if options.on_failure == "continue":
                context.answers.setdefault("_errors", []).append(str(failure))
                return Next.GO_ON
            raise
        for name in options.store:
            if name in reply:
                context.answers[name] = reply[name]
        return Next.GO_ON
    if step.kind == BotStep.Kind.FINISH:
        port.finish(steps.name_option(step.options, "disposition", {"disposition"}))
        return Next.END
    if step.kind == BotStep.Kind.REQUEUE:
        port.requeue(steps.name_option(step.options, "campaign", {"campaign"}))
        return Next.END
    raise BotFailure(f"Unknown kind of step “{step.kind}”.")


class Reply(enum.Enum):
    ANSWERED = "answered"
    ASK_AGAIN = "ask_again"
    GIVE_UP = "give_up"


def take_reply(
    step: BotStep, text: str, *, retries: int, context: Context
) -> tuple[Reply, str | None]:
    """Judge the customer's reply to a question; store it when it is acceptable."""
    options = steps.ask_options(step.options)
    answer = options.accepts(text)
    if answer is not None:
        context.answers[options.key] = answer
        return Reply.ANSWERED, None
    if retries < options.max_retries:
        return Reply.ASK_AGAIN, context.render(options.retry_text)
    return Reply.GIVE_UP, None


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 of the exact body, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(
    options: steps.WebhookOptions, payload: dict, *, secret: str, delivery: str
) -> Mapping[str, Any]:
    """POST `payload` as signed JSON; return the JSON object answered."""
    import requests

    if not secret:
        raise BotFailure("The bot has no webhook secret; save the bot in the admin to make one.")
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    try:
        response = requests.post(
            options.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "contactcenter-bot/1",
                "X-Bot-Signature": sign(secret, body),
                # The same value on a redelivered step: receivers can drop repeats.
                "X-Bot-Delivery": delivery,
            },
            timeout=options.timeout_seconds,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise BotFailure(
            f"The webhook {options.url} did not answer within {options.timeout_seconds} s."
        ) from None
    except requests.RequestException as error:
        raise BotFailure(f"The webhook {options.url} could not be reached: {error}") from None
    if not 200 <= response.status_code < 300:
        raise BotFailure(f"The webhook {options.url} answered HTTP {response.status_code}.")
    if not options.store:
        return {}
    try:
        data = response.json()
    except ValueError:
        raise BotFailure(f"The webhook {options.url} did not answer with JSON.") from None
    if not isinstance(data, dict):
        raise BotFailure(f"The webhook {options.url} answered JSON that is not an object.")
    return data
