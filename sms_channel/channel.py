"""The SMS channel as the core sees it, registered in the core's channel registry."""

from campaigns.channels import QueueSettings
from campaigns.models import Interaction, InteractionEvent
from campaigns.services import interaction_note
from sms_channel.models import SmsChannel

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

    def interaction_finished(self, *, interaction_id: int) -> None:
        self._bot_due(interaction_id, "bot_on_finish", "bot on finish due")

    def interaction_timed_out(self, *, interaction_id: int) -> None:
        self._bot_due(interaction_id, "bot_after_timeout", "bot after timeout due")

    def _bot_due(self, interaction_id: int, field: str, reason: str) -> None:
        # The bot runner arrives with the bots issue; until then the event
        # log records which bot should have started.
        campaign_id = Interaction.objects.values_list("campaign_id", flat=True).get(
            pk=interaction_id
        )
        bot_id = (
            SmsChannel.objects.filter(campaign_id=campaign_id, **{f"{field}__active": True})
            .values_list(f"{field}_id", flat=True)
            .first()
        )
        if bot_id:
            interaction_note(
                interaction_id=interaction_id,
                reason=reason,
                actor=InteractionEvent.Actor.SYSTEM,
                data={"bot": bot_id},
            )
