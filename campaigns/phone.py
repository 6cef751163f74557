"""E.164 phone numbers: one parser for forms, models, CSV imports and webhooks."""

import phonenumbers
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

E164_REGEX = r"^\+[1-9][0-9]{1,14}$"
e164_validator = RegexValidator(E164_REGEX, "Enter the number in E.164 format, e.g. +14155550123.")


def normalize_e164(raw: str) -> str:
    """Return `raw` as an E.164 string or raise ValidationError saying why not.

    Numbers are checked for a possible length for their country, not against
    the carriers' allocation tables, so new ranges and test numbers pass.
    """
    text = (raw or "").strip()
    if not text:
        raise ValidationError("Enter a phone number.", code="required")
    region = settings.PHONE_DEFAULT_REGION or None
    if not text.startswith("+") and region is None:
        raise ValidationError(
            f"“{text}” has no country code: write it in international format, e.g. +14155550123.",
            code="no_country_code",
        )
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValidationError(f"“{text}” is not a phone number.", code="invalid") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValidationError(
            f"“{text}” has the wrong number of digits for its country.", code="impossible"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class E164FormField(forms.CharField):
    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return value
        return normalize_e164(value)


class E164Field(models.CharField):
    """A CharField that stores numbers normalised to E.164 (max 16 characters)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 16)
        super().__init__(*args, **kwargs)
        self.validators.append(e164_validator)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("max_length") == 16:
            del kwargs["max_length"]
        return name, path, args, kwargs

    def to_python(self, value):
        value = super().to_python(value)
        if value in (None, ""):
            return value
        return normalize_e164(value)

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": E164FormField, **kwargs})
