from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def encryption_key_check(app_configs, **kwargs):
    if settings.FIELD_ENCRYPTION_KEYS:
        return []
    return [
        Warning(
            "FIELD_ENCRYPTION_KEYS is not set: connector secrets are encrypted with a "
            "key derived from SECRET_KEY, so rotating SECRET_KEY makes them unreadable.",
            hint="Set FIELD_ENCRYPTION_KEYS to a Fernet key (see README, Production).",
            id="sms_channel.W001",
        )
    ]
