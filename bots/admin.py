from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Max
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path

from bots.models import Bot, BotSession, BotStep
from bots.services import bot_rotate_secret, bot_save
from bots.trial import bot_trial
from campaigns.models import Campaign

# Shown once above the steps rather than under every step's fields.
STEP_KINDS_GUIDE = """
<p>Steps run one after another, from the lowest position up. <b>Options</b> is a JSON
object; leave <code>{}</code> when the kind takes none.</p>
<ul>
<li><b>Send a message</b>: sends the text to the customer and goes on. No options.</li>
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
named campaign (empty: its own). Options: <code>{"campaign": "Sales"}</code>.</li>
</ul>
<p>Texts (messages, questions, <code>retry_text</code>) may use <code>{customer_number}</code>,
<code>{campaign}</code>, <code>{queue_position}</code>, <code>{estimated_wait}</code>,
<code>{agent_name}</code> and <code>{answer:KEY}</code> (an earlier answer); write
<code>{{</code> and <code>}}</code> for literal braces.</p>
<p>Webhook calls carry <code>X-Bot-Signature: sha256=&lt;hex&gt;</code>, the HMAC-SHA256 of the
request body with this bot's webhook secret, and <code>X-Bot-Delivery</code>, the same on a
repeated delivery of one step.</p>
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
    readonly_fields = ["created_at", "webhook_secret_display"]
    fieldsets = [
        (
            None,
            {"fields": ["name", "active", "description", "webhook_secret_display", "created_at"]},
        ),
        ("How steps work", {"fields": [], "description": STEP_KINDS_GUIDE}),
    ]
    inlines = [BotStepInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_step_count=Count("steps"))

    @admin.display(description="steps", ordering="_step_count")
    def step_count(self, obj: Bot) -> int:
        return obj._step_count

    @admin.display(description="webhook secret")
    def webhook_secret_display(self, obj: Bot) -> str:
        return obj.masked_webhook_secret or "(made when the bot is saved)"

    actions = ["rotate_webhook_secret"]

    def save_model(self, request, obj, form, change) -> None:
        bot_save(bot=obj)
        if not change:
            self._show_secret_once(request, obj)

    def _show_secret_once(self, request, bot: Bot) -> None:
        # The receiving server needs the whole secret to check signatures;
        # this message is the only place it is ever shown.
        self.message_user(
            request,
            f"Webhook secret of “{bot}”: {bot.webhook_secret} — copy it into the "
            "receiving server now; it is not shown again (rotate it to get a new one).",
            messages.WARNING,
        )

    @admin.action(description="Rotate the webhook secret (shown once)")
    def rotate_webhook_secret(self, request, queryset) -> None:
        for bot in queryset:
            bot_rotate_secret(bot=bot)
            self._show_secret_once(request, bot)

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/try/",
                self.admin_site.admin_view(self.try_view),
                name=f"{opts.app_label}_{opts.model_name}_try",
            ),
            *super().get_urls(),
        ]

    def try_view(self, request, object_id):
        bot = self.get_object(request, unquote(object_id))
        if bot is None:
            raise Http404("No such bot.")
        if not self.has_view_permission(request, bot):
            raise PermissionDenied
        form = BotTrialForm(request.POST or None)
        transcript = None
        if form.is_bound and form.is_valid():
            campaign = form.cleaned_data["campaign"]
            transcript = bot_trial(
                bot=bot,
                replies=form.cleaned_data["replies"],
                campaign_name=campaign.name if campaign else "Demo",
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Try {bot}",
            "opts": self.model._meta,
            "original": bot,
            "form": form,
            "transcript": transcript,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/bots/bot/try.html", context)


class BotTrialForm(forms.Form):
    replies = forms.CharField(
        label="Customer replies",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        help_text="One per line, in order: what the customer answers each time the bot waits.",
    )
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.all(),
        required=False,
        help_text="Whose name fills {campaign}.",
    )

    def clean_replies(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["replies"].splitlines() if line.strip()]


@admin.register(BotSession)
class BotSessionAdmin(admin.ModelAdmin):
    """Bot runs, read only: where each stopped and why, and the answers it stored."""

    list_display = ["__str__", "trigger", "status", "step_position", "error", "updated_at"]
    list_filter = ["status", "trigger", "bot"]
    list_select_related = ["bot", "interaction"]
    search_fields = ["interaction__customer_number", "bot__name"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in BotSession._meta.concrete_fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
