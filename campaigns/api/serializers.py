"""What the REST API reads and writes. Serializers only shape data: views call services.

No serializer reaches a connector or any other secret-bearing row.
"""

import datetime
import re

from django.contrib.auth.models import User
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.models import (
    AgentProfile,
    Blacklist,
    BlacklistEntry,
    Campaign,
    Interaction,
    InteractionEvent,
    display_name,
)
from campaigns.services import BLACKLIST_BULK_MAX_ROWS, BulkRowStatus


class UserSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    name = serializers.SerializerMethodField()

    def get_name(self, user: User) -> str:
        return display_name(user)


class CampaignSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class DispositionSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


# Interactions -----------------------------------------------------------------


class InteractionSerializer(serializers.ModelSerializer):
    campaign = CampaignSummarySerializer(read_only=True)
    agent = UserSummarySerializer(read_only=True, allow_null=True)
    transfer_to = UserSummarySerializer(read_only=True, allow_null=True)
    disposition = DispositionSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Interaction
        fields = [
            "id",
            "campaign",
            "channel_kind",
            "customer_number",
            "direction",
            "status",
            "reject_reason",
            "close_reason",
            "agent",
            "transfer_to",
            "disposition",
            "created_at",
            "queued_at",
            "assigned_at",
            "first_response_at",
            "left_queue_at",
            "finished_at",
            "last_message_at",
            "queue_outcome",
            "service_level_met",
        ]
        read_only_fields = fields


class TranscriptEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField(read_only=True)
    who = serializers.CharField(read_only=True, help_text="customer, agent, bot or system")
    author = serializers.CharField(read_only=True, help_text="The agent's name on agent messages.")
    body = serializers.CharField(read_only=True)
    media = serializers.ListField(child=serializers.CharField(), read_only=True)
    delivery = serializers.CharField(
        read_only=True, help_text="Outbound only: the delivery status."
    )
    failed = serializers.BooleanField(read_only=True)
    error = serializers.CharField(read_only=True)


class InteractionEventSerializer(serializers.ModelSerializer):
    user = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = InteractionEvent
        fields = ["id", "created_at", "from_status", "to_status", "actor", "user", "reason", "data"]
        read_only_fields = fields


class InteractionDetailSerializer(InteractionSerializer):
    # The view sets `transcript` from the channel registry before serializing.
    messages = TranscriptEntrySerializer(source="transcript", many=True, read_only=True)
    events = InteractionEventSerializer(many=True, read_only=True)

    class Meta(InteractionSerializer.Meta):
        fields = [*InteractionSerializer.Meta.fields, "messages", "events"]
        read_only_fields = fields


# Query strings sent unencoded turn the "+" of an offset into a space.
_OFFSET_AS_SPACE = re.compile(r" (\d{2}(:?\d{2})?)$")


@extend_schema_field(OpenApiTypes.STR)
class DateOrDateTimeField(serializers.Field):
    """An ISO 8601 date (its midnight, UTC) or date-time (UTC when it has no offset)."""

    default_error_messages = {
        "invalid": (
            "Enter an ISO 8601 date (2026-11-25) or date-time (2026-11-25T09:30:00Z); "
            "write a “+” offset as %2B."
        )
    }

    def to_internal_value(self, data) -> datetime.datetime:
        text = _OFFSET_AS_SPACE.sub(r"+\1", str(data).strip())
        try:
            # Python 3.11+ reads a bare date as its midnight.
            value = datetime.datetime.fromisoformat(text)
        except ValueError:
            self.fail("invalid")
        if timezone.is_naive(value):
            value = value.replace(tzinfo=datetime.UTC)
        try:
            # The database stores UTC: an offset may push it past year 1 or 9999.
            return value.astimezone(datetime.UTC)
        except OverflowError:
            self.fail("invalid")


# The largest id a 64-bit key holds; SQLite cannot even compare with a larger one.
MAX_ID = 2**63 - 1


class InteractionFilterSerializer(serializers.Serializer):
    """The list's query parameters; an invalid one answers 400 naming it."""

    campaign = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="A campaign id."
    )
    status = serializers.ChoiceField(choices=Interaction.Status.choices, required=False)
    agent = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="The id of the agent holding the conversation.",
    )
    created_after = DateOrDateTimeField(
        required=False,
        help_text=(
            "Created at or after this ISO 8601 date (midnight UTC) or date-time "
            "(UTC without an offset)."
        ),
    )
    created_before = DateOrDateTimeField(
        required=False,
        help_text=(
            "Created strictly before this ISO 8601 date (midnight UTC) or date-time "
            "(UTC without an offset)."
        ),
    )

    def validate(self, attrs: dict) -> dict:
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after is not None and before is not None and after >= before:
            raise serializers.ValidationError(
                {"created_before": "created_before must be later than created_after."}
            )
        return attrs


# Campaigns --------------------------------------------------------------------


class CampaignSerializer(serializers.ModelSerializer):
    time_zone = serializers.CharField(read_only=True, help_text="IANA time zone name.")

    class Meta:
        model = Campaign
        fields = ["id", "name", "active", "time_zone"]
        read_only_fields = fields


class PeriodStatisticsSerializer(serializers.Serializer):
    entered = serializers.IntegerField(help_text="Conversations that entered the queue.")
    attended = serializers.IntegerField()
    attended_within = serializers.IntegerField(help_text="Attended within the service level.")
    timed_out = serializers.IntegerField()
    abandoned = serializers.IntegerField()
    abandoned_within = serializers.IntegerField()
    sl_percent = serializers.FloatField(allow_null=True)
    sl_percent_with_abandoned = serializers.FloatField(allow_null=True)
    average_wait_seconds = serializers.FloatField(allow_null=True)
    longest_wait_seconds = serializers.FloatField(allow_null=True)
    rejected_by_reason = serializers.DictField(
        child=serializers.IntegerField(),
        help_text=f"Keyed by reason: {', '.join(Interaction.RejectReason.values)}.",
    )


class CampaignStatisticsSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(help_text="The campaign id.")
    generated_at = serializers.DateTimeField(help_text="The moment the figures describe.")
    today = PeriodStatisticsSerializer(help_text="Since midnight in the campaign's time zone.")
    last_hour = PeriodStatisticsSerializer()
    queued_now = serializers.IntegerField()
    longest_waiting_seconds = serializers.FloatField(allow_null=True)
    agents_by_status = serializers.DictField(
        child=serializers.IntegerField(),
        help_text=f"Active members keyed by status: {', '.join(AgentProfile.Status.values)}.",
    )
    agents_busy = serializers.IntegerField(help_text="Active members holding a conversation.")


# Blacklists -------------------------------------------------------------------


class BlacklistSerializer(serializers.ModelSerializer):
    entry_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Blacklist
        fields = ["id", "name", "description", "is_opt_out_list", "created_at", "entry_count"]
        read_only_fields = fields


class BlacklistEntrySerializer(serializers.ModelSerializer):
    added_by = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = BlacklistEntry
        fields = ["id", "number", "reason", "added_by", "added_at"]
        read_only_fields = fields


_TOO_MANY_ROWS = f"At most {BLACKLIST_BULK_MAX_ROWS} rows per request; split it."


class BulkAddRowSerializer(serializers.Serializer):
    # Numbers are read row by row by the service, so an unreadable one is
    # reported in its row instead of refusing the request.
    number = serializers.CharField(allow_blank=True, trim_whitespace=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class BulkAddSerializer(serializers.Serializer):
    entries = serializers.ListField(
        child=BulkAddRowSerializer(),
        allow_empty=False,
        max_length=BLACKLIST_BULK_MAX_ROWS,
        error_messages={"max_length": _TOO_MANY_ROWS},
    )


class BulkRemoveSerializer(serializers.Serializer):
    numbers = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        allow_empty=False,
        max_length=BLACKLIST_BULK_MAX_ROWS,
        error_messages={"max_length": _TOO_MANY_ROWS},
    )


BULK_ROW_STATUSES = [
    BulkRowStatus.ADDED,
    BulkRowStatus.DUPLICATE,
    BulkRowStatus.REMOVED,
    BulkRowStatus.NOT_FOUND,
    BulkRowStatus.INVALID,
]


class BulkRowResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The row's position in the request, from 0.")
    number = serializers.CharField(help_text="E.164 when it could be read, else as sent.")
    status = serializers.ChoiceField(choices=BULK_ROW_STATUSES)
    error = serializers.CharField(help_text="Why an invalid row was refused; else empty.")


class BulkAddResultSerializer(serializers.Serializer):
    results = BulkRowResultSerializer(many=True)
    added = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    invalid = serializers.IntegerField()


class BulkRemoveResultSerializer(serializers.Serializer):
    results = BulkRowResultSerializer(many=True)
    removed = serializers.IntegerField()
    not_found = serializers.IntegerField()
    invalid = serializers.IntegerField()


# Agents -----------------------------------------------------------------------


class AgentStatusSerializer(serializers.Serializer):
    agent = UserSummarySerializer(source="user", read_only=True)
    status = serializers.ChoiceField(choices=AgentProfile.Status.choices)
    # None for an agent whose status was never set.
    status_changed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        default="",
        max_length=255,
        help_text="Recorded with the change.",
    )
