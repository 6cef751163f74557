"""Try a bot in the admin: the real step code against typed replies, nothing sent.

Writes nothing and sends nothing; webhooks are not called (the transcript
shows what would be posted where).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bots.models import Bot
from bots.runner import BotFailure, Context, Next, Reply, run_step, take_reply
from bots.steps import WebhookOptions

# A bot whose steps loop on retries stops here rather than running forever.
MAX_TRANSCRIPT_LINES = 200


@dataclass(frozen=True)
class Line:
    who: str  # "bot", "customer" or "note"
    text: str


class _TrialPort:
    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines

    def send(self, text: str) -> None:
        self.lines.append(Line("bot", text))

    def finish(self, disposition: str) -> None:
        done = f" with disposition “{disposition}”" if disposition else ""
        self.lines.append(Line("note", f"The conversation is finished{done}."))

    def requeue(self, campaign: str) -> None:
        where = f"campaign “{campaign}”" if campaign else "its own campaign"
        self.lines.append(Line("note", f"The conversation goes to the queue of {where}."))

    def call_webhook(self, options: WebhookOptions, payload: dict) -> Mapping[str, Any]:
        self.lines.append(
            Line("note", f"Would POST the conversation to {options.url} (not called in a trial).")
        )
        return {}


def bot_trial(*, bot: Bot, replies: list[str], campaign_name: str = "Demo") -> list[Line]:
    """The conversation `bot` would have with a customer who answers `replies` in turn."""
    lines: list[Line] = []
    port = _TrialPort(lines)
    context = Context(
        values={
            "customer_number": "+15555550123",
            "campaign": campaign_name,
            "queue_position": "1",
            "estimated_wait": "about 2 minutes",
            "agent_name": "Agent",
        }
    )
    pending = list(replies)
    step_list = list(bot.steps.order_by("position", "id"))
    index = 0
    while index < len(step_list) and len(lines) < MAX_TRANSCRIPT_LINES:
        step = step_list[index]
        try:
            outcome = run_step(step, context, port)
        except BotFailure as failure:
            lines.append(Line("note", f"The bot fails: {failure}"))
            return lines
        if outcome is Next.END:
            return lines
        if outcome is Next.WAIT:
            retries = 0
            while True:
                if not pending:
                    lines.append(Line("note", "The bot waits for the customer's reply."))
                    return lines
                reply = pending.pop(0)
                lines.append(Line("customer", reply))
                verdict, retry_text = take_reply(step, reply, retries=retries, context=context)
                if verdict is not Reply.ASK_AGAIN:
                    break
                retries += 1
                port.send(retry_text)
            if verdict is Reply.GIVE_UP:
                lines.append(Line("note", "No acceptable answer; the bot moves on."))
        index += 1
    if context.answers:
        answers = ", ".join(f"{k} = {v!r}" for k, v in context.answers.items())
        lines.append(Line("note", f"Answers stored: {answers}."))
    lines.append(Line("note", "The bot is done."))
    return lines
