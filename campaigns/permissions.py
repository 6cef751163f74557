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


def is_supervisor(user) -> bool:
    """True for superusers and members of the Supervisors group."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    # Cached on the user object: one request asks several times.
    if not hasattr(user, "_is_supervisor"):
        user._is_supervisor = user.groups.filter(name=SUPERVISORS_GROUP).exists()
    return user._is_supervisor
