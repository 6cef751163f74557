from django.core.exceptions import ValidationError
from django.db import models


class Bot(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True, help_text="An inactive bot never starts.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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
        if self.kind in self.KINDS_WITH_TEXT and not self.text.strip():
            raise ValidationError({"text": f"A “{self.get_kind_display()}” step needs a text."})
        if not isinstance(self.options, dict):
            raise ValidationError({"options": "Options must be a JSON object, e.g. {}."})
