"""Admin forms of the campaigns app: validation only; saving goes through services."""

from django import forms
from django.contrib.auth.forms import SetPasswordMixin, UsernameField
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet

from campaigns.models import (
    MIDNIGHT,
    AgentProfile,
    BlacklistEntry,
    Member,
    OpeningHours,
    display_name,
)
from campaigns.phone import E164FormField
from campaigns.segments import MAX_SMS_BODY


def constraint_message(model: type[models.Model], name: str) -> str:
    """Return the violation message of `model`'s constraint `name`.

    Forms repeat it where a field check fires before the constraint would, so
    a supervisor reads the same words whichever layer refuses the value.
    """
    for constraint in model._meta.constraints:
        if constraint.name == name:
            return str(constraint.violation_error_message)
    raise LookupError(f"{model.__name__} has no constraint named {name!r}.")


class ModelMessageInlineFormSet(BaseInlineFormSet):
    """An inline formset that reports rows repeated within it in the model's words."""

    def get_unique_error_message(self, unique_check):
        for constraint in self.model._meta.constraints:
            if (
                isinstance(constraint, models.UniqueConstraint)
                and set(constraint.fields) == set(unique_check)
                and constraint.violation_error_message != constraint.default_violation_error_message
            ):
                return constraint.violation_error_message
        return super().get_unique_error_message(unique_check)


class OpeningHoursFormSet(ModelMessageInlineFormSet):
    def clean(self) -> None:
        """Refuse intervals of the same weekday that overlap; touching ones are fine."""
        super().clean()
        by_weekday: dict[int, list[OpeningHours]] = {}
        for form in self.forms:
            # Blank extra rows have empty cleaned_data; invalid rows already show an error.
            if self._should_delete_form(form) or not form.is_valid() or not form.cleaned_data:
                continue
            by_weekday.setdefault(form.instance.weekday, []).append(form.instance)

        errors = []
        for weekday in sorted(by_weekday):
            intervals = sorted(
                by_weekday[weekday], key=lambda h: (h.opens_minutes, h.closes_minutes)
            )
            latest = intervals[0]
            for interval in intervals[1:]:
                if interval.opens_minutes < latest.closes_minutes:
                    errors.append(
                        ValidationError(
                            "%(weekday)s: %(first)s overlaps %(second)s.",
                            code="overlap",
                            params={
                                "weekday": interval.get_weekday_display(),
                                "first": _interval(latest),
                                "second": _interval(interval),
                            },
                        )
                    )
                if interval.closes_minutes > latest.closes_minutes:
                    latest = interval
        if errors:
            raise ValidationError(errors)


def _interval(hours: OpeningHours) -> str:
    closes = "24:00" if hours.closes == MIDNIGHT else f"{hours.closes:%H:%M}"
    return f"{hours.opens:%H:%M}–{closes}"


class AgentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        full_name = obj.get_full_name()
        return f"{full_name} ({obj.username})" if full_name else obj.username


class MemberForm(forms.ModelForm):
    class Meta:
        model = Member
        fields = ["agent", "penalty", "position", "active"]
        field_classes = {"agent": AgentChoiceField}
        error_messages = {
            "agent": {
                "invalid_choice": "Choose one of the listed agents: only users in the "
                "Agents group can be members of a campaign."
            },
            "penalty": {
                "max_value": constraint_message(Member, "member_penalty_at_most_100"),
                "min_value": constraint_message(Member, "member_penalty_at_most_100"),
            },
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        agent_field = self.fields["agent"]
        agent_field.queryset = agent_field.queryset.order_by("first_name", "last_name", "username")


class MemberFormSet(ModelMessageInlineFormSet):
    def _construct_form(self, i, **kwargs):
        """Build the rows with one list of agents, read once rather than once per row."""
        form = super()._construct_form(i, **kwargs)
        if not hasattr(self, "_agent_choices"):
            self._agent_choices = list(form.fields["agent"].choices)
        form.fields["agent"].choices = self._agent_choices
        return form


class BlacklistEntryFormSet(ModelMessageInlineFormSet):
    def clean(self) -> None:
        """Refuse new numbers that the list already has.

        The list's stored entries are not all in the formset when the list is
        long (see BlacklistAdmin), so compare with the database, leaving out
        the rows shown here: the formset itself compares those.
        """
        super().clean()
        if self.instance.pk is None:
            return
        new_forms = {
            form.cleaned_data["number"]: form
            for form in self.extra_forms
            if form.has_changed() and form.is_valid() and not self._should_delete_form(form)
        }
        shown = [form.instance.pk for form in self.initial_forms]
        taken = (
            BlacklistEntry.objects.filter(blacklist=self.instance, number__in=new_forms)
            .exclude(pk__in=shown)
            .values_list("number", flat=True)
        )
        message = constraint_message(BlacklistEntry, "blacklist_entry_unique_number")
        for number in taken:
            new_forms[number].add_error("number", message)


def _capacity_field() -> forms.IntegerField:
    message = constraint_message(AgentProfile, "agent_capacity_at_least_one")
    return AgentProfile._meta.get_field("capacity").formfield(
        min_value=1, max_value=50, error_messages={"min_value": message}
    )


class AgentCreationForm(SetPasswordMixin, forms.ModelForm):
    password1, password2 = SetPasswordMixin.create_password_fields()
    capacity = _capacity_field()

    class Meta:
        model = User
        fields = ["username", "first_name", "last_name", "email"]
        field_classes = {"username": UsernameField}

    def clean_username(self) -> str:
        # Among all users, not only agents: usernames that differ only in
        # case are too easy to confuse at login.
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError("A user with that username already exists.", code="unique")
        return username

    def clean(self):
        self.validate_passwords()
        return super().clean()

    def _post_clean(self) -> None:
        super()._post_clean()
        # After super(), so the similarity check sees the names typed in.
        self.validate_password_for_user(self.instance)


class AgentChangeForm(forms.ModelForm):
    capacity = _capacity_field()

    class Meta:
        model = User
        fields = ["first_name", "last_name", "email", "is_active"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        profile = getattr(self.instance, "agent_profile", None)
        if profile is not None:
            self.fields["capacity"].initial = profile.capacity


class BlacklistImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="One number per row in international format (e.g. +14155550123), "
        "optionally followed by a reason. A header row “number,reason” is optional.",
    )


# Supervisor dashboard -------------------------------------------------------------


class ReassignForm(forms.Form):
    """Give a conversation to another active member of the campaign."""

    agent = forms.ModelChoiceField(
        queryset=User.objects.none(),
        error_messages={
            "required": "Pick the agent to give the conversation to.",
            "invalid_choice": "That agent is not an active member of this campaign.",
        },
    )

    def __init__(self, *args, campaign_id: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = User.objects.filter(
            memberships__campaign_id=campaign_id, memberships__active=True, is_active=True
        )


class CloseForm(forms.Form):
    """Close an open conversation; the reason goes on the conversation and its event."""

    # Interaction.close_reason's length (a test keeps them equal).
    reason = forms.CharField(max_length=64, required=False)


# Agent console. The choices come from the page's selectors, already loaded,
# so building a form runs no query; the services check the rest again.


class AgentStatusForm(forms.Form):
    status = forms.ChoiceField(choices=AgentProfile.Status.choices)


class ReplyForm(forms.Form):
    body = forms.CharField(
        label="Reply",
        max_length=MAX_SMS_BODY,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": MAX_SMS_BODY}),
    )


class _PickForm(forms.Form):
    """A form that picks one of the given objects in `field`; cleaned to the object."""

    field = ""

    def __init__(self, *args, objects: list, empty_label: str, label=str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.objects = {str(obj.pk): obj for obj in objects}
        self.fields[self.field].choices = [("", empty_label)] + [
            (str(obj.pk), label(obj)) for obj in objects
        ]

    def picked(self):
        return self.objects[self.cleaned_data[self.field]]


class TransferToAgentForm(_PickForm):
    field = "to_agent"
    to_agent = forms.ChoiceField(
        label="Agent",
        error_messages={
            "required": "Choose an agent to transfer to.",
            "invalid_choice": "That agent cannot take conversations now; choose another.",
        },
    )
    note = forms.CharField(label="Note for them", max_length=255, required=False)

    def __init__(self, *args, agents: list[User], **kwargs) -> None:
        super().__init__(
            *args, objects=agents, empty_label="Choose an agent…", label=display_name, **kwargs
        )


class TransferToCampaignForm(_PickForm):
    field = "campaign"
    campaign = forms.ChoiceField(
        label="Campaign",
        error_messages={
            "required": "Choose a campaign to transfer to.",
            "invalid_choice": "That campaign cannot take conversations now; choose another.",
        },
    )
    note = forms.CharField(label="Note", max_length=255, required=False)

    def __init__(self, *args, campaigns: list, **kwargs) -> None:
        super().__init__(*args, objects=campaigns, empty_label="Choose a campaign…", **kwargs)


class FinishForm(_PickForm):
    """Finish a conversation; a disposition is required when the campaign has any."""

    field = "disposition"
    disposition = forms.ChoiceField(
        label="Disposition",
        error_messages={
            "required": "Pick a disposition to finish this conversation.",
            "invalid_choice": "That disposition is not one of this campaign's.",
        },
    )
    note = forms.CharField(label="Note", max_length=255, required=False)

    def __init__(self, *args, dispositions: list, **kwargs) -> None:
        super().__init__(*args, objects=dispositions, empty_label="Choose a disposition…", **kwargs)
        self.fields["disposition"].required = bool(dispositions)

    def picked(self):
        return self.objects.get(self.cleaned_data["disposition"])


class StartConversationForm(_PickForm):
    field = "campaign"
    campaign = forms.ChoiceField(
        label="Campaign",
        error_messages={
            "required": "Choose the campaign to text from.",
            "invalid_choice": "You cannot start conversations in that campaign.",
        },
    )
    customer_number = E164FormField(
        label="Customer number", help_text="International format, e.g. +14155550123."
    )
    body = forms.CharField(
        label="First message",
        max_length=MAX_SMS_BODY,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": MAX_SMS_BODY}),
    )

    def __init__(self, *args, campaigns: list, **kwargs) -> None:
        super().__init__(*args, objects=campaigns, empty_label="Choose a campaign…", **kwargs)
        if len(campaigns) == 1:
            self.fields["campaign"].initial = str(campaigns[0].pk)
