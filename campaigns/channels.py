"""The registry through which the core reaches a channel (SMS today).

The core never imports a channel app. A channel registers one object per
kind from its AppConfig.ready(); routing asks it for the campaign's queue
settings, and tells it after commit when a conversation enters a queue,
times out or finishes (the channel owns the Automations and starts bots).
"""

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from contactcenter.exceptions import ApplicationError


@dataclass(frozen=True)
class QueueSettings:
    """A campaign's routing settings on one channel."""

    enabled: bool
    strategy: str
    service_level_seconds: int
    max_queue_seconds: int
    max_transfer_seconds: int
    agents_may_pick: bool


@dataclass(frozen=True)
class TranscriptEntry:
    """One message of a conversation as the agent console and the API show it."""

    at: datetime.datetime
    who: str  # "customer", "agent", "bot" or "system"
    author: str  # the agent's name for agent messages, else ""
    body: str
    media: list[str] = field(default_factory=list)
    # Outbound only: the delivery status as a person reads it, and any error.
    delivery: str = ""
    failed: bool = False
    error: str = ""


class Channel(Protocol):
    kind: str

    def queue_settings(self, *, campaign_id: int) -> QueueSettings | None:
        """The campaign's settings on this channel; None when it has none."""

    def queue_settings_many(self, *, campaign_ids: list[int]) -> dict[int, QueueSettings]:
        """Settings for several campaigns in one query."""

    def transcript(self, *, interaction_id: int) -> list[TranscriptEntry]:
        """Every message of the conversation, oldest first."""

    def unread_counts(self, *, read_marks: dict[int, datetime.datetime | None]) -> dict[int, int]:
        """Customer messages after each conversation's read mark, in one query."""

    def agent_reply(self, *, interaction, body: str, agent) -> None:
        """Send the agent's text to the customer; ApplicationError if refused."""

    def start_conversation(self, *, campaign, customer_number: str, body: str, agent):
        """Open an agent-started conversation with a first text; returns the Interaction."""

    def bot_answers(self, *, interaction_id: int) -> dict:
        """What the start bot asked and stored (answer key -> answer), for the agent."""

    def send_text(self, *, interaction, body: str) -> None:
        """Send a bot's text to the conversation's customer; ApplicationError if refused."""

    def interactions_assigned(self, *, interaction_ids: list[int]) -> None:
        """Called inside the assigning transaction when agents took conversations from a queue."""

    def interaction_finished(self, *, interaction_id: int) -> None:
        """Called after commit when an agent or supervisor finished a conversation."""

    def interaction_abandoned(self, *, interaction_id: int) -> None:
        """Called after commit when a waiting conversation was given up (STOP, or a supervisor)."""

    def interaction_timed_out(self, *, interaction_id: int) -> None:
        """Called after commit when a conversation left the queue on its deadline."""

    def satisfaction(
        self, *, campaign_ids: list[int], start: datetime.datetime, end: datetime.datetime
    ) -> dict[int, tuple[int, float | None]]:
        """Satisfaction survey answers per campaign, for surveys started in [start, end).

        Each campaign maps to (how many answers, their average score 1-5 or None).
        """


_channels: dict[str, Channel] = {}


def register(channel: Channel) -> None:
    _channels[channel.kind] = channel


def registered_channels() -> list[tuple[str, Channel]]:
    return sorted(_channels.items())


def get_channel(kind: str) -> Channel:
    try:
        return _channels[kind]
    except KeyError:
        raise ApplicationError(f"No channel of kind “{kind}” is installed.") from None


def queue_settings(*, kind: str, campaign_id: int) -> QueueSettings:
    """The campaign's settings on channel `kind`; refuse when it has none."""
    settings = get_channel(kind).queue_settings(campaign_id=campaign_id)
    if settings is None:
        raise ApplicationError(f"This campaign has no {kind.upper()} channel.")
    return settings
