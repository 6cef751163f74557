from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SmsChannelConfig(AppConfig):
    name = "sms_channel"
    verbose_name = "SMS channel"

    def ready(self) -> None:
        from campaigns.permissions import grant_supervisor_permissions

        post_migrate.connect(grant_supervisor_permissions, sender=self)
        from campaigns.channels import register
        from sms_channel import checks  # noqa: F401  (registers the deploy check)
        from sms_channel.channel import Sms

        register(Sms())
