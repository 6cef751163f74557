from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html

from campaigns.admin import CampaignAdmin, InteractionAdmin
from campaigns.models import Campaign, Interaction
from sms_channel.forms import (
    AUTOMATIONS_FIELDS,
    GENERAL_FIELDS,
    ConnectorForm,
    SmsChannelForm,
)
from sms_channel.models import Connector, Message, PhoneNumber, SmsChannel
from sms_channel.selectors import phone_number_list
from sms_channel.services import connector_save, sms_channel_save


class PhoneNumberInline(admin.TabularInline):
    model = PhoneNumber
    fields = ["number", "label"]
    extra = 1


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorForm
    list_display = ["name", "provider", "active", "masked_auth_token", "phone_number_count"]
    list_filter = ["provider", "active"]
    search_fields = ["name", "account_sid"]
    fieldsets = [
        (None, {"fields": ["name", "provider", "active"]}),
        ("Twilio", {"fields": ["account_sid", "auth_token", "messaging_service_sid"]}),
        ("Opt-outs", {"fields": ["opt_out_list", "created_at"]}),
    ]
    readonly_fields = ["opt_out_list", "created_at"]
    inlines = [PhoneNumberInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_phone_number_count=Count("phone_numbers"))

    @admin.display(description="auth token")
    def masked_auth_token(self, obj: Connector) -> str:
        return obj.masked_auth_token or "–"

    @admin.display(description="phone numbers", ordering="_phone_number_count")
    def phone_number_count(self, obj: Connector) -> int:
        return obj._phone_number_count

    def save_model(self, request, obj, form, change) -> None:
        connector_save(connector=obj, auth_token=form.cleaned_data["auth_token"])


@admin.register(PhoneNumber)
class PhoneNumberAdmin(admin.ModelAdmin):
    list_display = ["number", "label", "connector", "used_by"]
    list_filter = ["connector"]
    search_fields = ["number", "label"]
    list_select_related = ["connector"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("channels__campaign")

    @admin.display(description="SMS channel")
    def used_by(self, obj: PhoneNumber) -> str:
        return ", ".join(
            f"{channel.campaign} ({channel.get_status_display().lower()})"
            for channel in obj.channels.all()
        )


@admin.register(SmsChannel)
class SmsChannelAdmin(admin.ModelAdmin):
    form = SmsChannelForm
    fieldsets = [
        ("General", {"fields": GENERAL_FIELDS}),
        ("Automations", {"fields": AUTOMATIONS_FIELDS}),
    ]
    filter_horizontal = ["inbound_blacklists", "outbound_blacklists"]
    list_display = [
        "campaign",
        "status",
        "connector",
        "phone_number",
        "strategy",
        "service_level_seconds",
    ]
    list_filter = ["status", "strategy", "connector"]
    list_select_related = ["campaign", "connector", "phone_number"]
    search_fields = ["campaign__name", "phone_number__number"]

    class Media:
        js = ["sms_channel/channel_form.js"]

    def get_urls(self):
        urls = [
            path(
                "phone-numbers/",
                self.admin_site.admin_view(self.phone_numbers_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_phone_numbers",
            ),
        ]
        # Before the default URLs, whose "<object_id>/" pattern would match first.
        return urls + super().get_urls()

    def phone_numbers_view(self, request: HttpRequest) -> JsonResponse:
        """List a connector's numbers as [{id, label}] for the channel form's script."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        raw = request.GET.get("connector", "")
        try:
            connector_id = int(raw) if raw else None
        except ValueError:
            return JsonResponse({"error": "connector must be a connector id."}, status=400)
        numbers = phone_number_list(connector_id=connector_id)
        return JsonResponse([{"id": n.pk, "label": str(n)} for n in numbers], safe=False)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "phone_number":
            formfield.widget.attrs["data-options-url"] = reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_phone_numbers"
            )
        return formfield

    def save_model(self, request, obj, form, change) -> None:
        sms_channel_save(channel=obj)


admin.site.unregister(Campaign)


@admin.register(Campaign)
class CampaignWithSmsChannelAdmin(CampaignAdmin):
    """The campaign admin plus its SMS channel.

    Registered here because campaigns must not import sms_channel.
    """

    list_display = [
        *CampaignAdmin.list_display,
        "sms_status",
        "sms_phone_number",
        "sms_strategy",
        "sms_service_level",
    ]
    list_select_related = ["sms_channel", "sms_channel__phone_number"]

    def get_readonly_fields(self, request, obj=None):
        readonly_fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            readonly_fields.append("sms_channel_link")
        return readonly_fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        # Without declared fieldsets the default one already lists readonly fields.
        if obj is not None and "sms_channel_link" not in admin.utils.flatten_fieldsets(fieldsets):
            fieldsets.append(("SMS channel", {"fields": ["sms_channel_link"]}))
        return fieldsets

    @admin.display(description="SMS channel")
    def sms_status(self, obj: Campaign) -> str:
        channel = _sms_channel(obj)
        return channel.get_status_display() if channel else "–"

    @admin.display(description="SMS number")
    def sms_phone_number(self, obj: Campaign) -> str:
        channel = _sms_channel(obj)
        return channel.phone_number.number if channel and channel.phone_number else "–"

    @admin.display(description="strategy")
    def sms_strategy(self, obj: Campaign) -> str:
        channel = _sms_channel(obj)
        return channel.get_strategy_display() if channel else "–"

    @admin.display(description="service level (s)")
    def sms_service_level(self, obj: Campaign) -> str:
        channel = _sms_channel(obj)
        return str(channel.service_level_seconds) if channel else "–"

    @admin.display(description="SMS channel")
    def sms_channel_link(self, obj: Campaign) -> str:
        channel = _sms_channel(obj)
        if channel:
            url = reverse(
                f"{self.admin_site.name}:sms_channel_smschannel_change", args=[channel.pk]
            )
            return format_html(
                '<a href="{}">{} ({})</a>',
                url,
                channel.phone_number or "no number",
                channel.get_status_display().lower(),
            )
        url = reverse(f"{self.admin_site.name}:sms_channel_smschannel_add")
        return format_html('<a href="{}?campaign={}">Configure SMS channel</a>', url, obj.pk)


def _sms_channel(campaign: Campaign) -> SmsChannel | None:
    # The reverse one-to-one raises (an AttributeError subclass) when there is none.
    return getattr(campaign, "sms_channel", None)


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created_at", "direction", "sender", "sender_user", "body", "status", "error_code"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("sender_user")


admin.site.unregister(Interaction)


@admin.register(Interaction)
class InteractionWithMessagesAdmin(InteractionAdmin):
    """The conversation admin plus its SMS messages (campaigns must not import sms_channel)."""

    inlines = [MessageInline, *InteractionAdmin.inlines]
