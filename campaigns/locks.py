"""Row locks of the campaigns app, each in the one order every caller uses.

Order: the campaign row (routers only: one router at a time per campaign),
then interactions, then agent profiles in primary-key order. Routers and
sweeps claim interactions with SKIP LOCKED and so never wait on them;
everything that waits, waits in this order, so no two transactions deadlock.
"""

from collections.abc import Iterable

from django.db.models import Q

from campaigns.models import AgentProfile, Interaction


def interaction_locked(*, interaction_id: int) -> Interaction:
    """Fetch and lock one interaction row for the rest of the transaction."""
    return (
        Interaction.objects.select_for_update(no_key=True, of=("self",))
        .select_related("campaign")
        .get(pk=interaction_id)
    )


def agent_profiles_locked(
    *, agent_ids: Iterable[int], extra: Q | None = None
) -> list[AgentProfile]:
    """Lock the profiles of these agents, in primary-key order.

    `extra` filters are re-checked by PostgreSQL on the locked row versions,
    so a profile that changed (e.g. went on break) while we waited drops out.
    """
    queryset = AgentProfile.objects.select_for_update(no_key=True).filter(
        user_id__in=list(agent_ids)
    )
    if extra is not None:
        queryset = queryset.filter(extra)
    return list(queryset.order_by("pk"))
