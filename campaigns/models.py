import datetime

from django.conf import settings
from django.contrib.auth.models import User, UserManager
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from timezone_field import TimeZoneField

from campaigns.phone import E164Field
from contactcenter.exceptions import ApplicationError

AGENTS_GROUP = "Agents"
SUPERVISORS_GROUP = "Supervisors"

MIDNIGHT = datetime.time(0, 0)


def display_name(user) -> str:
    """A person as the pages, messages and the API name them: full name, else username."""
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


class Campaign(models.Model):
    name = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(
        default=True, help_text="An inactive campaign takes no new conversations."
    )
    time_zone = TimeZoneField(
        default="UTC",
        use_pytz=False,
        help_text="Opening hours, holidays and today's statistics follow this time zone.",
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Round-robin memory: the member the rrmemory/rrordered strategies served last.
    rr_last_member = models.ForeignKey(
        "Member", on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OpeningHours(models.Model):
    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField(help_text="00:00 means midnight at the end of the day.")

    class Meta:
        ordering = ["campaign", "weekday", "opens"]
        verbose_name = "opening hours"
        verbose_name_plural = "opening hours"
        constraints = [
            models.CheckConstraint(
                condition=Q(closes__gt=F("opens")) | Q(closes=MIDNIGHT),
                name="opening_hours_closes_after_opens",
                violation_error_message="The closing time must be after the opening time.",
            ),
            models.CheckConstraint(
                condition=Q(weekday__gte=0, weekday__lte=6),
                name="opening_hours_weekday_range",
            ),
        ]

    def __str__(self) -> str:
        closes = "24:00" if self.closes == MIDNIGHT else self.closes.strftime("%H:%M")
        return f"{self.get_weekday_display()} {self.opens:%H:%M}–{closes}"

    @property
    def closes_minutes(self) -> int:
        """Minutes after midnight at closing, with 00:00 read as the end of the day."""
        if self.closes == MIDNIGHT:
            return 24 * 60
        return self.closes.hour * 60 + self.closes.minute

    @property
    def opens_minutes(self) -> int:
        return self.opens.hour * 60 + self.opens.minute


class Holiday(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField(help_text="Closed all day, in the campaign's time zone.")
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["campaign", "date"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "date"],
                name="holiday_unique_per_campaign_date",
                violation_error_message="This campaign already has a holiday on that date.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.date:%Y-%m-%d})"


class Member(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        limit_choices_to={"groups__name": AGENTS_GROUP},
    )
    penalty = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="0–100. Agents with a lower penalty are offered work first.",
    )
    position = models.PositiveIntegerField(
        default=0, help_text="Order for the linear and round-robin-ordered strategies."
    )
    active = models.BooleanField(
        default=True, help_text="Untick to pause this agent in this campaign."
    )

    class Meta:
        ordering = ["campaign", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "agent"],
                name="member_unique_per_campaign",
                violation_error_message="This agent is already a member of the campaign.",
            ),
            models.CheckConstraint(
                condition=Q(penalty__lte=100),
                name="member_penalty_at_most_100",
                violation_error_message="The penalty must be between 0 and 100.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent} in {self.campaign}"

    def clean(self) -> None:
        if self.agent_id and not self.agent.groups.filter(name=AGENTS_GROUP).exists():
            raise ValidationError(
                {"agent": f"{self.agent} is not in the {AGENTS_GROUP} group, so cannot take work."}
            )


class Disposition(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="dispositions")
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["campaign", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "name"],
                name="disposition_unique_per_campaign",
                violation_error_message="This campaign already has a disposition with that name.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class AgentManager(UserManager):
    # UserManager's normalize_email is needed by User.clean(); it is not
    # needed in migrations, where the proxy has no manager of its own.
    use_in_migrations = False

    def get_queryset(self):
        return super().get_queryset().filter(groups__name=AGENTS_GROUP)


class Agent(User):
    """The users in the Agents group, so supervisors manage agents, not all users.

    A proxy: supervisors get permissions on it without the User admin, which
    would let them grant themselves superuser rights.
    """

    objects = AgentManager()

    class Meta:
        proxy = True

    def __str__(self) -> str:
        return display_name(self)


class AgentProfile(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "available", "Available"
        BREAK = "break", "On break"
        OFFLINE = "offline", "Offline"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OFFLINE)
    status_changed_at = models.DateTimeField(default=timezone.now)
    capacity = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="How many conversations this agent handles at once.",
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_assignment_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity__gte=1),
                name="agent_capacity_at_least_one",
                violation_error_message="Capacity must be at least 1.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["available", "break", "offline"]),
                name="agent_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_status_display()})"


class Blacklist(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    is_opt_out_list = models.BooleanField(
        default=False,
        help_text="Kept by the system from customers' STOP/START messages for one connector.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BlacklistEntry(models.Model):
    blacklist = models.ForeignKey(Blacklist, on_delete=models.CASCADE, related_name="entries")
    number = E164Field(help_text="International format, e.g. +14155550123.")
    reason = models.CharField(max_length=255, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["blacklist", "number"]
        verbose_name_plural = "blacklist entries"
        constraints = [
            models.UniqueConstraint(
                fields=["blacklist", "number"],
                name="blacklist_entry_unique_number",
                violation_error_message="This number is already on the list.",
            ),
            models.CheckConstraint(
                condition=Q(number__regex=r"^\+[1-9][0-9]{1,14}$"),
                name="blacklist_entry_number_e164",
                violation_error_message="The number must be in E.164 format.",
            ),
        ]
        indexes = [models.Index(fields=["number"], name="blacklist_entry_number_idx")]

    def __str__(self) -> str:
        return self.number


class Interaction(models.Model):
    """One customer conversation in one campaign over one channel."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        ASSIGNED = "assigned", "Assigned"
        TRANSFERRING = "transferring", "Transferring"
        FINISHED = "finished", "Finished"
        TIMED_OUT = "timed_out", "Timed out"
        REJECTED = "rejected", "Rejected"
        ABANDONED = "abandoned", "Abandoned"

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound (agent-started)"

    class RejectReason(models.TextChoices):
        CHANNEL_DISABLED = "channel_disabled", "Channel disabled"
        BLACKLISTED = "blacklisted", "Sender blacklisted"
        OUT_OF_HOURS = "out_of_hours", "Out of hours"
        QUEUE_FULL = "queue_full", "Queue full"
        CAMPAIGN_INACTIVE = "campaign_inactive", "Campaign inactive"

    class QueueOutcome(models.TextChoices):
        ATTENDED = "attended", "Attended"
        TIMED_OUT = "timed_out", "Timed out"
        ABANDONED = "abandoned", "Abandoned"

    # The states in which a customer's next message joins this conversation.
    OPEN_STATUSES = (Status.QUEUED, Status.ASSIGNED, Status.TRANSFERRING)

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="interactions")
    channel_kind = models.CharField(max_length=16, default="sms")
    customer_number = E164Field()
    direction = models.CharField(
        max_length=16, choices=Direction.choices, default=Direction.INBOUND
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    reject_reason = models.CharField(max_length=32, choices=RejectReason.choices, blank=True)
    close_reason = models.CharField(max_length=64, blank=True)

    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="interactions",
    )
    disposition = models.ForeignKey(
        Disposition, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # While TRANSFERRING: the agent offered the conversation. `agent` stays
    # the one who transferred it until the offer is accepted.
    transfer_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="offered_transfers",
    )
    transfer_deadline_at = models.DateTimeField(null=True, blank=True)
    transfer_note = models.CharField(max_length=255, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    # The queue columns describe the last time the conversation entered a
    # campaign's queue (a transfer to another campaign or a requeue starts a
    # new stay): when it entered, its deadline, when and how it left, and
    # whether it left within the channel's service level. Statistics count
    # by them, so they are written once, by the service that ends the stay.
    queued_at = models.DateTimeField(null=True, blank=True)
    queue_deadline_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    left_queue_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # When the agent holding it last opened it: later customer messages are unread.
    agent_read_at = models.DateTimeField(null=True, blank=True)
    queue_outcome = models.CharField(max_length=16, choices=QueueOutcome.choices, blank=True)
    service_level_met = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one open conversation per customer per campaign, so two
            # messages arriving at once cannot open two conversations.
            models.UniqueConstraint(
                fields=["campaign", "channel_kind", "customer_number"],
                condition=Q(status__in=["queued", "assigned", "transferring"]),
                name="interaction_one_open_per_customer",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["assigned", "transferring"]) | Q(agent__isnull=False),
                name="interaction_assigned_has_agent",
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(reject_reason=""),
                name="interaction_rejected_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(status="transferring") | Q(transfer_to__isnull=False),
                name="interaction_transferring_has_target",
            ),
        ]
        indexes = [
            models.Index(
                fields=["campaign", "queued_at"],
                condition=Q(status="queued"),
                name="interaction_queue_idx",
            ),
            models.Index(
                fields=["queue_deadline_at"],
                condition=Q(status="queued", queue_deadline_at__isnull=False),
                name="interaction_queue_deadline_idx",
            ),
            models.Index(
                fields=["agent", "status"],
                condition=Q(status__in=["assigned", "transferring"]),
                name="interaction_agent_load_idx",
            ),
            models.Index(fields=["campaign", "created_at"], name="interaction_campaign_day_idx"),
            models.Index(
                fields=["transfer_deadline_at"],
                condition=Q(status="transferring", transfer_deadline_at__isnull=False),
                name="interaction_transfer_due_idx",
            ),
            models.Index(
                fields=["transfer_to"],
                condition=Q(status="transferring"),
                name="interaction_offers_idx",
            ),
            # leastrecent and fewestcalls read each agent's finished work per campaign.
            models.Index(
                fields=["campaign", "agent", "finished_at"], name="interaction_agent_history_idx"
            ),
            # Statistics: who left the queue when (assigned, timed out, abandoned).
            models.Index(fields=["campaign", "queued_at"], name="interaction_entered_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.customer_number} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    def check_transition(self, to_status: str) -> None:
        """Refuse a status change that ALLOWED_TRANSITIONS does not list."""
        if to_status not in ALLOWED_TRANSITIONS[self.status]:
            raise ApplicationError(
                f"Conversation #{self.pk} is {self.get_status_display().lower()}; "
                f"it cannot become {self.Status(to_status).label.lower()}."
            )


class AgentStatusEvent(models.Model):
    """Every change of an agent's status, for reports and the dashboard."""

    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="status_events"
    )
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["agent", "created_at"], name="agent_status_event_idx")]

    def __str__(self) -> str:
        return f"{self.agent}: {self.from_status} → {self.to_status}"


class InteractionEvent(models.Model):
    """The audit trail: one row per status transition and per notable action."""

    class Actor(models.TextChoices):
        SYSTEM = "system", "System"
        CUSTOMER = "customer", "Customer"
        AGENT = "agent", "Agent"
        SUPERVISOR = "supervisor", "Supervisor"
        BOT = "bot", "Bot"

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    actor = models.CharField(max_length=16, choices=Actor.choices, default=Actor.SYSTEM)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["interaction", "created_at"], name="event_interaction_idx")]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status or '∅'} ({self.reason})"


_S = Interaction.Status
# The one map of legal status changes; "" is a conversation being created.
# Transfers to another campaign and bots that requeue go back to QUEUED; a
# timeout bot may give a TIMED_OUT conversation another chance in a queue.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "": frozenset({_S.QUEUED, _S.ASSIGNED, _S.REJECTED}),
    _S.QUEUED: frozenset({_S.ASSIGNED, _S.TIMED_OUT, _S.ABANDONED, _S.FINISHED}),
    _S.ASSIGNED: frozenset({_S.TRANSFERRING, _S.QUEUED, _S.FINISHED}),
    _S.TRANSFERRING: frozenset({_S.ASSIGNED, _S.QUEUED, _S.FINISHED}),
    _S.TIMED_OUT: frozenset({_S.QUEUED}),
    _S.FINISHED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.ABANDONED: frozenset(),
}
