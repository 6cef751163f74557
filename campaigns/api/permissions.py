"""Who may call which endpoint of the REST API."""

from rest_framework.permissions import BasePermission

from campaigns.models import AGENTS_GROUP
from campaigns.permissions import is_supervisor


class IsSupervisor(BasePermission):
    """Supervisors and superusers; anyone else is refused (401 when not signed in)."""

    message = "Only supervisors may do this."

    def has_permission(self, request, view) -> bool:
        return is_supervisor(request.user)


class IsAgent(BasePermission):
    """Members of the Agents group: only they have a status to read or set."""

    message = "Only agents have a status."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return (
            user.is_authenticated
            and user.is_active
            and user.groups.filter(name=AGENTS_GROUP).exists()
        )
