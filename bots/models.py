from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Interaction
from contactcenter.crypto import EncryptedTextField, mask


class Bot(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True, help_text="An inactive bot never starts.")
    webhook_secret = EncryptedTextField(
        blank=True,
        editable=False,
        help_text="Signs this bot's webhook calls (HMAC-SHA256). Stored encrypted.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def masked_webhook_secret(self) -> str:
        return mask(self.webhook_secret)


class BotStep(models.Model):
    class Kind(models.TextChoices):
        SEND_MESSAGE = "send_message", "Send a message"
        ASK = "ask", "Ask a question and store the answer"
        WEBHOOK = "webhook", "Call a webhook"
        FINISH = "finish", "Finish the interaction"
        REQUEUE = "requeue", "Put the interaction back in a queue"

    # Kinds whose text is what the customer receives, so it cannot be empty.
    KINDS_WITH_TEXT = (Kind.SEND_MESSAGE, Kind.ASK)

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    text = models.TextField(blank=True, help_text="The message or question sent to the customer.")
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Settings of this kind of step, as JSON (e.g. the answer key of a question).",
    )

    class Meta:
        ordering = ["bot", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["bot", "position"],
                name="bot_step_unique_position",
                violation_error_message="Two steps of this bot have the same position.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_kind_display()}"

    def clean(self) -> None:
        from bots import steps
        from campaigns.models import Campaign

        if self.kind in self.KINDS_WITH_TEXT and not self.text.strip():
            raise ValidationError({"text": f"A “{self.get_kind_display()}” step needs a text."})
        if self.text and (errors := steps.placeholder_errors(self.text)):
            raise ValidationError({"text": errors})
        if not isinstance(self.options, dict):
            raise ValidationError({"options": "Options must be a JSON object, e.g. {}."})
        try:
            if self.kind == self.Kind.ASK:
                steps.ask_options(self.options)
            elif self.kind == self.Kind.WEBHOOK:
                steps.webhook_options(self.options)
            elif self.kind == self.Kind.FINISH:
                steps.name_option(self.options, "disposition", {"disposition"})
            elif self.kind == self.Kind.REQUEUE:
                name = steps.name_option(self.options, "campaign", {"campaign"})
                if name and not Campaign.objects.filter(name=name).exists():
                    raise ValidationError(f"There is no campaign named “{name}”.")
            elif self.options:
                raise ValidationError("This kind of step takes no options; leave {}.")
        except ValidationError as error:
            raise ValidationError({"options": error.messages}) from None


class BotSession(models.Model):
    """One bot talking on one conversation for one trigger: where it is and what it heard."""

    class Trigger(models.TextChoices):
        START = "start", "On start"
        FINISH = "finish", "On finish"
        TIMEOUT = "timeout", "After timeout"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for the customer"
        DONE = "done", "Done"
        STOPPED = "stopped", "Stopped"
        FAILED = "failed", "Failed"

    ACTIVE_STATUSES = (Status.RUNNING, Status.WAITING)

    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="bot_sessions"
    )
    bot = models.ForeignKey(Bot, on_delete=models.PROTECT, related_name="sessions")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    # The position of the step to run next, or of the question being waited on.
    step_position = models.IntegerField(null=True, blank=True)
    answers = models.JSONField(default=dict, blank=True)
    retries = models.PositiveSmallIntegerField(default=0)
    wait_deadline_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # A trigger fires once per conversation: a timeout bot that
            # requeues cannot run again on the next timeout and loop forever.
            models.UniqueConstraint(
                fields=["interaction", "trigger"], name="bot_session_once_per_trigger"
            ),
        ]
        indexes = [
            models.Index(
                fields=["wait_deadline_at"],
                condition=Q(status="waiting", wait_deadline_at__isnull=False),
                name="bot_session_wait_due_idx",
            ),
            models.Index(
                fields=["interaction"],
                condition=Q(status__in=["running", "waiting"]),
                name="bot_session_active_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bot} ({self.get_trigger_display()}) on #{self.interaction_id}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES
