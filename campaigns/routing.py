"""Routing: agent presence, assignment by strategy, transfers, finishing, deadlines.

The services that move a conversation through the queue and between agents.
Every status change goes through `services._transition` (one map, one event
row). Lock order, everywhere, so that no two of these can deadlock
(see also `campaigns/locks.py`):

1. the campaign row, taken by routers only, so that one router at a time
   serves a campaign's queue (first-in first-out holds) and the round-robin
   memory is read and written in turn;
2. interaction rows (routers and sweeps claim them with SKIP LOCKED, so they
   never wait on them);
3. agent profiles, in primary-key order.

An agent's load (the conversations counted against their capacity) is the
conversations they hold (assigned, or transferring away from them: it comes
back to them if the offer lapses) plus the transfers offered to them. Any
change that raises a load holds that agent's profile lock and counts the
load after taking it, so concurrent routers can never push an agent above
capacity.
"""

import dataclasses
import datetime
import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, F, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns import strategies
from campaigns.channels import QueueSettings, get_channel, queue_settings, registered_channels
from campaigns.locks import agent_profiles_locked, interaction_locked
from campaigns.models import (
    AgentProfile,
    AgentStatusEvent,
    Campaign,
    Disposition,
    Interaction,
    InteractionEvent,
    Member,
    display_name,
)
from campaigns.permissions import is_supervisor
from campaigns.services import _transition, refuse_second_open
from campaigns.tasks import route_campaign_task
from contactcenter.celery import publish_on_commit
from contactcenter.exceptions import ApplicationError

logger = logging.getLogger(__name__)

_S = Interaction.Status
_Actor = InteractionEvent.Actor
HELD_STATUSES = (_S.ASSIGNED, _S.TRANSFERRING)
ROUTE_BATCH_SIZE = 50
SWEEP_BATCH_SIZE = 200


def _stale_before(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(seconds=settings.AGENT_HEARTBEAT_STALE_SECONDS)


def _actor_for(user) -> str:
    return _Actor.SUPERVISOR if is_supervisor(user) else _Actor.AGENT


# Scheduling -------------------------------------------------------------------


def schedule_routing(campaign_ids: Iterable[int]) -> None:
    """Route these campaigns once the current transaction commits."""
    for campaign_id in sorted(set(campaign_ids)):
        publish_on_commit(route_campaign_task, campaign_id)


def _agent_campaign_ids(agent_ids: Iterable[int]) -> list[int]:
    return list(
        Member.objects.filter(agent_id__in=list(agent_ids), active=True)
        .values_list("campaign_id", flat=True)
        .distinct()
    )


def _schedule_routing_for_agents(agent_ids: Iterable[int]) -> None:
    """Someone's load dropped or they became available: their campaigns may move."""
    schedule_routing(_agent_campaign_ids(agent_ids))


# Agent presence ---------------------------------------------------------------


@transaction.atomic
def agent_set_status(
    *, agent, status: str, by=None, reason: str = "", now: datetime.datetime | None = None
) -> AgentProfile:
    """Change an agent's status (available, break, offline) and record the change."""
    now = now or timezone.now()
    if status not in AgentProfile.Status.values:
        raise ApplicationError(f"“{status}” is not an agent status.")
    AgentProfile.objects.get_or_create(user=agent)
    (profile,) = agent_profiles_locked(agent_ids=[agent.pk])
    if profile.status == status:
        return profile
    AgentStatusEvent.objects.create(
        agent=agent,
        from_status=profile.status,
        to_status=status,
        changed_by=by or agent,
        reason=reason,
        created_at=now,
    )
    profile.status = status
    profile.status_changed_at = now
    update_fields = ["status", "status_changed_at"]
    if status == AgentProfile.Status.AVAILABLE:
        # Choosing "available" is a sign of life: eligible at once.
        profile.last_seen_at = now
        update_fields.append("last_seen_at")
        _schedule_routing_for_agents([agent.pk])
    profile.save(update_fields=update_fields)
    return profile


@transaction.atomic
def agent_heartbeat(*, agent, now: datetime.datetime | None = None) -> None:
    """Note that the agent's page is open; an agent who was stale becomes eligible again."""
    now = now or timezone.now()
    came_back = AgentProfile.objects.filter(
        Q(last_seen_at__lt=_stale_before(now)) | Q(last_seen_at__isnull=True), user=agent
    ).update(last_seen_at=now)
    if came_back:
        if AgentProfile.objects.filter(user=agent, status=AgentProfile.Status.AVAILABLE).exists():
            _schedule_routing_for_agents([agent.pk])
    else:
        AgentProfile.objects.filter(user=agent).update(last_seen_at=now)


# Loads and eligibility ----------------------------------------------------------


def agent_loads(*, agent_ids: Iterable[int]) -> dict[int, int]:
    """Each agent's load: conversations held plus transfers offered to them."""
    agent_ids = list(agent_ids)
    loads = dict.fromkeys(agent_ids, 0)
    held = (
        Interaction.objects.filter(agent_id__in=agent_ids, status__in=HELD_STATUSES)
        .values("agent_id")
        .annotate(n=Count("id"))
        .values_list("agent_id", "n")
    )
    offered = (
        Interaction.objects.filter(transfer_to_id__in=agent_ids, status=_S.TRANSFERRING)
        .values("transfer_to_id")
        .annotate(n=Count("id"))
        .values_list("transfer_to_id", "n")
    )
    for agent_id, n in [*held, *offered]:
        loads[agent_id] += n
    return loads


def _count_subquery(queryset, group_field: str):
    return Coalesce(
        Subquery(
            queryset.order_by().values(group_field).annotate(n=Count("id")).values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


@dataclass(frozen=True)
class EligibleAgent:
    candidate: strategies.Candidate
    capacity: int
    load: int

    @property
    def free(self) -> int:
        return self.capacity - self.load


def eligible_agents(
    *, campaign: Campaign, strategy: str, now: datetime.datetime
) -> list[EligibleAgent]:
    """The campaign's agents who may get work now: active members, available,
    seen recently and below capacity, with what `strategy` ranks them by.

    A snapshot read without locks: the router locks and recounts the agents it
    picks before assigning.
    """
    members = (
        Member.objects.filter(
            campaign=campaign,
            active=True,
            agent__is_active=True,
            agent__agent_profile__status=AgentProfile.Status.AVAILABLE,
            agent__agent_profile__last_seen_at__gte=_stale_before(now),
        )
        .annotate(
            capacity=Coalesce("agent__agent_profile__capacity", Value(1)),
            held=_count_subquery(
                Interaction.objects.filter(agent=OuterRef("agent_id"), status__in=HELD_STATUSES),
                "agent_id",
            ),
            offered=_count_subquery(
                Interaction.objects.filter(
                    transfer_to=OuterRef("agent_id"), status=_S.TRANSFERRING
                ),
                "transfer_to_id",
            ),
        )
        .annotate(load=F("held") + F("offered"))
        .filter(load__lt=F("capacity"))
        .order_by("pk")
    )
    history = Interaction.objects.filter(campaign=campaign, agent=OuterRef("agent_id"))
    fields = ["pk", "agent_id", "penalty", "position", "capacity", "load"]
    if strategy == strategies.LEASTRECENT:
        # The newest row from the end of interaction_agent_history_idx, not
        # an aggregate over the agent's whole history.
        members = members.annotate(
            last_finished_at=Subquery(
                history.filter(finished_at__isnull=False)
                .order_by("-finished_at")
                .values("finished_at")[:1]
            )
        )
        fields.append("last_finished_at")
    if strategy == strategies.FEWESTCALLS:
        local_midnight = now.astimezone(campaign.time_zone).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        members = members.annotate(
            finished_today=_count_subquery(
                history.filter(status=_S.FINISHED, finished_at__gte=local_midnight), "agent_id"
            )
        )
        fields.append("finished_today")
    return [
        EligibleAgent(
            candidate=strategies.Candidate(
                agent_id=m["agent_id"],
                member_id=m["pk"],
                penalty=m["penalty"],
                position=m["position"],
                last_finished_at=m.get("last_finished_at"),
                finished_today=m.get("finished_today", 0),
            ),
            capacity=m["capacity"],
            load=m["load"],
        )
        for m in members.values(*fields)
    ]


def _require_eligible(
    *,
    campaign: Campaign,
    agent,
    now: datetime.datetime,
    need_available: bool = True,
    already_counted: int = 0,
) -> AgentProfile:
    """Lock `agent`'s profile and refuse them if they may not take a conversation now.

    `already_counted`: how much of their load is the very conversation at
    hand (an offer to them, or theirs while it is offered away).

    Lock precondition: any interaction rows involved are already locked.
    """
    name = display_name(agent)
    if not agent.is_active:
        raise ApplicationError(f"{name} is deactivated.")
    if not Member.objects.filter(campaign=campaign, agent=agent, active=True).exists():
        raise ApplicationError(f"{name} is not an active member of campaign “{campaign}”.")
    AgentProfile.objects.get_or_create(user=agent)
    (profile,) = agent_profiles_locked(agent_ids=[agent.pk])
    if need_available:
        if profile.status != AgentProfile.Status.AVAILABLE:
            raise ApplicationError(f"{name} is {profile.get_status_display().lower()}.")
        if profile.last_seen_at is None or profile.last_seen_at < _stale_before(now):
            raise ApplicationError(f"{name} has not been seen in the agent console recently.")
    load = agent_loads(agent_ids=[agent.pk])[agent.pk] - already_counted
    if load >= profile.capacity:
        raise ApplicationError(
            f"{name} is at their capacity of {profile.capacity} "
            f"conversation{'s' if profile.capacity != 1 else ''}."
        )
    return profile


# Leaving the queue ------------------------------------------------------------


def _leave_queue(
    interaction: Interaction, *, outcome: str, service_level_seconds: int, now: datetime.datetime
) -> list[str]:
    """Record how and when the conversation left the queue; returns the changed fields."""
    interaction.left_queue_at = now
    interaction.queue_outcome = outcome
    interaction.queue_deadline_at = None
    waited = (now - interaction.queued_at).total_seconds() if interaction.queued_at else 0
    interaction.service_level_met = waited <= service_level_seconds
    return ["left_queue_at", "queue_outcome", "queue_deadline_at", "service_level_met"]


def _assign_fields(
    interaction: Interaction, *, agent_id: int, settings_: QueueSettings, now: datetime.datetime
) -> list[str]:
    interaction.agent_id = agent_id
    interaction.assigned_at = now
    fields = ["status", "agent", "assigned_at"]
    fields += _leave_queue(
        interaction,
        outcome=Interaction.QueueOutcome.ATTENDED,
        service_level_seconds=settings_.service_level_seconds,
        now=now,
    )
    return fields


_ASSIGN_FIELDS = [
    "status",
    "agent",
    "assigned_at",
    "left_queue_at",
    "queue_outcome",
    "queue_deadline_at",
    "service_level_met",
]


def _update_rows(
    rows: list[Interaction],
    fields: list[str],
    *,
    grouped: tuple[str, ...] = (),
    per_row: tuple[str, ...] = (),
) -> None:
    """Save `fields` of `rows`, which hold the same values but for `grouped`
    (few distinct values: one UPDATE each) and `per_row` (a CASE on the id).

    bulk_update writes a CASE for every field; building those for a batch
    cost more in Python than all of the batch's SQL.
    """
    groups: dict[tuple, list[Interaction]] = defaultdict(list)
    for row in rows:
        groups[tuple(getattr(row, name) for name in grouped)].append(row)
    attnames = [Interaction._meta.get_field(name).attname for name in fields]
    common = {
        name: getattr(rows[0], name)
        for name in attnames
        if name not in grouped and name not in per_row
    }
    for values, members in groups.items():
        if per_row and connection.vendor == "postgresql":
            _update_from_arrays(
                members, per_row, {**common, **dict(zip(grouped, values, strict=True))}
            )
            continue
        cases = {
            name: Case(
                *(When(pk=row.pk, then=Value(getattr(row, name))) for row in members),
                output_field=Interaction._meta.get_field(name),
            )
            for name in per_row
        }
        Interaction.objects.filter(pk__in=[row.pk for row in members]).update(
            **common, **dict(zip(grouped, values, strict=True)), **cases
        )


def _update_from_arrays(rows: list[Interaction], per_row: tuple[str, ...], common: dict) -> None:
    """PostgreSQL: one UPDATE joined to the per-row values, passed as arrays.

    A CASE with a WHEN per row costs Django more to build than the whole
    statement costs PostgreSQL; arrays are one parameter whatever their size.
    """
    meta = Interaction._meta
    assignments, params = [], []
    for name, value in common.items():
        field = meta.get_field(name)
        assignments.append(f'"{field.column}" = %s')
        params.append(field.get_db_prep_save(value, connection))
    columns = ["unnest(%s::bigint[]) AS id"]
    params_arrays = [[row.pk for row in rows]]
    for name in per_row:
        field = meta.get_field(name)
        db_type = field.rel_db_type(connection) if field.is_relation else field.db_type(connection)
        assignments.append(f'"{field.column}" = v."{field.column}"')
        columns.append(f'unnest(%s::{db_type}[]) AS "{field.column}"')
        params_arrays.append(
            [field.get_db_prep_save(getattr(row, field.attname), connection) for row in rows]
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{meta.db_table}" SET {", ".join(assignments)} '
            f'FROM (SELECT {", ".join(columns)}) AS v WHERE "{meta.db_table}".id = v.id',
            [*params, *params_arrays],
        )


# Routing ------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteResult:
    assigned: int
    batches: int


def route_campaign(
    *,
    campaign_id: int,
    batch_size: int = ROUTE_BATCH_SIZE,
    rng: random.Random | None = None,
) -> RouteResult:
    """Assign the campaign's queued conversations to agents by the channel's strategy.

    Works in short transactions of up to `batch_size` conversations, oldest
    first, until a batch assigns nothing. Any number of routers may run at
    once: each claims different conversations (SKIP LOCKED), and agents are
    locked and recounted before they are given work.
    """
    # One generator for the whole call: seeding one per ranking costs more
    # than the ranking.
    rng = rng or random.Random()
    assigned = batches = 0
    for kind, settings_ in _routable_kinds(campaign_id):
        snapshot = _Snapshot()
        while True:
            batches += 1
            n = _route_batch(
                campaign_id=campaign_id,
                kind=kind,
                settings_=settings_,
                batch_size=batch_size,
                rng=rng,
                snapshot=snapshot,
            )
            assigned += n
            # A batch that found the snapshot aged (agents took work elsewhere
            # or went on break) has corrected it: try the next agents.
            if snapshot.queue_empty or (n == 0 and not snapshot.aged):
                break
    return RouteResult(assigned=assigned, batches=batches)


class _Snapshot:
    """The eligible agents, read once per route_campaign call and kept current
    from the loads counted under lock, so later batches skip the read.

    Only ranking relies on it: every pick is re-checked on the locked rows.
    """

    def __init__(self) -> None:
        self.eligible: dict[int, EligibleAgent] | None = None
        self.aged = False
        self.queue_empty = False


def _routable_kinds(campaign_id: int) -> list[tuple[str, QueueSettings]]:
    routable = []
    for kind, channel in registered_channels():
        settings_ = channel.queue_settings(campaign_id=campaign_id)
        # Ring all leaves the queue to the agents, who take from their pending list.
        if settings_ is not None and settings_.strategy != strategies.RINGALL:
            routable.append((kind, settings_))
    return routable


@transaction.atomic
def _route_batch(
    *,
    campaign_id: int,
    kind: str,
    settings_: QueueSettings,
    batch_size: int,
    rng: random.Random | None,
    snapshot: _Snapshot,
) -> int:
    # Routers of one campaign take turns: two batches side by side could
    # serve a newer conversation while an older one finds the agents full,
    # breaking first-in first-out. Other campaigns route in parallel. The
    # lock also guards the round-robin memory.
    campaign = Campaign.objects.select_for_update(no_key=True).get(pk=campaign_id)
    now = timezone.now()
    # SKIP LOCKED: a row an agent is taking or a sweep is timing out right
    # now is theirs.
    claimed = list(
        Interaction.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
        .filter(campaign_id=campaign_id, channel_kind=kind, status=_S.QUEUED)
        .order_by("queued_at", "id")[:batch_size]
    )
    if not claimed:
        snapshot.queue_empty = True
        return 0
    strategy = settings_.strategy
    round_robin = strategy in strategies.ROUND_ROBIN
    # These pick afresh for every conversation, not one agent until full.
    per_conversation = round_robin or strategy in (strategies.RANDOM, strategies.WRANDOM)
    snapshot.aged = False
    if snapshot.eligible is None:
        snapshot.eligible = {
            e.candidate.agent_id: e
            for e in eligible_agents(campaign=campaign, strategy=strategy, now=now)
        }
    eligible = list(snapshot.eligible.values())
    if not eligible:
        return 0
    last_served = _last_served(campaign) if round_robin else None
    ranked = strategies.rank(
        strategy, [e.candidate for e in eligible], last_served=last_served, rng=rng
    )

    # Lock just enough of the best-ranked agents to serve the batch. A round
    # robin or a random draw picks anew for each conversation, so it needs
    # one agent per conversation (up to all of them), not just enough slots.
    by_agent = {e.candidate.agent_id: e for e in eligible}
    wanted, free = [], 0
    for candidate in ranked:
        wanted.append(candidate.agent_id)
        free += by_agent[candidate.agent_id].free
        if free >= len(claimed) and (not per_conversation or len(wanted) >= len(claimed)):
            break
    locked = {
        p.user_id: p
        for p in agent_profiles_locked(
            agent_ids=wanted,
            extra=Q(status=AgentProfile.Status.AVAILABLE, last_seen_at__gte=_stale_before(now)),
        )
    }
    loads = agent_loads(agent_ids=locked)
    slots = {agent_id: locked[agent_id].capacity - loads[agent_id] for agent_id in locked}
    locked_slots = dict(slots)
    pool = [c for c in ranked if slots.get(c.agent_id, 0) > 0]

    events, changed, served_profiles = [], [], {}
    for interaction in claimed:
        if per_conversation:
            pool = strategies.rank(strategy, pool, last_served=last_served, rng=rng)
        chosen = next((c for c in pool if slots[c.agent_id] > 0), None)
        if chosen is None:
            break
        slots[chosen.agent_id] -= 1
        events.append(
            _transition(
                interaction=interaction,
                to_status=_S.ASSIGNED,
                actor=_Actor.SYSTEM,
                reason=f"routed ({strategy})",
                data={"agent": chosen.agent_id},
                now=now,
            )
        )
        _assign_fields(interaction, agent_id=chosen.agent_id, settings_=settings_, now=now)
        changed.append(interaction)
        profile = locked[chosen.agent_id]
        profile.last_assignment_at = now
        served_profiles[profile.pk] = profile
        last_served = strategies.LastServed(member_id=chosen.member_id, position=chosen.position)
    # Keep the snapshot true to what the locks showed: full or no longer
    # eligible agents drop out, the others carry their new load.
    snapshot.aged = any(
        locked_slots.get(agent_id, 0) < snapshot.eligible[agent_id].free for agent_id in wanted
    )
    for agent_id in wanted:
        if slots.get(agent_id, 0) > 0:
            agent = snapshot.eligible[agent_id]
            snapshot.eligible[agent_id] = dataclasses.replace(
                agent, load=agent.capacity - slots[agent_id]
            )
        else:
            del snapshot.eligible[agent_id]
    if not changed:
        return 0
    _update_rows(changed, _ASSIGN_FIELDS, grouped=("service_level_met",), per_row=("agent_id",))
    InteractionEvent.objects.bulk_create(events)
    get_channel(kind).interactions_assigned(interaction_ids=[i.pk for i in changed])
    AgentProfile.objects.filter(pk__in=served_profiles).update(last_assignment_at=now)
    if round_robin:
        campaign.rr_last_member_id = last_served.member_id
        campaign.save(update_fields=["rr_last_member"])
    return len(changed)


def _last_served(campaign: Campaign) -> strategies.LastServed | None:
    if campaign.rr_last_member_id is None:
        return None
    member = Member.objects.filter(pk=campaign.rr_last_member_id).first()
    if member is None:
        return None
    return strategies.LastServed(member_id=member.pk, position=member.position)


@transaction.atomic
def interaction_take(*, interaction_id: int, agent, now: datetime.datetime | None = None):
    """An agent takes a waiting conversation from their pending list; first one wins.

    Allowed under ring all, and under any strategy when the channel lets
    agents pick from the queue.
    """
    now = now or timezone.now()
    interaction = (
        Interaction.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
        .select_related("campaign")
        .filter(pk=interaction_id)
        .first()
    )
    # A locked row is being assigned by a router or another agent right now.
    if interaction is None or interaction.status != _S.QUEUED:
        raise ApplicationError("This conversation has already been taken.")
    settings_ = queue_settings(kind=interaction.channel_kind, campaign_id=interaction.campaign_id)
    if settings_.strategy != strategies.RINGALL and not settings_.agents_may_pick:
        raise ApplicationError("In this campaign conversations are routed to agents; wait for one.")
    profile = _require_eligible(campaign=interaction.campaign, agent=agent, now=now)
    event = _transition(
        interaction=interaction,
        to_status=_S.ASSIGNED,
        actor=_Actor.AGENT,
        user=agent,
        reason="taken from the pending list",
        now=now,
    )
    _assign_fields(interaction, agent_id=agent.pk, settings_=settings_, now=now)
    interaction.save(update_fields=_ASSIGN_FIELDS)
    event.save()
    get_channel(interaction.channel_kind).interactions_assigned(interaction_ids=[interaction.pk])
    profile.last_assignment_at = now
    profile.last_seen_at = now
    profile.save(update_fields=["last_assignment_at", "last_seen_at"])
    return interaction


# Access -----------------------------------------------------------------------


def _locked_for(*, interaction_id: int, user, supervisor_only: bool = False) -> Interaction:
    """Lock the interaction and check `user` may act on it.

    Agents may act only on conversations they hold (as far as they can tell,
    another agent's conversation does not exist).
    """
    try:
        interaction = interaction_locked(interaction_id=interaction_id)
    except Interaction.DoesNotExist:
        raise ApplicationError("No such conversation.") from None
    if is_supervisor(user):
        return interaction
    if supervisor_only or interaction.agent_id != user.pk:
        raise ApplicationError("No such conversation.")
    return interaction


# Transfers ------------------------------------------------------------------------


@transaction.atomic
def interaction_transfer_to_agent(
    *, interaction_id: int, by, to_agent, note: str = "", now: datetime.datetime | None = None
) -> Interaction:
    """Offer a held conversation to another eligible agent of its campaign.

    The receiver accepts or declines; without an answer within the maximum
    transfer time, the conversation returns to the agent who transferred it.
    """
    now = now or timezone.now()
    interaction = _locked_for(interaction_id=interaction_id, user=by)
    interaction.check_transition(_S.TRANSFERRING)
    if to_agent.pk == interaction.agent_id:
        raise ApplicationError("The conversation is already with that agent.")
    settings_ = queue_settings(kind=interaction.channel_kind, campaign_id=interaction.campaign_id)
    _require_eligible(campaign=interaction.campaign, agent=to_agent, now=now)
    event = _transition(
        interaction=interaction,
        to_status=_S.TRANSFERRING,
        actor=_actor_for(by),
        user=by,
        reason="transfer offered",
        data={"from_agent": interaction.agent_id, "to_agent": to_agent.pk, "note": note},
        now=now,
    )
    interaction.transfer_to = to_agent
    interaction.transfer_note = note[:255]
    interaction.transfer_deadline_at = (
        now + datetime.timedelta(seconds=settings_.max_transfer_seconds)
        if settings_.max_transfer_seconds
        else None
    )
    interaction.save(
        update_fields=["status", "transfer_to", "transfer_note", "transfer_deadline_at"]
    )
    event.save()
    return interaction


def _tell_channel_on_commit(interaction: Interaction, hook: str) -> None:
    """Call the channel's `hook` for this conversation once the transaction commits.

    Robust: a failing hook (the broker down while it starts a bot) is logged
    and must not cost the other conversations of the same commit theirs.
    """
    notify = getattr(get_channel(interaction.channel_kind), hook)
    interaction_id = interaction.pk
    transaction.on_commit(lambda: notify(interaction_id=interaction_id), robust=True)


def _holders(interaction: Interaction) -> list[int]:
    """The agents whose load includes this conversation."""
    return [a for a in (interaction.agent_id, interaction.transfer_to_id) if a]


def _end_offer(interaction: Interaction) -> list[str]:
    interaction.transfer_to = None
    interaction.transfer_deadline_at = None
    return ["transfer_to", "transfer_deadline_at"]


@transaction.atomic
def interaction_transfer_accept(
    *, interaction_id: int, agent, now: datetime.datetime | None = None
) -> Interaction:
    """The receiver takes the offered conversation; it is theirs from now on."""
    now = now or timezone.now()
    interaction = _offer_for(interaction_id=interaction_id, agent=agent)
    from_agent_id = interaction.agent_id
    event = _transition(
        interaction=interaction,
        to_status=_S.ASSIGNED,
        actor=_Actor.AGENT,
        user=agent,
        reason="transfer accepted",
        data={"from_agent": from_agent_id, "to_agent": agent.pk},
        now=now,
    )
    # The offer already counted against the receiver's capacity: no recount.
    interaction.agent = agent
    interaction.assigned_at = now
    # The new holder has read nothing yet.
    interaction.agent_read_at = None
    interaction.save(
        update_fields=["status", "agent", "assigned_at", "agent_read_at", *_end_offer(interaction)]
    )
    event.save()
    _schedule_routing_for_agents([from_agent_id])
    return interaction


@transaction.atomic
def interaction_transfer_decline(
    *, interaction_id: int, agent, now: datetime.datetime | None = None
) -> Interaction:
    """The receiver turns the offer down; the conversation returns at once."""
    now = now or timezone.now()
    interaction = _offer_for(interaction_id=interaction_id, agent=agent)
    event = _transition(
        interaction=interaction,
        to_status=_S.ASSIGNED,
        actor=_Actor.AGENT,
        user=agent,
        reason="transfer declined",
        data={"from_agent": interaction.agent_id, "to_agent": agent.pk},
        now=now,
    )
    interaction.save(update_fields=["status", *_end_offer(interaction)])
    event.save()
    _schedule_routing_for_agents([agent.pk])
    return interaction


def _offer_for(*, interaction_id: int, agent) -> Interaction:
    try:
        interaction = interaction_locked(interaction_id=interaction_id)
    except Interaction.DoesNotExist:
        raise ApplicationError("No such conversation.") from None
    if interaction.status != _S.TRANSFERRING or interaction.transfer_to_id != agent.pk:
        raise ApplicationError("This transfer is no longer offered to you.")
    return interaction


@transaction.atomic
def interaction_transfer_to_campaign(
    *,
    interaction_id: int,
    by,
    campaign: Campaign,
    note: str = "",
    actor: str | None = None,
    now: datetime.datetime | None = None,
) -> Interaction:
    """Put a conversation in another campaign's queue: it keeps its history
    and waits there from now, with that queue's deadline."""
    now = now or timezone.now()
    interaction = _locked_for(interaction_id=interaction_id, user=by)
    if campaign.pk == interaction.campaign_id:
        raise ApplicationError("The conversation is already in that campaign.")
    settings_ = _queue_to_enter(interaction, campaign)
    return _requeue(
        interaction,
        campaign=campaign,
        settings_=settings_,
        actor=actor or _actor_for(by),
        user=by,
        reason="transferred to campaign",
        data={"from_campaign": interaction.campaign_id, "to_campaign": campaign.pk, "note": note},
        now=now,
    )


def _queue_to_enter(interaction: Interaction, campaign: Campaign) -> QueueSettings:
    """The settings of the queue `interaction` is about to enter; refuse a
    campaign that takes no conversations or where the customer already has one."""
    if not campaign.active:
        raise ApplicationError(f"Campaign “{campaign}” is inactive.")
    settings_ = queue_settings(kind=interaction.channel_kind, campaign_id=campaign.pk)
    if not settings_.enabled:
        raise ApplicationError(f"Campaign “{campaign}” has its channel disabled.")
    if campaign.pk != interaction.campaign_id:
        refuse_second_open(
            campaign=campaign,
            channel_kind=interaction.channel_kind,
            customer_number=interaction.customer_number,
        )
    return settings_


def _requeue(
    interaction: Interaction,
    *,
    campaign: Campaign,
    settings_: QueueSettings,
    actor: str,
    user,
    reason: str,
    data: dict,
    now: datetime.datetime,
) -> Interaction:
    """Put a locked interaction (back) in `campaign`'s queue for a new stay."""
    released = _holders(interaction)
    event = _transition(
        interaction=interaction,
        to_status=_S.QUEUED,
        actor=actor,
        user=user,
        reason=reason,
        data=data,
        now=now,
    )
    interaction.campaign = campaign
    interaction.agent = None
    interaction.queued_at = now
    interaction.queue_deadline_at = (
        now + datetime.timedelta(seconds=settings_.max_queue_seconds)
        if settings_.max_queue_seconds
        else None
    )
    interaction.left_queue_at = None
    interaction.queue_outcome = ""
    interaction.service_level_met = None
    interaction.finished_at = None
    interaction.close_reason = ""
    interaction.save(
        update_fields=[
            "status",
            "close_reason",
            "campaign",
            "agent",
            "queued_at",
            "queue_deadline_at",
            "left_queue_at",
            "queue_outcome",
            "service_level_met",
            "finished_at",
            *_end_offer(interaction),
        ]
    )
    event.save()
    schedule_routing([campaign.pk])
    _schedule_routing_for_agents(released)
    return interaction


# Finishing ---------------------------------------------------------------------


@transaction.atomic
def interaction_finish(
    *,
    interaction_id: int,
    by,
    disposition_id: int | None = None,
    note: str = "",
    now: datetime.datetime | None = None,
) -> Interaction:
    """The agent (or a supervisor) ends a conversation they hold.

    A disposition from the campaign's list is required when the campaign has
    any active ones. The agent's load drops (routing runs) and the channel is
    told, which starts the bot on finish.
    """
    now = now or timezone.now()
    interaction = _locked_for(interaction_id=interaction_id, user=by)
    if interaction.status not in HELD_STATUSES:
        interaction.check_transition(_S.FINISHED)
        raise ApplicationError("Only a conversation an agent holds can be finished.")
    disposition = _disposition_for(interaction, disposition_id)
    return _finish(
        interaction,
        actor=_actor_for(by),
        user=by,
        reason="finished",
        disposition=disposition,
        note=note,
        now=now,
    )


def _disposition_for(interaction: Interaction, disposition_id: int | None) -> Disposition | None:
    active = Disposition.objects.filter(campaign_id=interaction.campaign_id, active=True)
    if disposition_id is None:
        if active.exists():
            raise ApplicationError("Pick a disposition to finish this conversation.")
        return None
    disposition = active.filter(pk=disposition_id).first()
    if disposition is None:
        raise ApplicationError("That disposition is not one of this campaign's.")
    return disposition


def _finish(
    interaction: Interaction,
    *,
    actor: str,
    user,
    reason: str,
    now: datetime.datetime,
    disposition: Disposition | None = None,
    note: str = "",
) -> Interaction:
    released = _holders(interaction)
    event = _transition(
        interaction=interaction,
        to_status=_S.FINISHED,
        actor=actor,
        user=user,
        reason=reason,
        data={"note": note} if note else None,
        now=now,
    )
    interaction.disposition = disposition
    interaction.finished_at = now
    interaction.close_reason = reason
    interaction.save(
        update_fields=[
            "status",
            "disposition",
            "finished_at",
            "close_reason",
            *_end_offer(interaction),
        ]
    )
    event.save()
    _schedule_routing_for_agents(released)
    _tell_channel_on_commit(interaction, "interaction_finished")
    return interaction


@transaction.atomic
def interaction_close(
    *, interaction_id: int, by, reason: str = "", now: datetime.datetime | None = None
) -> Interaction:
    """A supervisor closes any open conversation: a waiting one is abandoned
    (the customer no longer wants it), a held one finished without disposition."""
    now = now or timezone.now()
    interaction = _locked_for(interaction_id=interaction_id, user=by, supervisor_only=True)
    reason = reason.strip() or "closed by a supervisor"
    if interaction.status == _S.QUEUED:
        return interaction_abandon_locked(
            interaction, actor=_Actor.SUPERVISOR, user=by, reason=reason, now=now
        )
    if interaction.status not in HELD_STATUSES:
        interaction.check_transition(_S.FINISHED)
    return _finish(interaction, actor=_Actor.SUPERVISOR, user=by, reason=reason, now=now)


def interaction_abandon_locked(
    interaction: Interaction, *, actor: str, user, reason: str, now: datetime.datetime
) -> Interaction:
    """A waiting conversation leaves the queue because the customer left.

    Lock precondition: the caller holds the interaction's row lock.
    """
    settings_ = queue_settings(kind=interaction.channel_kind, campaign_id=interaction.campaign_id)
    event = _transition(
        interaction=interaction,
        to_status=_S.ABANDONED,
        actor=actor,
        user=user,
        reason=reason,
        now=now,
    )
    fields = _leave_queue(
        interaction,
        outcome=Interaction.QueueOutcome.ABANDONED,
        service_level_seconds=settings_.service_level_seconds,
        now=now,
    )
    interaction.finished_at = now
    interaction.close_reason = reason
    interaction.save(update_fields=["status", "finished_at", "close_reason", *fields])
    event.save()
    _tell_channel_on_commit(interaction, "interaction_abandoned")
    return interaction


@transaction.atomic
def interaction_reassign(
    *, interaction_id: int, by, to_agent, now: datetime.datetime | None = None
) -> Interaction:
    """A supervisor gives an open conversation to another member of its campaign.

    The receiver need not be available (the supervisor decides), but must be
    an active member below capacity. A pending transfer is withdrawn.
    """
    now = now or timezone.now()
    interaction = _locked_for(interaction_id=interaction_id, user=by, supervisor_only=True)
    if interaction.status not in Interaction.OPEN_STATUSES:
        interaction.check_transition(_S.ASSIGNED)
    if interaction.status == _S.ASSIGNED and interaction.agent_id == to_agent.pk:
        raise ApplicationError("The conversation is already with that agent.")
    _require_eligible(
        campaign=interaction.campaign,
        agent=to_agent,
        now=now,
        need_available=False,
        already_counted=int(
            interaction.status == _S.TRANSFERRING
            and to_agent.pk in (interaction.agent_id, interaction.transfer_to_id)
        ),
    )
    released = _holders(interaction)
    data = {"from_agent": interaction.agent_id, "to_agent": to_agent.pk}
    if interaction.status == _S.ASSIGNED:
        # Same status, another agent: an event without a transition.
        event = InteractionEvent(
            interaction=interaction,
            from_status=_S.ASSIGNED,
            to_status=_S.ASSIGNED,
            actor=_Actor.SUPERVISOR,
            user=by,
            reason="reassigned",
            data=data,
            created_at=now,
        )
        fields = ["agent", "assigned_at"]
    else:
        was_queued = interaction.status == _S.QUEUED
        event = _transition(
            interaction=interaction,
            to_status=_S.ASSIGNED,
            actor=_Actor.SUPERVISOR,
            user=by,
            reason="reassigned",
            data=data,
            now=now,
        )
        fields = ["status", "agent", "assigned_at", *_end_offer(interaction)]
        if was_queued:
            settings_ = queue_settings(
                kind=interaction.channel_kind, campaign_id=interaction.campaign_id
            )
            fields = _assign_fields(interaction, agent_id=to_agent.pk, settings_=settings_, now=now)
            get_channel(interaction.channel_kind).interactions_assigned(
                interaction_ids=[interaction.pk]
            )
    interaction.agent = to_agent
    interaction.assigned_at = now
    interaction.save(update_fields=sorted(set(fields)))
    event.save()
    _schedule_routing_for_agents([a for a in released if a != to_agent.pk])
    return interaction


# Deadlines ----------------------------------------------------------------------


@transaction.atomic
def sweep_queue_timeouts(
    *, now: datetime.datetime | None = None, batch_size: int = SWEEP_BATCH_SIZE
) -> list[int]:
    """Time out up to `batch_size` conversations past their maximum time in queue.

    Claims due rows with SKIP LOCKED, so sweepers running at once never fire
    one deadline twice; a sweeper that dies rolls back and the next one
    finishes its rows. Returns the ids timed out.
    """
    now = now or timezone.now()
    due = list(
        Interaction.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
        .filter(status=_S.QUEUED, queue_deadline_at__lte=now)
        .order_by("queue_deadline_at")[:batch_size]
    )
    if not due:
        return []
    settings_by = _settings_by_campaign(due)
    events = []
    for interaction in due:
        events.append(
            _transition(
                interaction=interaction,
                to_status=_S.TIMED_OUT,
                actor=_Actor.SYSTEM,
                reason="maximum time in queue",
                now=now,
            )
        )
        settings_ = settings_by[interaction.channel_kind, interaction.campaign_id]
        _leave_queue(
            interaction,
            outcome=Interaction.QueueOutcome.TIMED_OUT,
            service_level_seconds=settings_.service_level_seconds,
            now=now,
        )
        interaction.finished_at = now
        interaction.close_reason = "timed_out"
    _update_rows(
        due,
        [
            "status",
            "left_queue_at",
            "queue_outcome",
            "queue_deadline_at",
            "service_level_met",
            "finished_at",
            "close_reason",
        ],
        grouped=("service_level_met",),
    )
    InteractionEvent.objects.bulk_create(events)
    for interaction in due:
        _tell_channel_on_commit(interaction, "interaction_timed_out")
    return [i.pk for i in due]


def _settings_by_campaign(interactions: list[Interaction]) -> dict[tuple, QueueSettings]:
    by_kind: dict[str, set[int]] = {}
    for interaction in interactions:
        by_kind.setdefault(interaction.channel_kind, set()).add(interaction.campaign_id)
    result = {}
    for kind, campaign_ids in by_kind.items():
        found = get_channel(kind).queue_settings_many(campaign_ids=sorted(campaign_ids))
        for campaign_id in campaign_ids:
            # A channel deleted while conversations waited: no service level to meet.
            result[kind, campaign_id] = found.get(campaign_id) or QueueSettings(
                enabled=False,
                strategy=strategies.RINGALL,
                service_level_seconds=0,
                max_queue_seconds=0,
                max_transfer_seconds=0,
                agents_may_pick=False,
            )
    return result


@transaction.atomic
def sweep_transfer_timeouts(
    *, now: datetime.datetime | None = None, batch_size: int = SWEEP_BATCH_SIZE
) -> list[int]:
    """Return unanswered transfers past their deadline to the agent who offered them."""
    now = now or timezone.now()
    due = list(
        Interaction.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
        .filter(status=_S.TRANSFERRING, transfer_deadline_at__lte=now)
        .order_by("transfer_deadline_at")[:batch_size]
    )
    if not due:
        return []
    events, receivers = [], []
    for interaction in due:
        receivers.append(interaction.transfer_to_id)
        events.append(
            _transition(
                interaction=interaction,
                to_status=_S.ASSIGNED,
                actor=_Actor.SYSTEM,
                reason="transfer not accepted in time; returned",
                data={"from_agent": interaction.agent_id, "to_agent": interaction.transfer_to_id},
                now=now,
            )
        )
        _end_offer(interaction)
    _update_rows(due, ["status", "transfer_to", "transfer_deadline_at"])
    InteractionEvent.objects.bulk_create(events)
    _schedule_routing_for_agents(receivers)
    return [i.pk for i in due]


@transaction.atomic
def interaction_close_by_customer(
    *, interaction_id: int, reason: str, now: datetime.datetime
) -> Interaction:
    """The customer left (e.g. texted STOP): a waiting conversation is
    abandoned, one an agent holds is finished. Closed ones stay as they are."""
    interaction = interaction_locked(interaction_id=interaction_id)
    if not interaction.is_open:
        return interaction
    if interaction.status == _S.QUEUED:
        return interaction_abandon_locked(
            interaction, actor=_Actor.CUSTOMER, user=None, reason=reason, now=now
        )
    return _finish(interaction, actor=_Actor.CUSTOMER, user=None, reason=reason, now=now)


# Bots -------------------------------------------------------------------------


@transaction.atomic
def interaction_bot_finish(
    *, interaction_id: int, disposition_name: str = "", now: datetime.datetime | None = None
) -> Interaction:
    """A bot's finish step: end the conversation, with a disposition named in the step.

    A conversation already closed (a survey after the agent finished) stays
    as it is.
    """
    now = now or timezone.now()
    interaction = interaction_locked(interaction_id=interaction_id)
    disposition = None
    if disposition_name:
        disposition = Disposition.objects.filter(
            campaign_id=interaction.campaign_id, name__iexact=disposition_name, active=True
        ).first()
        if disposition is None:
            raise ApplicationError(
                f"Campaign “{interaction.campaign}” has no disposition “{disposition_name}”."
            )
    if not interaction.is_open:
        return interaction
    if interaction.status == _S.QUEUED:
        settings_ = queue_settings(
            kind=interaction.channel_kind, campaign_id=interaction.campaign_id
        )
        fields = _leave_queue(
            interaction, outcome="", service_level_seconds=settings_.service_level_seconds, now=now
        )
        interaction.save(update_fields=fields)
    return _finish(
        interaction,
        actor=_Actor.BOT,
        user=None,
        reason="finished by a bot",
        disposition=disposition,
        now=now,
    )


@transaction.atomic
def interaction_bot_requeue(
    *, interaction_id: int, campaign_name: str = "", now: datetime.datetime | None = None
) -> Interaction:
    """A bot's requeue step: put the conversation in a queue (its own campaign's
    when no name is given), e.g. a timeout bot giving it another chance or
    moving it to an overflow campaign."""
    now = now or timezone.now()
    interaction = interaction_locked(interaction_id=interaction_id)
    campaign = interaction.campaign
    if campaign_name:
        campaign = Campaign.objects.filter(name=campaign_name).first()
        if campaign is None:
            raise ApplicationError(f"There is no campaign named “{campaign_name}”.")
    if interaction.status == _S.QUEUED and campaign.pk == interaction.campaign_id:
        return interaction
    if interaction.status in (_S.FINISHED, _S.REJECTED, _S.ABANDONED):
        raise ApplicationError(f"Conversation #{interaction.pk} is closed; it cannot be queued.")
    settings_ = _queue_to_enter(interaction, campaign)
    return _requeue(
        interaction,
        campaign=campaign,
        settings_=settings_,
        actor=_Actor.BOT,
        user=None,
        reason="queued by a bot",
        data={"from_campaign": interaction.campaign_id, "to_campaign": campaign.pk},
        now=now,
    )


# Replies ----------------------------------------------------------------------


@transaction.atomic
def interaction_reply(*, interaction_id: int, by, body: str) -> Interaction:
    """The agent holding a conversation texts its customer through its channel.

    The channel refuses what it cannot send (an opted-out number, an empty
    or oversized text) with ApplicationError.
    """
    interaction = _locked_for(interaction_id=interaction_id, user=by)
    if interaction.status not in HELD_STATUSES:
        raise ApplicationError(
            f"This conversation is {interaction.get_status_display().lower()}; "
            "it takes no more replies."
        )
    get_channel(interaction.channel_kind).agent_reply(interaction=interaction, body=body, agent=by)
    return interaction
