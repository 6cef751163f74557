from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from bots.models import Bot
from campaigns.models import Blacklist, Campaign, Interaction
from campaigns.phone import E164Field
from contactcenter.crypto import EncryptedTextField, mask

account_sid_validator = RegexValidator(
    r"^AC[0-9a-fA-F]{32}$", "A Twilio Account SID is “AC” followed by 32 hexadecimal characters."
)
messaging_service_sid_validator = RegexValidator(
    r"^MG[0-9a-fA-F]{32}$",
    "A Twilio Messaging Service SID is “MG” followed by 32 hexadecimal characters.",
)


class Connector(models.Model):
    class Provider(models.TextChoices):
        TWILIO = "twilio", "Twilio"
        SIMULATOR = "simulator", "Simulator (local, no network)"

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    active = models.BooleanField(default=True)
    account_sid = models.CharField(
        "Account SID",
        max_length=34,
        blank=True,
        validators=[account_sid_validator],
        help_text="Twilio only: from the Twilio console, starts with AC.",
    )
    auth_token = EncryptedTextField(
        blank=True,
        help_text="Twilio only. Stored encrypted; never shown again in full.",
    )
    messaging_service_sid = models.CharField(
        "Messaging Service SID",
        max_length=34,
        blank=True,
        validators=[messaging_service_sid_validator],
        help_text="Twilio only, optional: send through this Messaging Service.",
    )
    opt_out_list = models.OneToOneField(
        Blacklist,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="opt_out_connector",
        help_text="Customers who texted STOP to one of this connector's numbers.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.provider == self.Provider.TWILIO:
            errors = {}
            if not self.account_sid:
                errors["account_sid"] = "A Twilio connector needs its Account SID."
            if not self.auth_token:
                errors["auth_token"] = "A Twilio connector needs its Auth Token."
            if errors:
                raise ValidationError(errors)

    @property
    def masked_auth_token(self) -> str:
        return mask(self.auth_token)


class PhoneNumber(models.Model):
    connector = models.ForeignKey(Connector, on_delete=models.PROTECT, related_name="phone_numbers")
    number = E164Field(unique=True, help_text="International format, e.g. +14155550123.")
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(number__regex=r"^\+[1-9][0-9]{1,14}$"),
                name="phone_number_e164",
                violation_error_message="The number must be in E.164 format.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.label})" if self.label else self.number


class SmsChannel(models.Model):
    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"

    class Strategy(models.TextChoices):
        RINGALL = "ringall", "Ring all: offer to every available agent, first to take it wins"
        LEASTRECENT = "leastrecent", "Least recent: agent whose last conversation ended longest ago"
        FEWESTCALLS = "fewestcalls", "Fewest calls: agent who finished the fewest today"
        RANDOM = "random", "Random"
        RRMEMORY = "rrmemory", "Round robin with memory"
        RRORDERED = "rrordered", "Round robin in member order"
        LINEAR = "linear", "Linear: always in member order from the first"
        WRANDOM = "wrandom", "Weighted random: higher penalty, lower odds"

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="sms_channel")

    # General
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.DISABLED,
        help_text="Disabled: inbound messages are stored and rejected, nothing is queued.",
    )
    connector = models.ForeignKey(
        Connector,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="channels",
        help_text="The SMS provider account that sends and receives for this campaign.",
    )
    phone_number = models.ForeignKey(
        PhoneNumber,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="channels",
        help_text="One of the connector's numbers; customers text this number.",
    )
    strategy = models.CharField(
        max_length=16,
        choices=Strategy.choices,
        default=Strategy.RINGALL,
        help_text="How queued conversations are distributed to the campaign's agents.",
    )
    agents_may_pick = models.BooleanField(
        "agents may pick from the queue",
        default=False,
        help_text="Let agents take any waiting conversation from their pending list, "
        "whatever the strategy (ring all always lets them).",
    )
    service_level_seconds = models.PositiveIntegerField(
        "service level (s)",
        default=20,
        validators=[MinValueValidator(1)],
        help_text="Seconds within which a conversation should reach an agent.",
    )
    max_interactions = models.PositiveIntegerField(
        "max interactions",
        default=0,
        help_text="Most conversations waiting in the queue at once; 0 = no cap.",
    )
    max_transfer_seconds = models.PositiveIntegerField(
        "maximum transfer time (s)",
        default=0,
        help_text="Seconds an agent has to accept a transfer before it returns; 0 = no limit.",
    )
    max_queue_seconds = models.PositiveIntegerField(
        "maximum time in queue (s)",
        default=0,
        help_text="Seconds a conversation may wait for an agent before it times out; 0 = no limit.",
    )
    out_of_hours_message = models.TextField(
        blank=True,
        help_text="Sent to a customer who writes outside the opening hours; empty = no reply.",
    )
    out_of_hours_repeat_hours = models.PositiveIntegerField(
        "repeat out-of-hours message after (h)",
        default=12,
        help_text="A customer gets the out-of-hours message at most once in this many hours.",
    )
    queue_full_message = models.TextField(
        blank=True,
        help_text="Sent when max interactions are already waiting; empty = no reply.",
    )
    inbound_blacklist_enabled = models.BooleanField(
        "inbound blacklist",
        default=False,
        help_text="Reject messages from numbers on the chosen blacklists, without a reply.",
    )
    inbound_blacklists = models.ManyToManyField(
        Blacklist, blank=True, related_name="inbound_channels"
    )
    outbound_blacklist_enabled = models.BooleanField(
        "outbound blacklist",
        default=False,
        help_text="Refuse to send to numbers on the chosen blacklists.",
    )
    outbound_blacklists = models.ManyToManyField(
        Blacklist, blank=True, related_name="outbound_channels"
    )

    # Automations
    bot_on_start = models.ForeignKey(
        Bot,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Talks to the customer while the conversation waits for an agent.",
    )
    bot_on_finish = models.ForeignKey(
        Bot,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Runs after the agent finishes, e.g. a satisfaction survey.",
    )
    bot_after_timeout = models.ForeignKey(
        Bot,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Runs when a conversation leaves the queue after the maximum time in queue.",
    )

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SMS channel"
        constraints = [
            models.UniqueConstraint(
                fields=["phone_number"],
                condition=Q(status="enabled"),
                name="sms_channel_number_one_enabled",
                violation_error_message="This phone number already serves another enabled "
                "SMS channel.",
            ),
            models.CheckConstraint(
                condition=Q(status="disabled")
                | Q(connector__isnull=False, phone_number__isnull=False),
                name="sms_channel_enabled_has_number",
                violation_error_message="An enabled channel needs a connector and a phone number.",
            ),
            models.CheckConstraint(
                condition=Q(service_level_seconds__gte=1),
                name="sms_channel_service_level_positive",
                violation_error_message="The service level must be at least 1 second.",
            ),
        ]

    def __str__(self) -> str:
        return f"SMS channel of {self.campaign}"

    def clean(self) -> None:
        errors = {}
        if self.phone_number_id and self.connector_id:
            if self.phone_number.connector_id != self.connector_id:
                errors["phone_number"] = (
                    f"{self.phone_number.number} belongs to connector "
                    f"“{self.phone_number.connector}”, not “{self.connector}”."
                )
        elif self.phone_number_id and not self.connector_id:
            errors["connector"] = "Choose the connector that owns this phone number."
        if self.status == self.Status.ENABLED:
            if not self.connector_id:
                errors.setdefault("connector", "An enabled channel needs a connector.")
            elif not self.connector.active:
                errors.setdefault(
                    "connector", f"Connector “{self.connector}” is inactive; activate it first."
                )
            if not self.phone_number_id:
                errors.setdefault("phone_number", "An enabled channel needs a phone number.")
        if errors:
            raise ValidationError(errors)


class Message(models.Model):
    """One SMS in or out. Inbound rows are unique by the provider's SID."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    class Sender(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        AGENT = "agent", "Agent"
        BOT = "bot", "Bot"
        SYSTEM = "system", "System"

    class Purpose(models.TextChoices):
        CONVERSATION = "conversation", "Conversation"
        OUT_OF_HOURS = "out_of_hours", "Out-of-hours reply"
        QUEUE_FULL = "queue_full", "Queue-full reply"
        OPT_OUT = "opt_out", "Opt-out keyword"
        OPT_IN = "opt_in", "Opt-in keyword"
        HELP = "help", "Help keyword"

    class Status(models.TextChoices):
        # Ours, before the provider has it.
        QUEUED = "queued", "Queued"
        # Twilio's delivery statuses.
        ACCEPTED = "accepted", "Accepted"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        UNDELIVERED = "undelivered", "Undelivered"
        FAILED = "failed", "Failed"
        READ = "read", "Read"
        CANCELED = "canceled", "Canceled"
        PARTIALLY_DELIVERED = "partially_delivered", "Partially delivered"
        RECEIVED = "received", "Received"

    channel = models.ForeignKey(SmsChannel, on_delete=models.PROTECT, related_name="messages")
    interaction = models.ForeignKey(
        Interaction, on_delete=models.PROTECT, null=True, blank=True, related_name="sms_messages"
    )
    direction = models.CharField(max_length=8, choices=Direction.choices)
    sender = models.CharField(max_length=8, choices=Sender.choices)
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.CONVERSATION)
    from_number = E164Field()
    to_number = E164Field()
    body = models.TextField(blank=True)
    media = models.JSONField(default=list, blank=True)
    provider_sid = models.CharField(max_length=64, null=True, blank=True, unique=True)
    status = models.CharField(max_length=24, choices=Status.choices)
    error_code = models.CharField(max_length=16, blank=True)
    error_message = models.CharField(max_length=255, blank=True)
    # Outbound delivery bookkeeping (see sms_channel.services.sms_deliver).
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the next send attempt is due; while an attempt runs it is pushed
    # ahead as a lease, so a second worker leaves the message alone.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set before calling the provider, cleared on a definite answer: if set
    # at the next attempt, the last one crashed or timed out, so the provider
    # is asked whether it has the message before sending again.
    outcome_unknown = models.BooleanField(default=False)
    # True when an attempt's outcome was unknown and the provider showed no
    # trace of it, so the message was sent again and may arrive twice.
    duplicate_possible = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["interaction", "created_at"], name="message_interaction_idx"),
            models.Index(
                fields=["channel", "to_number", "purpose", "created_at"],
                name="message_auto_reply_idx",
            ),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="queued", direction="outbound"),
                name="message_send_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.from_number} → {self.to_number}"
