"""The SMS channel as the core sees it, registered in the core's channel registry."""

import datetime

from django.db.models import Count, Q

from bots.models import BotSession
from bots.selectors import satisfaction
from bots.services import bot_hand_over, bot_start, bot_stop
from campaigns.channels import QueueSettings, TranscriptEntry
from campaigns.models import Interaction, display_name
from sms_channel.models import Message, SmsChannel

_QUEUE_FIELDS = (
    "campaign_id",
    "status",
    "strategy",
    "service_level_seconds",
    "max_queue_seconds",
    "max_transfer_seconds",
    "agents_may_pick",
)


def _settings(row: dict) -> QueueSettings:
    return QueueSettings(
        enabled=row["status"] == SmsChannel.Status.ENABLED,
        strategy=row["strategy"],
        service_level_seconds=row["service_level_seconds"],
        max_queue_seconds=row["max_queue_seconds"],
        max_transfer_seconds=row["max_transfer_seconds"],
        agents_may_pick=row["agents_may_pick"],
    )


class Sms:
    kind = "sms"

    def queue_settings(self, *, campaign_id: int) -> QueueSettings | None:
        return self.queue_settings_many(campaign_ids=[campaign_id]).get(campaign_id)

    def queue_settings_many(self, *, campaign_ids: list[int]) -> dict[int, QueueSettings]:
        rows = SmsChannel.objects.filter(campaign_id__in=campaign_ids).values(*_QUEUE_FIELDS)
        return {row["campaign_id"]: _settings(row) for row in rows}

    def transcript(self, *, interaction_id: int) -> list[TranscriptEntry]:
        messages = Message.objects.filter(interaction_id=interaction_id).select_related(
            "sender_user"
        )
        return [
            TranscriptEntry(
                at=m.created_at,
                who=m.sender,
                author=display_name(m.sender_user),
                body=m.body,
                media=[item.get("url", "") for item in m.media if isinstance(item, dict)],
                delivery=m.get_status_display()
                if m.direction == Message.Direction.OUTBOUND
                else "",
                failed=m.status in (Message.Status.FAILED, Message.Status.UNDELIVERED),
                error=" ".join(filter(None, [m.error_code, m.error_message])),
            )
            for m in messages
        ]

    def unread_counts(self, *, read_marks: dict[int, datetime.datetime | None]) -> dict[int, int]:
        if not read_marks:
            return {}
        unread = Q()
        for interaction_id, mark in read_marks.items():
            condition = Q(interaction_id=interaction_id)
            if mark is not None:
                condition &= Q(created_at__gt=mark)
            unread |= condition
        rows = (
            Message.objects.filter(unread, direction=Message.Direction.INBOUND)
            .values("interaction_id")
            .annotate(n=Count("id"))
            .values_list("interaction_id", "n")
        )
        return {interaction_id: 0 for interaction_id in read_marks} | dict(rows)

    def agent_reply(self, *, interaction: Interaction, body: str, agent) -> None:
        from sms_channel.services import sms_send

        sms_send(interaction=interaction, body=body, sender=Message.Sender.AGENT, user=agent)

    def start_conversation(self, *, campaign, customer_number: str, body: str, agent):
        from sms_channel.services import sms_conversation_start

        return sms_conversation_start(
            campaign=campaign, customer_number=customer_number, body=body, agent=agent
        ).interaction

    def bot_answers(self, *, interaction_id: int) -> dict:
        answers = (
            BotSession.objects.filter(
                interaction_id=interaction_id, trigger=BotSession.Trigger.START
            )
            .values_list("answers", flat=True)
            .first()
        )
        # Keys starting with "_" are the runner's bookkeeping (e.g. webhook errors).
        return {key: value for key, value in (answers or {}).items() if not key.startswith("_")}

    def send_text(self, *, interaction: Interaction, body: str) -> None:
        from sms_channel.services import sms_send

        sms_send(interaction=interaction, body=body, sender=Message.Sender.BOT)

    def interactions_assigned(self, *, interaction_ids: list[int]) -> None:
        bot_hand_over(interaction_ids=interaction_ids)

    def interaction_finished(self, *, interaction_id: int) -> None:
        interaction = Interaction.objects.get(pk=interaction_id)
        if interaction.close_reason == "opted_out":
            # The customer texted STOP: no survey, and nothing else either.
            bot_stop(interaction_id=interaction_id, reason="the customer opted out")
            return
        self._start(interaction, "bot_on_finish", BotSession.Trigger.FINISH)

    def interaction_abandoned(self, *, interaction_id: int) -> None:
        bot_stop(interaction_id=interaction_id, reason="the customer left the queue")

    def interaction_timed_out(self, *, interaction_id: int) -> None:
        interaction = Interaction.objects.get(pk=interaction_id)
        self._start(interaction, "bot_after_timeout", BotSession.Trigger.TIMEOUT)

    def satisfaction(
        self, *, campaign_ids: list[int], start: datetime.datetime, end: datetime.datetime
    ) -> dict[int, tuple[int, float | None]]:
        scores = satisfaction(campaign_ids=campaign_ids, start=start, end=end)
        return {campaign_id: (s.answers, s.average) for campaign_id, s in scores.items()}

    def _start(self, interaction: Interaction, field: str, trigger: str) -> None:
        channel = (
            SmsChannel.objects.select_related(field)
            .filter(campaign_id=interaction.campaign_id)
            .first()
        )
        bot = getattr(channel, field) if channel else None
        if bot is None:
            # Nothing follows: a bot still talking (the greeting) has had its turn.
            bot_stop(interaction_id=interaction.pk, reason="the conversation ended")
            return
        bot_start(interaction_id=interaction.pk, bot=bot, trigger=trigger)
