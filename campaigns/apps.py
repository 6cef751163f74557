from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from campaigns.permissions import grant_supervisor_permissions

        post_migrate.connect(grant_supervisor_permissions, sender=self)
