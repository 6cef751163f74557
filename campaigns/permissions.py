"""The Supervisors group's model permissions.

Groups come from a data migration (campaigns 0002), but permission rows are
only created by Django's post_migrate signal, after all migrations ran. So each
app grants its models' permissions to Supervisors from its own post_migrate
handler; it is idempotent and picks up models that later migrations add.
"""

from django.apps import AppConfig

from campaigns.models import SUPERVISORS_GROUP


def grant_supervisor_permissions(sender: AppConfig, using: str = "default", **kwargs) -> None:
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.using(using).get_or_create(name=SUPERVISORS_GROUP)
    permissions = Permission.objects.using(using).filter(content_type__app_label=sender.label)
    group.permissions.add(*permissions)
