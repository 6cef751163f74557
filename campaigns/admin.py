import csv
import re

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_value, unquote
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import slugify
from rest_framework.authtoken.models import TokenProxy

from campaigns.forms import (
    AgentChangeForm,
    AgentCreationForm,
    BlacklistEntryFormSet,
    BlacklistImportForm,
    MemberForm,
    MemberFormSet,
    ModelMessageInlineFormSet,
    OpeningHoursFormSet,
)
from campaigns.models import (
    Agent,
    AgentProfile,
    Blacklist,
    BlacklistEntry,
    Campaign,
    Disposition,
    Holiday,
    Interaction,
    InteractionEvent,
    Member,
    OpeningHours,
)
from campaigns.phone import normalize_e164
from campaigns.routing import interaction_close
from campaigns.selectors import blacklist_csv_rows
from campaigns.services import (
    agent_create,
    agent_set_password,
    agent_update,
    blacklist_import_csv,
)
from contactcenter.exceptions import ApplicationError

# Beyond this many numbers a blacklist's page lists none of them inline: the
# formset would be slow and its POST would pass DATA_UPLOAD_MAX_NUMBER_FIELDS.
BLACKLIST_INLINE_MAX_ENTRIES = 100

_PHONE_LIKE = re.compile(r"^[\d\s().+-]*\d[\d\s().+-]*$")


def _number_search_term(search_term: str) -> str:
    """Return a phone number typed any way as it appears in stored E.164 numbers.

    Separators go, so "+1 (415) 555-0101" and "555-0101" match as substrings
    without PHONE_DEFAULT_REGION; a national number with a trunk prefix
    ("020 7946 0018") is normalised when that setting allows. Other terms
    are returned unchanged.
    """
    term = search_term.strip()
    if not _PHONE_LIKE.match(term):
        return search_term
    digits = re.sub(r"\D", "", term)
    if term.startswith("+"):
        return f"+{digits}"
    if digits.startswith("0"):
        try:
            return normalize_e164(term)
        except ValidationError:
            pass
    return digits


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    formset = OpeningHoursFormSet
    fields = ["weekday", "opens", "closes"]
    extra = 1


class HolidayInline(admin.TabularInline):
    model = Holiday
    formset = ModelMessageInlineFormSet
    fields = ["date", "name"]
    extra = 1


class MemberInline(admin.TabularInline):
    model = Member
    form = MemberForm
    formset = MemberFormSet
    fields = ["agent", "penalty", "position", "active"]
    extra = 1

    def get_queryset(self, request):
        # Each row's title is str(member): "<agent> in <campaign>".
        return super().get_queryset(request).select_related("agent", "campaign")


class DispositionInline(admin.TabularInline):
    model = Disposition
    formset = ModelMessageInlineFormSet
    fields = ["name", "active"]
    extra = 1


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "active", "time_zone", "member_count"]
    list_filter = ["active"]
    search_fields = ["name", "description"]
    fields = ["name", "active", "time_zone", "description"]
    inlines = [OpeningHoursInline, HolidayInline, MemberInline, DispositionInline]

    def get_queryset(self, request):
        # distinct: a subclass may annotate over another relation.
        return super().get_queryset(request).annotate(_member_count=Count("members", distinct=True))

    @admin.display(description="members", ordering="_member_count")
    def member_count(self, obj: Campaign) -> int:
        return obj._member_count


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """Agents only; the fields never include staff, superuser or permission flags."""

    form = AgentChangeForm
    add_form = AgentCreationForm
    list_display = ["username", "full_name", "status", "capacity", "last_seen", "is_active"]
    list_filter = ["is_active", "agent_profile__status"]
    list_select_related = ["agent_profile"]
    search_fields = ["username", "first_name", "last_name", "email"]
    ordering = ["username"]
    add_fieldsets = [
        (None, {"fields": ["username", "password1", "password2"]}),
        ("Personal details", {"fields": ["first_name", "last_name", "email"]}),
        ("Work", {"fields": ["capacity"]}),
    ]
    fieldsets = [
        (None, {"fields": ["username", "set_password_link", "is_active"]}),
        ("Personal details", {"fields": ["first_name", "last_name", "email"]}),
        ("Work", {"fields": ["capacity", "status", "last_seen"]}),
        ("History", {"fields": ["date_joined", "last_login"]}),
    ]
    readonly_fields = [
        "username",
        "set_password_link",
        "status",
        "last_seen",
        "date_joined",
        "last_login",
    ]

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        # A superuser put in the Agents group stays out of supervisors' reach:
        # setting their password would hand over the whole site.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            agent_update(
                agent=obj,
                first_name=data["first_name"],
                last_name=data["last_name"],
                email=data["email"],
                is_active=data["is_active"],
                capacity=data["capacity"],
            )
            return
        agent = agent_create(
            username=data["username"],
            password=data["password1"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            email=data["email"],
            capacity=data["capacity"],
        )
        # The admin logs the addition and redirects with this instance.
        obj.pk = agent.pk
        obj._state.adding = False

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/password/",
                self.admin_site.admin_view(self.set_password_view),
                name=f"{opts.app_label}_{opts.model_name}_password",
            ),
            *super().get_urls(),
        ]

    def set_password_view(self, request, object_id):
        agent = self.get_object(request, unquote(object_id))
        if agent is None:
            raise Http404("No such agent.")
        if not self.has_change_permission(request, agent):
            raise PermissionDenied
        form = SetPasswordForm(agent, request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            agent_set_password(agent=agent, password=form.cleaned_data["new_password1"])
            self.log_change(request, agent, "Set a new password.")
            self.message_user(request, f"{agent} has a new password.", messages.SUCCESS)
            opts = self.model._meta
            return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", agent.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Set a new password for {agent.username}",
            "opts": self.model._meta,
            "original": agent,
            "form": form,
            "has_view_permission": self.has_view_permission(request, agent),
        }
        return TemplateResponse(request, "admin/campaigns/agent/set_password.html", context)

    @admin.display(description="full name", ordering="last_name")
    def full_name(self, obj: Agent) -> str:
        return obj.get_full_name()

    @admin.display(description="password")
    def set_password_link(self, obj: Agent) -> str:
        opts = self.model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_password", args=[obj.pk])
        return format_html('<a href="{}">Set a new password</a>', url)

    @admin.display(description="status", ordering="agent_profile__status")
    def status(self, obj: Agent) -> str:
        profile = getattr(obj, "agent_profile", None)
        return profile.get_status_display() if profile else "—"

    @admin.display(description="capacity", ordering="agent_profile__capacity")
    def capacity(self, obj: Agent) -> int | None:
        profile = getattr(obj, "agent_profile", None)
        return profile.capacity if profile else None

    @admin.display(description="last seen", ordering="agent_profile__last_seen_at")
    def last_seen(self, obj: Agent) -> str:
        profile = getattr(obj, "agent_profile", None)
        # Formatted here: the change form shows a method's value as str().
        return display_for_value(
            profile.last_seen_at if profile else None, self.get_empty_value_display()
        )


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    """Read only: agents change their status in the console, supervisors the rest under Agents."""

    list_display = ["user", "status", "capacity", "status_changed_at", "last_seen_at"]
    list_filter = ["status"]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class BlacklistEntryInline(admin.TabularInline):
    model = BlacklistEntry
    formset = BlacklistEntryFormSet
    fields = ["number", "reason", "added_by", "added_at"]
    readonly_fields = ["added_by", "added_at"]
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("added_by")


@admin.register(Blacklist)
class BlacklistAdmin(admin.ModelAdmin):
    list_display = ["name", "is_opt_out_list", "entry_count"]
    list_filter = ["is_opt_out_list"]
    search_fields = ["name", "entries__number"]
    fields = ["name", "description", "is_opt_out_list"]
    # The system keeps opt-out lists; a supervisor ticking the flag would mean nothing.
    readonly_fields = ["is_opt_out_list"]
    inlines = [BlacklistEntryInline]

    def get_queryset(self, request):
        # distinct: a search by number joins the entries a second time.
        return super().get_queryset(request).annotate(_entry_count=Count("entries", distinct=True))

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, _number_search_term(search_term))

    @admin.display(description="numbers", ordering="_entry_count")
    def entry_count(self, obj: Blacklist) -> int:
        return obj._entry_count

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if self._entries_hidden(obj):
            kwargs["queryset"] = kwargs["queryset"].none()
        return kwargs

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["entries_hidden"] = self._entries_hidden(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is BlacklistEntry:
            for entry_form in formset.extra_forms:
                entry_form.instance.added_by = request.user
        super().save_formset(request, form, formset, change)

    @staticmethod
    def _entries_hidden(obj: Blacklist | None) -> bool:
        return obj is not None and obj._entry_count > BLACKLIST_INLINE_MAX_ENTRIES

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/import/",
                self.admin_site.admin_view(self.import_csv_view),
                name=f"{opts.app_label}_{opts.model_name}_import_csv",
            ),
            path(
                "<path:object_id>/export/",
                self.admin_site.admin_view(self.export_csv_view),
                name=f"{opts.app_label}_{opts.model_name}_export_csv",
            ),
            *super().get_urls(),
        ]

    def _get_blacklist_or_404(self, request, object_id) -> Blacklist:
        blacklist = self.get_object(request, unquote(object_id))
        if blacklist is None:
            raise Http404("No such blacklist.")
        return blacklist

    def import_csv_view(self, request, object_id):
        blacklist = self._get_blacklist_or_404(request, object_id)
        if not self.has_change_permission(request, blacklist):
            raise PermissionDenied
        if request.method == "POST":
            form = BlacklistImportForm(request.POST, request.FILES)
        else:
            form = BlacklistImportForm()
        result = None
        if form.is_bound and form.is_valid():
            try:
                result = blacklist_import_csv(
                    blacklist=blacklist, file=form.cleaned_data["file"], added_by=request.user
                )
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                summary = (
                    f"{result.added} added, {result.duplicates} duplicates skipped, "
                    f"{len(result.invalid)} invalid."
                )
                self.log_change(request, blacklist, f"Imported a CSV file: {summary}")
                # With invalid rows, the page below lists them instead.
                if not result.invalid:
                    self.message_user(request, f"{blacklist}: {summary}", messages.SUCCESS)
                    opts = self.model._meta
                    return redirect(
                        f"admin:{opts.app_label}_{opts.model_name}_change", blacklist.pk
                    )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import numbers into {blacklist}",
            "opts": self.model._meta,
            "original": blacklist,
            "form": form,
            "result": result,
            "has_view_permission": self.has_view_permission(request, blacklist),
        }
        return TemplateResponse(request, "admin/campaigns/blacklist/import_csv.html", context)

    def export_csv_view(self, request, object_id):
        blacklist = self._get_blacklist_or_404(request, object_id)
        if not self.has_view_or_change_permission(request, blacklist):
            raise PermissionDenied
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in blacklist_csv_rows(blacklist=blacklist)),
            content_type="text/csv; charset=utf-8",
        )
        filename = f"{slugify(blacklist.name) or 'blacklist'}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class _Echo:
    """A file-like object whose write() returns the line, so csv.writer feeds a stream."""

    def write(self, value: str) -> str:
        return value


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(admin.ModelAdmin):
    list_display = ["number", "blacklist", "reason", "added_by", "added_at"]
    list_filter = ["blacklist"]
    list_select_related = ["blacklist", "added_by"]
    search_fields = ["number", "reason"]
    fields = ["blacklist", "number", "reason", "added_by", "added_at"]
    readonly_fields = ["added_by", "added_at"]

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, _number_search_term(search_term))

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.added_by = request.user
        super().save_model(request, obj, form, change)


class InteractionEventInline(admin.TabularInline):
    model = InteractionEvent
    fields = ["created_at", "from_status", "to_status", "actor", "user", "reason", "data"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    """Conversations, read only: they change through the services (routing, agents, bots)."""

    list_display = [
        "__str__",
        "campaign",
        "status",
        "agent",
        "queued_at",
        "queue_outcome",
        "service_level_met",
        "reject_reason",
        "last_message_at",
    ]
    list_filter = ["status", "campaign", "queue_outcome", "reject_reason", "direction"]
    list_select_related = ["campaign", "agent"]
    search_fields = ["customer_number", "agent__username"]
    date_hierarchy = "created_at"
    inlines = [InteractionEventInline]
    actions = ["close_selected"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Interaction._meta.concrete_fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Close selected conversations", permissions=["view"])
    def close_selected(self, request, queryset) -> None:
        closed = 0
        for interaction_id in queryset.values_list("pk", flat=True):
            try:
                interaction_close(interaction_id=interaction_id, by=request.user)
            except ApplicationError as error:
                self.message_user(request, f"#{interaction_id}: {error}", messages.WARNING)
            else:
                closed += 1
        if closed:
            self.message_user(request, f"Closed {closed} conversation(s).", messages.SUCCESS)


# DRF lists every API token key in full on its admin page, and a token's
# primary key is the key itself, so it would leak through every link and the
# admin log. Tokens are made with `manage.py drf_create_token USERNAME`, which
# prints the key once.
admin.site.unregister(TokenProxy)
