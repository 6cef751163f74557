"""What each kind of step takes, validated when a supervisor saves a bot, and
how texts are rendered. Pure functions: the runner and the admin share them.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

# {name} or {answer:KEY}; "{{" and "}}" stand for literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z_]+)(?::([A-Za-z0-9_]+))?\}|\{|\}")
PLACEHOLDERS = (
    "customer_number",
    "campaign",
    "queue_position",
    "estimated_wait",
    "agent_name",
)
ANSWER = "answer"
_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")

MAX_WEBHOOK_TIMEOUT = 30
ON_FAILURE = ("continue", "stop")


def placeholder_errors(text: str) -> list[str]:
    """What is wrong with the placeholders of `text`; empty when all are known."""
    errors = []
    for match in _PLACEHOLDER.finditer(text):
        token, name, key = match.group(0), match.group(1), match.group(2)
        if token in ("{{", "}}"):
            continue
        if name is None:
            errors.append(f"A lone “{token}”: write “{token}{token}” for a literal brace.")
        elif name == ANSWER and key is None:
            errors.append("{answer} needs the answer's key, e.g. {answer:order_number}.")
        elif name == ANSWER:
            continue
        elif name not in PLACEHOLDERS or key is not None:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            errors.append(f"Unknown placeholder {token}. Known: {known} and {{answer:KEY}}.")
    return errors


def render(text: str, context: Mapping[str, str], answers: Mapping[str, Any]) -> str:
    """Fill in the placeholders; an answer not given yet renders empty."""

    def fill(match: re.Match) -> str:
        token, name, key = match.group(0), match.group(1), match.group(2)
        if token in ("{{", "}}"):
            return token[0]
        if name == ANSWER and key:
            return str(answers.get(key, ""))
        if name in PLACEHOLDERS and key is None:
            return str(context.get(name, ""))
        return token

    return _PLACEHOLDER.sub(fill, text)


@dataclass(frozen=True)
class AskOptions:
    key: str
    choices: tuple[str, ...]
    retry_text: str
    max_retries: int
    wait_seconds: int

    def accepts(self, reply: str) -> str | None:
        """The answer as stored, or None when the reply is not one of the choices."""
        reply = reply.strip()
        if not self.choices:
            return reply
        return next((c for c in self.choices if c.casefold() == reply.casefold()), None)


@dataclass(frozen=True)
class WebhookOptions:
    url: str
    timeout_seconds: int
    on_failure: str
    store: tuple[str, ...]


def _int(options: Mapping, name: str, default: int, low: int, high: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"“{name}” must be a whole number from {low} to {high}.")
    return value


def _strings(options: Mapping, name: str) -> tuple[str, ...]:
    value = options.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValidationError(f'“{name}” must be a list of texts, e.g. ["yes", "no"].')
    return tuple(v.strip() for v in value)


def _only(options: Mapping, allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        names = ", ".join(f"“{u}”" for u in unknown)
        takes = ", ".join(f"“{a}”" for a in sorted(allowed)) or "none"
        raise ValidationError(f"Unknown option {names}; this kind of step takes {takes}.")


def ask_options(options: Mapping) -> AskOptions:
    _only(options, {"key", "choices", "retry_text", "max_retries", "wait_seconds"})
    key = options.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValidationError(
            "A question needs “key”: the name its answer is stored under "
            '(letters, digits and _), e.g. {"key": "order_number"}.'
        )
    choices = _strings(options, "choices")
    retry_text = options.get("retry_text", "")
    if not isinstance(retry_text, str):
        raise ValidationError("“retry_text” must be a text.")
    if choices and not retry_text.strip():
        retry_text = "Please answer " + " or ".join(choices) + "."
    if placeholder_errors(retry_text):
        raise ValidationError(placeholder_errors(retry_text)[0])
    return AskOptions(
        key=key,
        choices=choices,
        retry_text=retry_text.strip(),
        max_retries=_int(options, "max_retries", 2, 0, 10),
        wait_seconds=_int(options, "wait_seconds", 0, 0, 7 * 24 * 3600),
    )


def webhook_options(options: Mapping) -> WebhookOptions:
    _only(options, {"url", "timeout_seconds", "on_failure", "store"})
    url = options.get("url")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise ValidationError("A webhook needs “url”: an http or https address.") from None
    on_failure = options.get("on_failure", "stop")
    if on_failure not in ON_FAILURE:
        raise ValidationError('“on_failure” must be "continue" or "stop".')
    return WebhookOptions(
        url=url,
        timeout_seconds=_int(options, "timeout_seconds", 5, 1, MAX_WEBHOOK_TIMEOUT),
        on_failure=on_failure,
        store=_strings(options, "store"),
    )


def name_option(options: Mapping, name: str, allowed: set[str]) -> str:
    """For finish (“disposition”) and requeue (“campaign”): an optional name."""
    _only(options, allowed)
    value = options.get(name, "")
    if not isinstance(value, str):
        raise ValidationError(f"“{name}” must be a name, as text.")
    return value.strip()
