from django import forms
from django.utils.html import escape

from sms_channel.models import Connector, SmsChannel
from sms_channel.selectors import phone_number_list


class ConnectorForm(forms.ModelForm):
    auth_token = forms.CharField(
        label="Auth Token",
        required=False,
        # render_value=False: the stored token never goes back to the browser;
        # new-password stops browsers from autofilling the admin's own password.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = Connector
        fields = [
            "name",
            "provider",
            "active",
            "account_sid",
            "auth_token",
            "messaging_service_sid",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Without an initial value the plaintext stays out of the form, and
        # leaving the field empty does not count as a change in the history.
        self.initial.pop("auth_token", None)
        help_text = Connector._meta.get_field("auth_token").help_text
        if self.instance.auth_token:
            # The admin renders help texts unescaped; the token is user input.
            help_text += (
                f" Current token: {escape(self.instance.masked_auth_token)};"
                " leave empty to keep it, or type a new one to replace it."
            )
        self.fields["auth_token"].help_text = help_text

    def clean_auth_token(self) -> str:
        # Empty means "keep the stored token", so the model's clean() judges
        # the token that will be stored (a Twilio connector must have one).
        return self.cleaned_data["auth_token"] or self.instance.auth_token


# The channel's two sections, as a supervisor thinks of them; the admin's
# fieldsets use them too, so the order is written once.
GENERAL_FIELDS = [
    "campaign",
    "status",
    "connector",
    "phone_number",
    "strategy",
    "agents_may_pick",
    "service_level_seconds",
    "max_interactions",
    "queue_full_message",
    "max_transfer_seconds",
    "max_queue_seconds",
    "out_of_hours_message",
    "out_of_hours_repeat_hours",
    "inbound_blacklist_enabled",
    "inbound_blacklists",
    "outbound_blacklist_enabled",
    "outbound_blacklists",
]
AUTOMATIONS_FIELDS = ["bot_on_start", "bot_on_finish", "bot_after_timeout"]


class SmsChannelForm(forms.ModelForm):
    class Meta:
        model = SmsChannel
        fields = [*GENERAL_FIELDS, *AUTOMATIONS_FIELDS]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "connector" in self.fields and "phone_number" in self.fields:
            self._narrow_phone_numbers()

    def _narrow_phone_numbers(self) -> None:
        """Offer only the chosen connector's numbers (the page script does it live).

        With no connector chosen every number is offered, so the form also
        works without JavaScript. The chosen number stays a valid choice even
        if another connector owns it, so that the model's clean() says which
        connector owns it instead of "Select a valid choice".
        """
        connector_id = self._chosen_pk("connector")
        if connector_id is None:
            return
        field = self.fields["phone_number"]
        numbers = phone_number_list(connector_id=connector_id)
        phone_number_id = self._chosen_pk("phone_number")
        if phone_number_id is not None:
            numbers |= field.queryset.filter(pk=phone_number_id)
        field.queryset = numbers

    def _chosen_pk(self, name: str) -> int | None:
        try:
            return int(self[name].value())
        except (TypeError, ValueError):
            return None
