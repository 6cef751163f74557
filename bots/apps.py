from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BotsConfig(AppConfig):
    name = "bots"
    verbose_name = "Bots"

    def ready(self) -> None:
        from campaigns.permissions import grant_supervisor_permissions

        post_migrate.connect(grant_supervisor_permissions, sender=self)
