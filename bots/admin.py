from django import forms
from django.contrib import admin
from django.db.models import Count, F, Max

from bots.models import Bot, BotStep

# Shown once above the steps rather than under every step's fields.
STEP_KINDS_GUIDE = """
<p>Steps run one after another, from the lowest position up. <b>Options</b> is a JSON
object; leave <code>{}</code> when the kind takes none.</p>
<ul>
<li><b>Send a message</b>: sends the text to the customer and goes on. The text may use
<code>{campaign}</code> and <code>{queue_position}</code>. No options.</li>
<li><b>Ask a question and store the answer</b>: sends the text, waits for the customer's
reply and stores it under <code>key</code>. Options:
<code>{"key": "order_number", "choices": ["yes", "no"], "retry_text": "Please answer yes or
no.", "max_retries": 2, "wait_seconds": 0}</code>. <code>choices</code> (optional) are the
allowed answers; another answer gets <code>retry_text</code>, at most
<code>max_retries</code> times. <code>wait_seconds</code>: how long to wait for a reply
before going on without one; 0 = no limit.</li>
<li><b>Call a webhook</b>: POSTs the conversation and the answers so far as JSON. Options:
<code>{"url": "https://...", "timeout_seconds": 5, "on_failure": "continue", "store":
["field"]}</code>. <code>on_failure</code> is <code>"continue"</code> (go on to the next
step) or <code>"stop"</code> (end the bot); <code>store</code> lists the fields of the JSON
response to keep as answers.</li>
<li><b>Finish the interaction</b>: ends the conversation with one of the campaign's
dispositions. Options: <code>{"disposition": "Resolved"}</code>.</li>
<li><b>Put the interaction back in a queue</b>: queues the conversation for an agent in the
named campaign. Options: <code>{"campaign": "Sales"}</code>.</li>
</ul>
"""


class BotStepForm(forms.ModelForm):
    class Meta:
        model = BotStep
        fields = ["position", "kind", "text", "options"]
        widgets = {
            "text": forms.Textarea(attrs={"rows": 2, "cols": 40}),
            "options": forms.Textarea(attrs={"rows": 2, "cols": 40}),
        }
        help_texts = {
            "position": "Lowest first. Leave gaps (10, 20, 30) to insert steps later.",
        }

    def clean_options(self):
        # A cleared box means "no options", not JSON null.
        options = self.cleaned_data["options"]
        return {} if options is None else options


class BotStepFormSet(forms.BaseInlineFormSet):
    def save(self, commit=True):
        if commit:
            self._park_moving_steps()
        return super().save(commit=commit)

    def _park_moving_steps(self) -> None:
        """Lift the steps that change position or are deleted above every position in use.

        The formset saves one row at a time, so swapping two steps' positions (or
        reusing a deleted step's position) would break bot_step_unique_position
        half-way through; parked rows are then saved at their new positions.
        """
        moving = [
            form.instance.pk
            for form in self.initial_forms
            if form in self.deleted_forms or "position" in form.changed_data
        ]
        if not moving:
            return
        stored = self.instance.steps.aggregate(top=Max("position"))["top"] or 0
        wanted = [form.cleaned_data.get("position") or 0 for form in self.forms]
        above = max(stored, *wanted) + 1
        BotStep.objects.filter(pk__in=moving).update(position=F("position") + above)


class BotStepInline(admin.TabularInline):
    model = BotStep
    form = BotStepForm
    formset = BotStepFormSet
    verbose_name = "step"
    verbose_name_plural = "steps"
    ordering = ["position", "id"]
    extra = 1


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = ["name", "active", "step_count"]
    list_filter = ["active"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at"]
    fieldsets = [
        (None, {"fields": ["name", "active", "description", "created_at"]}),
        ("How steps work", {"fields": [], "description": STEP_KINDS_GUIDE}),
    ]
    inlines = [BotStepInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_step_count=Count("steps"))

    @admin.display(description="steps", ordering="_step_count")
    def step_count(self, obj: Bot) -> int:
        return obj._step_count
