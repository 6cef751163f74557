"""The routing services: presence, eligibility, strategies, taking, transfers,
finishing, closing, reassigning and the deadline sweeps.

Assertions read the stored rows back (status, agent, queue columns, event
rows), not only what the services return. Routing reads the clock itself, so
tests that need an exact instant freeze it with the `clock` fixture.
"""

import datetime
import random
import re
import types

import pytest
from django.utils import timezone

from campaigns import routing
from campaigns.channels import get_channel
from campaigns.models import (
    AgentProfile,
    AgentStatusEvent,
    Campaign,
    Interaction,
    InteractionEvent,
    Member,
)
from campaigns.routing import (
    RouteResult,
    agent_heartbeat,
    agent_set_status,
    eligible_agents,
    interaction_close,
    interaction_close_by_customer,
    interaction_finish,
    interaction_reassign,
    interaction_take,
    interaction_transfer_accept,
    interaction_transfer_decline,
    interaction_transfer_to_agent,
    interaction_transfer_to_campaign,
    route_campaign,
    sweep_queue_timeouts,
    sweep_transfer_timeouts,
)
from campaigns.services import interaction_enqueue_new
from contactcenter.exceptions import ApplicationError
from sms_channel.models import SmsChannel
from tests.factories import (
    AgentFactory,
    CampaignFactory,
    DispositionFactory,
    InteractionFactory,
    MemberFactory,
    SmsChannelFactory,
    SupervisorFactory,
)

pytestmark = pytest.mark.django_db

S = Interaction.Status
Outcome = Interaction.QueueOutcome
Actor = InteractionEvent.Actor
Strategy = SmsChannel.Strategy
AVAILABLE = AgentProfile.Status.AVAILABLE
BREAK = AgentProfile.Status.BREAK
OFFLINE = AgentProfile.Status.OFFLINE


def exactly(message: str) -> str:
    """A `pytest.raises(match=...)` pattern for exactly this message."""
    return f"^{re.escape(message)}$"


def seconds(n: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=n)


# Helpers ------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """Freeze the clock the routing module reads (route_campaign takes no `now`)."""
    now = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(routing, "timezone", types.SimpleNamespace(now=lambda: now))
    return now


@pytest.fixture
def channel_calls(monkeypatch):
    """Record what routing tells the SMS channel after commit (which starts bots)."""
    calls = []
    sms = get_channel("sms")
    for hook in ("interaction_finished", "interaction_timed_out"):
        monkeypatch.setattr(
            sms, hook, lambda *, interaction_id, hook=hook: calls.append((hook, interaction_id))
        )
    return calls


def make_channel(**kwargs) -> SmsChannel:
    """An enabled SMS channel (Simulator connector and number) on a new campaign."""
    kwargs.setdefault("strategy", Strategy.LINEAR)
    kwargs.setdefault("service_level_seconds", 20)
    return SmsChannelFactory(**kwargs)


def agent_in(
    campaign: Campaign,
    *,
    capacity: int = 3,
    penalty: int = 0,
    position: int = 0,
    status: str = AVAILABLE,
    seen_at: datetime.datetime | None = None,
):
    """An agent who is a member of `campaign`, by default available and seen just now."""
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).update(
        capacity=capacity, status=status, last_seen_at=seen_at or timezone.now()
    )
    MemberFactory(campaign=campaign, agent=agent, penalty=penalty, position=position)
    return agent


def enqueue(campaign: Campaign, *, at: datetime.datetime | None = None, number: str = ""):
    """A new conversation in the queue, as the SMS intake opens it."""
    enqueue.n += 1
    return interaction_enqueue_new(
        campaign=campaign,
        channel_kind="sms",
        customer_number=number or f"+1415777{enqueue.n:04d}",
        max_queue_seconds=campaign.sms_channel.max_queue_seconds,
        now=at or timezone.now(),
    )


enqueue.n = 0


def held_by(agent, campaign: Campaign, **kwargs) -> Interaction:
    """A conversation `agent` holds (assigned to them earlier)."""
    kwargs.setdefault("assigned_at", timezone.now())
    kwargs.setdefault("status", S.ASSIGNED)
    return InteractionFactory(
        campaign=campaign,
        agent=agent,
        queue_outcome=Outcome.ATTENDED,
        **kwargs,
    )


def offered(from_agent, to_agent, campaign: Campaign, **kwargs) -> Interaction:
    """A conversation `from_agent` holds and has offered to `to_agent`."""
    return held_by(from_agent, campaign, status=S.TRANSFERRING, transfer_to=to_agent, **kwargs)


def fresh(interaction: Interaction) -> Interaction:
    return Interaction.objects.get(pk=interaction.pk)


def events(interaction: Interaction) -> list[tuple]:
    """(from, to, reason, actor, user id) of each event row, oldest first."""
    return list(
        InteractionEvent.objects.filter(interaction=interaction)
        .order_by("id")
        .values_list("from_status", "to_status", "reason", "actor", "user_id")
    )


def last_event(interaction: Interaction) -> InteractionEvent:
    return InteractionEvent.objects.filter(interaction=interaction).latest("id")


def holder(interaction: Interaction):
    return fresh(interaction).agent_id


def held_count(agent) -> int:
    return Interaction.objects.filter(agent=agent, status__in=[S.ASSIGNED, S.TRANSFERRING]).count()


# Agent presence ----------------------------------------------------------------


def test_agent_set_status_records_an_event_and_marks_the_agent_seen():
    agent = AgentFactory()
    supervisor = SupervisorFactory()
    now = timezone.now()

    profile = agent_set_status(
        agent=agent, status=AVAILABLE, by=supervisor, reason="start of shift", now=now
    )

    stored = AgentProfile.objects.get(user=agent)
    assert profile.pk == stored.pk
    assert (stored.status, stored.status_changed_at, stored.last_seen_at) == (AVAILABLE, now, now)
    assert list(
        AgentStatusEvent.objects.values_list(
            "agent", "from_status", "to_status", "changed_by", "reason", "created_at"
        )
    ) == [(agent.pk, OFFLINE, AVAILABLE, supervisor.pk, "start of shift", now)]


def test_agent_set_status_by_defaults_to_the_agent_and_break_keeps_last_seen():
    agent = AgentFactory()
    seen = timezone.now() - seconds(30)
    AgentProfile.objects.filter(user=agent).update(status=AVAILABLE, last_seen_at=seen)

    agent_set_status(agent=agent, status=BREAK)

    stored = AgentProfile.objects.get(user=agent)
    assert (stored.status, stored.last_seen_at) == (BREAK, seen)
    event = AgentStatusEvent.objects.get()
    assert (event.from_status, event.to_status, event.changed_by_id) == (AVAILABLE, BREAK, agent.pk)


def test_agent_set_status_to_the_same_status_changes_nothing():
    agent = AgentFactory()
    before = AgentProfile.objects.get(user=agent)

    agent_set_status(agent=agent, status=OFFLINE, now=timezone.now() + seconds(60))

    after = AgentProfile.objects.get(user=agent)
    assert after.status_changed_at == before.status_changed_at
    assert not AgentStatusEvent.objects.exists()


def test_agent_set_status_refuses_an_unknown_status():
    agent = AgentFactory()

    with pytest.raises(ApplicationError, match=exactly("“busy” is not an agent status.")):
        agent_set_status(agent=agent, status="busy")

    assert AgentProfile.objects.get(user=agent).status == OFFLINE
    assert not AgentStatusEvent.objects.exists()


def test_agent_set_status_creates_a_missing_profile():
    # A user added to the Agents group by hand has no profile yet.
    agent = AgentFactory()
    AgentProfile.objects.filter(user=agent).delete()

    agent_set_status(agent=agent, status=AVAILABLE)

    assert AgentProfile.objects.get(user=agent).status == AVAILABLE


def test_becoming_available_routes_a_waiting_conversation(django_capture_on_commit_callbacks):
    channel = make_channel()
    agent = agent_in(channel.campaign, status=OFFLINE)
    with django_capture_on_commit_callbacks(execute=True):
        interaction = enqueue(channel.campaign)
    # Routing ran on enqueue but nobody could take it.
    assert fresh(interaction).status == S.QUEUED

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        agent_set_status(agent=agent, status=AVAILABLE)

    assert len(callbacks) == 1
    stored = fresh(interaction)
    assert (stored.status, stored.agent_id) == (S.ASSIGNED, agent.pk)
    assert events(interaction)[-1] == (S.QUEUED, S.ASSIGNED, "routed (linear)", Actor.SYSTEM, None)


def test_going_on_break_schedules_no_routing(django_capture_on_commit_callbacks):
    channel = make_channel()
    agent = agent_in(channel.campaign)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        agent_set_status(agent=agent, status=BREAK)

    assert callbacks == []


def test_enqueue_routes_after_commit(django_capture_on_commit_callbacks):
    channel = make_channel()
    agent = agent_in(channel.campaign)

    with django_capture_on_commit_callbacks(execute=True):
        interaction = enqueue(channel.campaign)

    stored = fresh(interaction)
    assert (stored.status, stored.agent_id, stored.queue_outcome) == (
        S.ASSIGNED,
        agent.pk,
        Outcome.ATTENDED,
    )
    assert events(interaction) == [
        ("", S.QUEUED, "new conversation", Actor.CUSTOMER, None),
        (S.QUEUED, S.ASSIGNED, "routed (linear)", Actor.SYSTEM, None),
    ]


def test_enqueue_without_commit_does_not_route():
    # Non-transactional tests never commit: the routing task is not run.
    channel = make_channel()
    agent_in(channel.campaign)

    interaction = enqueue(channel.campaign)

    assert fresh(interaction).status == S.QUEUED


def test_heartbeat_makes_a_stale_agent_eligible_and_routes(django_capture_on_commit_callbacks):
    channel = make_channel()
    stale = timezone.now() - seconds(120)
    agent = agent_in(channel.campaign, seen_at=stale)
    interaction = enqueue(channel.campaign)

    assert route_campaign(campaign_id=channel.campaign_id).assigned == 0
    assert fresh(interaction).status == S.QUEUED

    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        agent_heartbeat(agent=agent, now=now)

    assert len(callbacks) == 1
    assert AgentProfile.objects.get(user=agent).last_seen_at == now
    assert (fresh(interaction).status, holder(interaction)) == (S.ASSIGNED, agent.pk)


def test_heartbeat_of_a_fresh_agent_only_updates_last_seen(django_capture_on_commit_callbacks):
    channel = make_channel()
    agent = agent_in(channel.campaign)
    now = timezone.now() + seconds(5)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        agent_heartbeat(agent=agent, now=now)

    assert callbacks == []
    assert AgentProfile.objects.get(user=agent).last_seen_at == now


def test_heartbeat_of_a_stale_agent_on_break_does_not_route(django_capture_on_commit_callbacks):
    channel = make_channel()
    agent = agent_in(channel.campaign, status=BREAK, seen_at=timezone.now() - seconds(600))
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        agent_heartbeat(agent=agent, now=now)

    assert callbacks == []
    assert AgentProfile.objects.get(user=agent).last_seen_at == now


# Eligibility ---------------------------------------------------------------------


def _deactivate_membership(agent, campaign):
    Member.objects.filter(agent=agent, campaign=campaign).update(active=False)


def _deactivate_user(agent, campaign):
    type(agent).objects.filter(pk=agent.pk).update(is_active=False)


def _on_break(agent, campaign):
    AgentProfile.objects.filter(user=agent).update(status=BREAK)


def _offline(agent, campaign):
    AgentProfile.objects.filter(user=agent).update(status=OFFLINE)


def _stale(agent, campaign):
    AgentProfile.objects.filter(user=agent).update(last_seen_at=timezone.now() - seconds(61))


def _never_seen(agent, campaign):
    AgentProfile.objects.filter(user=agent).update(last_seen_at=None)


def _at_capacity(agent, campaign):
    AgentProfile.objects.filter(user=agent).update(capacity=2)
    held_by(agent, campaign)
    # Load is counted across campaigns.
    held_by(agent, CampaignFactory())


def _holding_a_transfer_away(agent, campaign):
    # A conversation they are transferring away still counts: it may come back.
    AgentProfile.objects.filter(user=agent).update(capacity=1)
    offered(agent, AgentFactory(), campaign)


def _offered_a_transfer(agent, campaign):
    AgentProfile.objects.filter(user=agent).update(capacity=1)
    offered(AgentFactory(), agent, campaign)


@pytest.mark.parametrize(
    "make_ineligible",
    [
        _deactivate_membership,
        _deactivate_user,
        _on_break,
        _offline,
        _stale,
        _never_seen,
        _at_capacity,
        _holding_a_transfer_away,
        _offered_a_transfer,
    ],
)
def test_ineligible_agents_are_skipped(make_ineligible):
    channel = make_channel()
    campaign = channel.campaign
    agent = agent_in(campaign)
    make_ineligible(agent, campaign)
    interaction = enqueue(campaign)

    assert eligible_agents(campaign=campaign, strategy=Strategy.LINEAR, now=timezone.now()) == []
    assert route_campaign(campaign_id=campaign.pk) == RouteResult(assigned=0, batches=1)
    assert fresh(interaction).status == S.QUEUED
    assert fresh(interaction).agent_id is None


def test_eligible_agent_reports_capacity_and_load():
    channel = make_channel()
    campaign = channel.campaign
    agent = agent_in(campaign, capacity=4, penalty=7, position=3)
    held_by(agent, campaign)
    offered(AgentFactory(), agent, campaign)

    (eligible,) = eligible_agents(campaign=campaign, strategy=Strategy.LINEAR, now=timezone.now())

    assert eligible.candidate.agent_id == agent.pk
    assert (eligible.candidate.penalty, eligible.candidate.position) == (7, 3)
    assert (eligible.capacity, eligible.load, eligible.free) == (4, 2, 2)


def test_heartbeat_staleness_boundary_is_inclusive(settings):
    settings.AGENT_HEARTBEAT_STALE_SECONDS = 60
    channel = make_channel()
    now = timezone.now()
    just_in_time = agent_in(channel.campaign, seen_at=now - seconds(60))
    agent_in(channel.campaign, seen_at=now - seconds(60) - datetime.timedelta(microseconds=1))

    eligible = eligible_agents(campaign=channel.campaign, strategy=Strategy.LINEAR, now=now)

    assert [e.candidate.agent_id for e in eligible] == [just_in_time.pk]


def test_routing_passes_over_agents_the_snapshot_wrongly_thought_free(monkeypatch):
    # Between the snapshot and the lock the first agent took work elsewhere;
    # the router must correct its snapshot and serve the next agent.
    channel = make_channel(strategy=Strategy.LINEAR)
    busy = agent_in(channel.campaign, capacity=1, position=0)
    free = agent_in(channel.campaign, capacity=1, position=1)
    stale = eligible_agents(campaign=channel.campaign, strategy="linear", now=timezone.now())
    held_by(busy, CampaignFactory())
    monkeypatch.setattr(routing, "eligible_agents", lambda **kwargs: stale)
    interaction = enqueue(channel.campaign)

    result = route_campaign(campaign_id=channel.campaign_id)

    assert result.assigned == 1
    assert holder(interaction) == free.pk


def test_members_of_other_campaigns_are_not_eligible():
    channel = make_channel()
    agent_in(CampaignFactory())

    assert eligible_agents(campaign=channel.campaign, strategy="linear", now=timezone.now()) == []


# Routing: order and strategies ------------------------------------------------------


def test_route_assigns_oldest_first_and_records_the_assignment(clock):
    channel = make_channel(max_queue_seconds=300)
    agent = agent_in(channel.campaign, capacity=1, seen_at=clock)
    newer = enqueue(channel.campaign, at=clock - seconds(5))
    older = enqueue(channel.campaign, at=clock - seconds(10))

    assert route_campaign(campaign_id=channel.campaign_id) == RouteResult(assigned=1, batches=2)

    stored = fresh(older)
    assert stored.status == S.ASSIGNED
    assert stored.agent_id == agent.pk
    assert stored.assigned_at == clock
    assert stored.left_queue_at == clock
    assert stored.queue_outcome == Outcome.ATTENDED
    assert stored.queue_deadline_at is None
    assert stored.service_level_met is True
    event = last_event(older)
    assert (event.from_status, event.to_status, event.reason, event.actor) == (
        S.QUEUED,
        S.ASSIGNED,
        "routed (linear)",
        Actor.SYSTEM,
    )
    assert event.data == {"agent": agent.pk}
    assert event.created_at == clock
    assert AgentProfile.objects.get(user=agent).last_assignment_at == clock
    # The newer one waits, untouched, with its deadline.
    waiting = fresh(newer)
    assert (waiting.status, waiting.agent_id, waiting.queue_outcome) == (S.QUEUED, None, "")
    assert waiting.queue_deadline_at == clock - seconds(5) + seconds(300)


def test_ties_in_queued_at_go_by_id():
    channel = make_channel()
    agent_in(channel.campaign, capacity=1)
    at = timezone.now() - seconds(1)
    first = enqueue(channel.campaign, at=at)
    enqueue(channel.campaign, at=at)

    route_campaign(campaign_id=channel.campaign_id)

    assert fresh(first).status == S.ASSIGNED


@pytest.mark.parametrize(
    "strategy",
    [
        Strategy.LINEAR,
        Strategy.RRORDERED,
        Strategy.RRMEMORY,
        Strategy.LEASTRECENT,
        Strategy.FEWESTCALLS,
    ],
)
def test_lower_penalty_tier_is_served_first(strategy):
    channel = make_channel(strategy=strategy)
    # The penalised agent comes first by position and by join order.
    penalised = agent_in(channel.campaign, capacity=1, penalty=1, position=0)
    preferred = agent_in(channel.campaign, capacity=1, penalty=0, position=1)
    now = timezone.now()
    first = enqueue(channel.campaign, at=now - seconds(2))
    second = enqueue(channel.campaign, at=now - seconds(1))

    assert route_campaign(campaign_id=channel.campaign_id).assigned == 2

    assert holder(first) == preferred.pk
    assert holder(second) == penalised.pk


def test_linear_starts_from_the_first_position_every_time():
    channel = make_channel(strategy=Strategy.LINEAR)
    second = agent_in(channel.campaign, capacity=2, position=1)
    first = agent_in(channel.campaign, capacity=2, position=0)

    holders = []
    for _ in range(3):
        interaction = enqueue(channel.campaign)
        assert route_campaign(campaign_id=channel.campaign_id).assigned == 1
        holders.append(holder(interaction))

    assert holders == [first.pk, first.pk, second.pk]
    assert Campaign.objects.get(pk=channel.campaign_id).rr_last_member_id is None


def test_rrmemory_remembers_across_calls_in_join_order():
    channel = make_channel(strategy=Strategy.RRMEMORY)
    # Positions deliberately disagree with the join order; rrmemory ignores them.
    a = agent_in(channel.campaign, position=2)
    b = agent_in(channel.campaign, position=0)
    c = agent_in(channel.campaign, position=1)
    members = {m.agent_id: m.pk for m in Member.objects.filter(campaign=channel.campaign)}

    holders, memory = [], []
    for _ in range(4):
        interaction = enqueue(channel.campaign)
        assert route_campaign(campaign_id=channel.campaign_id).assigned == 1
        holders.append(holder(interaction))
        memory.append(Campaign.objects.get(pk=channel.campaign_id).rr_last_member_id)

    assert holders == [a.pk, b.pk, c.pk, a.pk]
    assert memory == [members[a.pk], members[b.pk], members[c.pk], members[a.pk]]


def test_rrmemory_rotates_within_one_batch_and_saves_the_last():
    channel = make_channel(strategy=Strategy.RRMEMORY)
    a, b, c = (agent_in(channel.campaign) for _ in range(3))
    now = timezone.now()
    queued = [enqueue(channel.campaign, at=now - seconds(10 - i)) for i in range(4)]

    assert route_campaign(campaign_id=channel.campaign_id) == RouteResult(assigned=4, batches=2)

    assert [holder(i) for i in queued] == [a.pk, b.pk, c.pk, a.pk]
    campaign = Campaign.objects.get(pk=channel.campaign_id)
    assert campaign.rr_last_member == Member.objects.get(campaign=campaign, agent=a)


def test_rrmemory_starts_after_the_stored_member_even_when_it_is_not_eligible():
    channel = make_channel(strategy=Strategy.RRMEMORY)
    agent_in(channel.campaign)
    b = agent_in(channel.campaign, status=BREAK)
    c = agent_in(channel.campaign)
    Campaign.objects.filter(pk=channel.campaign_id).update(
        rr_last_member=Member.objects.get(agent=b)
    )
    interaction = enqueue(channel.campaign)

    route_campaign(campaign_id=channel.campaign_id)

    assert holder(interaction) == c.pk


def test_rrordered_rotates_in_position_order_across_calls():
    channel = make_channel(strategy=Strategy.RRORDERED)
    a = agent_in(channel.campaign, position=2)
    b = agent_in(channel.campaign, position=0)
    c = agent_in(channel.campaign, position=1)

    holders = []
    for _ in range(4):
        interaction = enqueue(channel.campaign)
        route_campaign(campaign_id=channel.campaign_id)
        holders.append(holder(interaction))

    assert holders == [b.pk, c.pk, a.pk, b.pk]
    campaign = Campaign.objects.get(pk=channel.campaign_id)
    assert campaign.rr_last_member == Member.objects.get(campaign=campaign, agent=b)


def test_leastrecent_prefers_never_then_longest_ago_in_this_campaign(clock):
    channel = make_channel(strategy=Strategy.LEASTRECENT)
    campaign = channel.campaign
    recent = agent_in(campaign, capacity=1, seen_at=clock)
    long_ago = agent_in(campaign, capacity=1, seen_at=clock)
    never = agent_in(campaign, capacity=1, seen_at=clock)
    finished = {"status": S.FINISHED, "queue_outcome": Outcome.ATTENDED}
    InteractionFactory(
        campaign=campaign, agent=recent, finished_at=clock - seconds(300), **finished
    )
    InteractionFactory(
        campaign=campaign, agent=long_ago, finished_at=clock - seconds(3600), **finished
    )
    # Only this campaign's history counts.
    InteractionFactory(agent=never, finished_at=clock - seconds(1), **finished)
    queued = [enqueue(campaign, at=clock - seconds(10 - i)) for i in range(3)]

    assert route_campaign(campaign_id=campaign.pk).assigned == 3

    assert [holder(i) for i in queued] == [never.pk, long_ago.pk, recent.pk]


def test_fewestcalls_counts_finished_today_in_the_campaign_time_zone(clock):
    channel = make_channel(
        strategy=Strategy.FEWESTCALLS,
        campaign=CampaignFactory(time_zone="America/New_York"),
    )
    campaign = channel.campaign
    midnight = clock.astimezone(campaign.time_zone).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    two_today = agent_in(campaign, capacity=1, seen_at=clock)
    one_today = agent_in(campaign, capacity=1, seen_at=clock)
    three_today = agent_in(campaign, capacity=1, seen_at=clock)

    def finished(agent, n, at):
        for _ in range(n):
            InteractionFactory(
                campaign=campaign,
                agent=agent,
                status=S.FINISHED,
                finished_at=at,
                queue_outcome=Outcome.ATTENDED,
            )

    finished(two_today, 2, midnight)  # Midnight itself is today.
    finished(one_today, 1, midnight)
    finished(one_today, 3, midnight - seconds(1))  # Yesterday: not counted.
    finished(three_today, 3, midnight)
    # Another campaign's finished conversations do not count.
    InteractionFactory(
        agent=one_today, status=S.FINISHED, finished_at=midnight, queue_outcome=Outcome.ATTENDED
    )
    queued = [enqueue(campaign, at=clock - seconds(10 - i)) for i in range(3)]

    assert route_campaign(campaign_id=campaign.pk).assigned == 3

    assert [holder(i) for i in queued] == [one_today.pk, two_today.pk, three_today.pk]


@pytest.mark.parametrize("strategy", [Strategy.RANDOM, Strategy.WRANDOM])
def test_random_strategies_assign_within_capacity(strategy):
    channel = make_channel(strategy=strategy)
    agents = [
        agent_in(channel.campaign, capacity=1, penalty=0),
        agent_in(channel.campaign, capacity=1, penalty=50),
        # wrandom: a high penalty lowers the odds, it never excludes.
        agent_in(channel.campaign, capacity=1, penalty=100),
    ]
    now = timezone.now()
    queued = [enqueue(channel.campaign, at=now - seconds(10 - i)) for i in range(5)]

    result = route_campaign(campaign_id=channel.campaign_id, rng=random.Random(0))

    assert result.assigned == 3
    # The three oldest were served, one per agent; the rest wait.
    assert sorted(holder(i) for i in queued[:3]) == sorted(a.pk for a in agents)
    assert [fresh(i).status for i in queued[3:]] == [S.QUEUED, S.QUEUED]
    assert [held_count(a) for a in agents] == [1, 1, 1]


@pytest.mark.parametrize("strategy", [Strategy.RANDOM, Strategy.WRANDOM])
def test_random_strategies_draw_anew_for_each_conversation_of_a_batch(strategy):
    # Drawn once per batch, the first agent drawn would take all 40 in one go.
    channel = make_channel(strategy=strategy)
    agents = [agent_in(channel.campaign, capacity=100) for _ in range(8)]
    now = timezone.now()
    for i in range(40):
        enqueue(channel.campaign, at=now - seconds(60 - i))

    route_campaign(campaign_id=channel.campaign_id, batch_size=40, rng=random.Random(1))

    counts = [held_count(a) for a in agents]
    assert sum(counts) == 40
    assert max(counts) < 20
    assert sum(1 for c in counts if c) >= 5


def test_a_supervisor_may_hand_a_transfer_to_its_receiver_at_capacity():
    channel = make_channel()
    sender = agent_in(channel.campaign, capacity=3)
    receiver = agent_in(channel.campaign, capacity=1)
    interaction = offered(sender, receiver, channel.campaign)

    interaction_reassign(interaction_id=interaction.pk, by=SupervisorFactory(), to_agent=receiver)

    interaction = fresh(interaction)
    assert (interaction.status, interaction.agent, interaction.transfer_to) == (
        S.ASSIGNED,
        receiver,
        None,
    )


def test_random_is_reproducible_with_a_seeded_rng():
    def run():
        channel = make_channel(strategy=Strategy.RANDOM)
        agents = [agent_in(channel.campaign, capacity=5) for _ in range(4)]
        interaction = enqueue(channel.campaign)
        route_campaign(campaign_id=channel.campaign_id, rng=random.Random(0))
        return agents.index(fresh(interaction).agent)

    assert run() == run()


def test_ringall_assigns_nothing_automatically():
    channel = make_channel(strategy=Strategy.RINGALL)
    agent_in(channel.campaign)
    interaction = enqueue(channel.campaign)

    assert route_campaign(campaign_id=channel.campaign_id) == RouteResult(assigned=0, batches=0)

    assert fresh(interaction).status == S.QUEUED
    assert events(interaction) == [("", S.QUEUED, "new conversation", Actor.CUSTOMER, None)]


def test_route_campaign_without_a_channel_does_nothing():
    campaign = CampaignFactory()
    InteractionFactory(campaign=campaign)

    assert route_campaign(campaign_id=campaign.pk) == RouteResult(assigned=0, batches=0)


# Routing: capacity and batches ------------------------------------------------------


def test_capacity_is_never_exceeded_across_calls_and_campaigns():
    channel = make_channel()
    busy = agent_in(channel.campaign, capacity=2)
    other = agent_in(channel.campaign, capacity=2, position=1)
    held_by(busy, CampaignFactory())  # Another campaign's conversation uses a slot.
    now = timezone.now()
    queued = [enqueue(channel.campaign, at=now - seconds(10 - i)) for i in range(5)]

    assert route_campaign(campaign_id=channel.campaign_id).assigned == 3
    assert route_campaign(campaign_id=channel.campaign_id).assigned == 0

    assert (held_count(busy), held_count(other)) == (2, 2)
    assert [holder(i) for i in queued] == [busy.pk, other.pk, other.pk, None, None]
    assert [fresh(i).status for i in queued[3:]] == [S.QUEUED, S.QUEUED]


def test_small_batches_route_everything():
    channel = make_channel()
    agent = agent_in(channel.campaign, capacity=10)
    now = timezone.now()
    queued = [enqueue(channel.campaign, at=now - seconds(10 - i)) for i in range(5)]

    # Three batches assign 2, 2 and 1; the fourth finds the queue empty.
    assert route_campaign(campaign_id=channel.campaign_id, batch_size=2) == RouteResult(
        assigned=5, batches=4
    )

    assert [holder(i) for i in queued] == [agent.pk] * 5
    assert InteractionEvent.objects.filter(to_status=S.ASSIGNED).count() == 5


def test_a_batch_spreads_over_agents_when_the_first_fills_up():
    channel = make_channel()
    first = agent_in(channel.campaign, capacity=2, position=0)
    second = agent_in(channel.campaign, capacity=2, position=1)
    now = timezone.now()
    queued = [enqueue(channel.campaign, at=now - seconds(10 - i)) for i in range(4)]

    assert route_campaign(campaign_id=channel.campaign_id) == RouteResult(assigned=4, batches=2)

    assert [holder(i) for i in queued] == [first.pk, first.pk, second.pk, second.pk]


# Service level ----------------------------------------------------------------------


@pytest.mark.parametrize(("waited", "met"), [(0, True), (20, True), (21, False)])
def test_service_level_met_when_assigned_within_the_threshold(clock, waited, met):
    channel = make_channel(service_level_seconds=20)
    agent_in(channel.campaign, seen_at=clock)
    interaction = enqueue(channel.campaign, at=clock - seconds(waited))

    route_campaign(campaign_id=channel.campaign_id)

    stored = fresh(interaction)
    assert stored.status == S.ASSIGNED
    assert stored.left_queue_at == clock
    assert stored.service_level_met is met


@pytest.mark.parametrize(("waited", "met"), [(20, True), (21, False)])
def test_service_level_when_taken_from_the_pending_list(waited, met):
    channel = make_channel(strategy=Strategy.RINGALL, service_level_seconds=20)
    agent = agent_in(channel.campaign)
    now = timezone.now()
    interaction = enqueue(channel.campaign, at=now - seconds(waited))

    interaction_take(interaction_id=interaction.pk, agent=agent, now=now)

    assert fresh(interaction).service_level_met is met


# Taking from the pending list ----------------------------------------------------------


def test_take_under_ringall_first_wins():
    channel = make_channel(strategy=Strategy.RINGALL)
    first = agent_in(channel.campaign)
    second = agent_in(channel.campaign)
    interaction = enqueue(channel.campaign, at=timezone.now() - seconds(3))
    now = timezone.now()

    interaction_take(interaction_id=interaction.pk, agent=first, now=now)

    stored = fresh(interaction)
    assert (stored.status, stored.agent_id, stored.assigned_at) == (S.ASSIGNED, first.pk, now)
    assert (stored.left_queue_at, stored.queue_outcome, stored.service_level_met) == (
        now,
        Outcome.ATTENDED,
        True,
    )
    assert events(interaction)[-1] == (
        S.QUEUED,
        S.ASSIGNED,
        "taken from the pending list",
        Actor.AGENT,
        first.pk,
    )
    profile = AgentProfile.objects.get(user=first)
    assert (profile.last_assignment_at, profile.last_seen_at) == (now, now)

    with pytest.raises(
        ApplicationError, match=exactly("This conversation has already been taken.")
    ):
        interaction_take(interaction_id=interaction.pk, agent=second)

    assert holder(interaction) == first.pk
    assert len(events(interaction)) == 2


def test_take_is_refused_when_conversations_are_routed():
    channel = make_channel(strategy=Strategy.LINEAR)
    agent = agent_in(channel.campaign)
    interaction = enqueue(channel.campaign)

    with pytest.raises(ApplicationError, match="conversations are routed to agents; wait for one"):
        interaction_take(interaction_id=interaction.pk, agent=agent)

    assert fresh(interaction).status == S.QUEUED


def test_take_is_allowed_when_agents_may_pick():
    channel = make_channel(strategy=Strategy.LINEAR, agents_may_pick=True)
    agent_in(channel.campaign, position=0)
    picker = agent_in(channel.campaign, position=1)
    interaction = enqueue(channel.campaign)

    interaction_take(interaction_id=interaction.pk, agent=picker)

    assert (fresh(interaction).status, holder(interaction)) == (S.ASSIGNED, picker.pk)


def test_take_is_refused_to_a_non_member():
    channel = make_channel(strategy=Strategy.RINGALL)
    outsider = agent_in(CampaignFactory())
    interaction = enqueue(channel.campaign)

    with pytest.raises(ApplicationError, match="is not an active member of campaign"):
        interaction_take(interaction_id=interaction.pk, agent=outsider)

    assert fresh(interaction).status == S.QUEUED


def test_take_is_refused_at_capacity():
    channel = make_channel(strategy=Strategy.RINGALL)
    agent = agent_in(channel.campaign, capacity=1)
    held_by(agent, channel.campaign)
    interaction = enqueue(channel.campaign)

    with pytest.raises(ApplicationError) as excinfo:
        interaction_take(interaction_id=interaction.pk, agent=agent)

    assert str(excinfo.value) == f"{agent.get_full_name()} is at their capacity of 1 conversation."
    assert fresh(interaction).status == S.QUEUED


def test_take_is_refused_on_break():
    channel = make_channel(strategy=Strategy.RINGALL)
    agent = agent_in(channel.campaign, status=BREAK)
    interaction = enqueue(channel.campaign)

    with pytest.raises(ApplicationError) as excinfo:
        interaction_take(interaction_id=interaction.pk, agent=agent)

    assert str(excinfo.value) == f"{agent.get_full_name()} is on break."


# Transfers between agents ------------------------------------------------------------------


@pytest.fixture
def transfer_setup():
    """Two available agents of one campaign; the first holds a conversation."""
    channel = make_channel(max_transfer_seconds=30)
    sender = agent_in(channel.campaign, position=0)
    receiver = agent_in(channel.campaign, position=1)
    interaction = held_by(sender, channel.campaign)
    return types.SimpleNamespace(
        channel=channel, sender=sender, receiver=receiver, interaction=interaction
    )


def test_transfer_offers_the_conversation_with_a_deadline(transfer_setup):
    t = transfer_setup
    now = timezone.now()

    interaction_transfer_to_agent(
        interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver, note="billing", now=now
    )

    stored = fresh(t.interaction)
    assert (stored.status, stored.agent_id, stored.transfer_to_id) == (
        S.TRANSFERRING,
        t.sender.pk,
        t.receiver.pk,
    )
    assert stored.transfer_deadline_at == now + seconds(30)
    assert stored.transfer_note == "billing"
    event = last_event(t.interaction)
    assert (event.from_status, event.to_status, event.reason, event.actor, event.user_id) == (
        S.ASSIGNED,
        S.TRANSFERRING,
        "transfer offered",
        Actor.AGENT,
        t.sender.pk,
    )
    assert event.data == {"from_agent": t.sender.pk, "to_agent": t.receiver.pk, "note": "billing"}


def test_transfer_without_a_maximum_time_has_no_deadline(transfer_setup):
    t = transfer_setup
    SmsChannel.objects.filter(pk=t.channel.pk).update(max_transfer_seconds=0)

    interaction_transfer_to_agent(interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver)

    stored = fresh(t.interaction)
    assert stored.status == S.TRANSFERRING
    assert stored.transfer_deadline_at is None
    # Without a deadline the sweep never returns it.
    assert sweep_transfer_timeouts(now=timezone.now() + datetime.timedelta(days=365)) == []


def test_transfer_accept_hands_over_and_frees_the_sender(
    transfer_setup, django_capture_on_commit_callbacks
):
    t = transfer_setup
    AgentProfile.objects.filter(user=t.sender).update(capacity=1)
    interaction_transfer_to_agent(interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver)
    AgentProfile.objects.filter(user=t.receiver).update(capacity=1)
    waiting = enqueue(t.channel.campaign)
    # Both agents are full (the offer counts for both), so the queue waits.
    assert route_campaign(campaign_id=t.channel.campaign_id).assigned == 0
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        interaction_transfer_accept(interaction_id=t.interaction.pk, agent=t.receiver, now=now)

    stored = fresh(t.interaction)
    assert (stored.status, stored.agent_id, stored.assigned_at) == (S.ASSIGNED, t.receiver.pk, now)
    assert (stored.transfer_to_id, stored.transfer_deadline_at) == (None, None)
    event = last_event(t.interaction)
    assert (event.from_status, event.to_status, event.reason, event.actor, event.user_id) == (
        S.TRANSFERRING,
        S.ASSIGNED,
        "transfer accepted",
        Actor.AGENT,
        t.receiver.pk,
    )
    assert event.data == {"from_agent": t.sender.pk, "to_agent": t.receiver.pk}
    # The sender's freed slot was routed the waiting conversation.
    assert holder(waiting) == t.sender.pk


def test_transfer_decline_returns_it_to_the_sender(transfer_setup):
    t = transfer_setup
    interaction_transfer_to_agent(interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver)

    interaction_transfer_decline(interaction_id=t.interaction.pk, agent=t.receiver)

    stored = fresh(t.interaction)
    assert (stored.status, stored.agent_id) == (S.ASSIGNED, t.sender.pk)
    assert (stored.transfer_to_id, stored.transfer_deadline_at) == (None, None)
    assert events(t.interaction)[-1] == (
        S.TRANSFERRING,
        S.ASSIGNED,
        "transfer declined",
        Actor.AGENT,
        t.receiver.pk,
    )


def test_only_the_receiver_can_answer_an_offer(transfer_setup):
    t = transfer_setup
    interaction_transfer_to_agent(interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver)
    bystander = agent_in(t.channel.campaign)

    for answer in (interaction_transfer_accept, interaction_transfer_decline):
        with pytest.raises(
            ApplicationError, match=exactly("This transfer is no longer offered to you.")
        ):
            answer(interaction_id=t.interaction.pk, agent=bystander)

    assert fresh(t.interaction).status == S.TRANSFERRING


def test_answering_a_lapsed_offer_is_refused(transfer_setup):
    t = transfer_setup
    interaction_transfer_to_agent(interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver)
    interaction_transfer_decline(interaction_id=t.interaction.pk, agent=t.receiver)

    with pytest.raises(
        ApplicationError, match=exactly("This transfer is no longer offered to you.")
    ):
        interaction_transfer_accept(interaction_id=t.interaction.pk, agent=t.receiver)

    assert holder(t.interaction) == t.sender.pk


@pytest.mark.parametrize(
    ("make_ineligible", "message"),
    [
        (lambda a: AgentProfile.objects.filter(user=a).update(status=BREAK), "{name} is on break."),
        (
            lambda a: AgentProfile.objects.filter(user=a).update(status=OFFLINE),
            "{name} is offline.",
        ),
        (
            lambda a: AgentProfile.objects.filter(user=a).update(
                last_seen_at=timezone.now() - seconds(600)
            ),
            "{name} has not been seen in the agent console recently.",
        ),
        (
            lambda a: Member.objects.filter(agent=a).update(active=False),
            "{name} is not an active member of campaign “{campaign}”.",
        ),
        (
            lambda a: type(a).objects.filter(pk=a.pk).update(is_active=False),
            "{name} is deactivated.",
        ),
    ],
)
def test_transfer_to_an_ineligible_agent_is_refused(transfer_setup, make_ineligible, message):
    t = transfer_setup
    make_ineligible(t.receiver)
    t.receiver.refresh_from_db()

    with pytest.raises(ApplicationError) as excinfo:
        interaction_transfer_to_agent(
            interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver
        )

    assert str(excinfo.value) == message.format(
        name=t.receiver.get_full_name(), campaign=t.channel.campaign
    )
    stored = fresh(t.interaction)
    assert (stored.status, stored.transfer_to_id) == (S.ASSIGNED, None)
    assert not InteractionEvent.objects.filter(interaction=t.interaction).exists()


def test_offered_transfers_count_against_the_receivers_capacity(transfer_setup):
    t = transfer_setup
    AgentProfile.objects.filter(user=t.receiver).update(capacity=1)
    offered(agent_in(t.channel.campaign), t.receiver, t.channel.campaign)

    with pytest.raises(ApplicationError) as excinfo:
        interaction_transfer_to_agent(
            interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver
        )

    assert str(excinfo.value) == (
        f"{t.receiver.get_full_name()} is at their capacity of 1 conversation."
    )
    assert fresh(t.interaction).status == S.ASSIGNED


def test_transfer_to_self_is_refused(transfer_setup):
    t = transfer_setup

    with pytest.raises(
        ApplicationError, match=exactly("The conversation is already with that agent.")
    ):
        interaction_transfer_to_agent(
            interaction_id=t.interaction.pk, by=t.sender, to_agent=t.sender
        )

    assert fresh(t.interaction).status == S.ASSIGNED


def test_an_agent_cannot_transfer_another_agents_conversation(transfer_setup):
    t = transfer_setup

    with pytest.raises(ApplicationError, match=exactly("No such conversation.")):
        interaction_transfer_to_agent(
            interaction_id=t.interaction.pk, by=t.receiver, to_agent=t.receiver
        )


def test_a_supervisor_can_offer_a_transfer(transfer_setup):
    t = transfer_setup
    supervisor = SupervisorFactory()

    interaction_transfer_to_agent(
        interaction_id=t.interaction.pk, by=supervisor, to_agent=t.receiver
    )

    assert events(t.interaction)[-1] == (
        S.ASSIGNED,
        S.TRANSFERRING,
        "transfer offered",
        Actor.SUPERVISOR,
        supervisor.pk,
    )


def test_transfer_sweep_returns_lapsed_offers_once(
    transfer_setup, django_capture_on_commit_callbacks
):
    t = transfer_setup
    now = timezone.now()
    interaction_transfer_to_agent(
        interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver, now=now
    )

    assert sweep_transfer_timeouts(now=now + seconds(29)) == []
    assert fresh(t.interaction).status == S.TRANSFERRING

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert sweep_transfer_timeouts(now=now + seconds(30)) == [t.interaction.pk]

    stored = fresh(t.interaction)
    assert (stored.status, stored.agent_id) == (S.ASSIGNED, t.sender.pk)
    assert (stored.transfer_to_id, stored.transfer_deadline_at) == (None, None)
    event = last_event(t.interaction)
    assert (event.from_status, event.to_status, event.actor, event.user_id) == (
        S.TRANSFERRING,
        S.ASSIGNED,
        Actor.SYSTEM,
        None,
    )
    assert event.reason == "transfer not accepted in time; returned"
    assert event.data == {"from_agent": t.sender.pk, "to_agent": t.receiver.pk}
    assert event.created_at == now + seconds(30)
    # The receiver's slot is free again: their campaigns are routed.
    assert len(callbacks) == 1

    assert sweep_transfer_timeouts(now=now + seconds(60)) == []
    assert len(events(t.interaction)) == 2


# Transfers to another campaign ------------------------------------------------------------


@pytest.fixture
def two_campaigns():
    """An agent holding a routed conversation in one campaign, and a second campaign."""
    source = make_channel()
    target = make_channel(strategy=Strategy.LINEAR, max_queue_seconds=120)
    agent = agent_in(source.campaign)
    interaction = enqueue(source.campaign, at=timezone.now() - seconds(5))
    route_campaign(campaign_id=source.campaign_id)
    return types.SimpleNamespace(
        source=source.campaign, target=target.campaign, agent=agent, interaction=interaction
    )


def test_transfer_to_campaign_starts_a_new_stay_and_keeps_history(two_campaigns):
    t = two_campaigns
    now = timezone.now()

    interaction_transfer_to_campaign(
        interaction_id=t.interaction.pk, by=t.agent, campaign=t.target, note="sales", now=now
    )

    stored = fresh(t.interaction)
    assert (stored.status, stored.campaign_id, stored.agent_id) == (S.QUEUED, t.target.pk, None)
    assert (stored.queued_at, stored.queue_deadline_at) == (now, now + seconds(120))
    assert (stored.left_queue_at, stored.queue_outcome, stored.service_level_met) == (
        None,
        "",
        None,
    )
    assert (stored.finished_at, stored.close_reason) == (None, "")
    assert events(t.interaction) == [
        ("", S.QUEUED, "new conversation", Actor.CUSTOMER, None),
        (S.QUEUED, S.ASSIGNED, "routed (linear)", Actor.SYSTEM, None),
        (S.ASSIGNED, S.QUEUED, "transferred to campaign", Actor.AGENT, t.agent.pk),
    ]
    assert last_event(t.interaction).data == {
        "from_campaign": t.source.pk,
        "to_campaign": t.target.pk,
        "note": "sales",
    }


def test_transfer_to_campaign_routes_in_the_new_campaign(
    two_campaigns, django_capture_on_commit_callbacks
):
    t = two_campaigns
    there = agent_in(t.target)

    with django_capture_on_commit_callbacks(execute=True):
        interaction_transfer_to_campaign(
            interaction_id=t.interaction.pk, by=t.agent, campaign=t.target
        )

    stored = fresh(t.interaction)
    assert (stored.status, stored.campaign_id, stored.agent_id) == (
        S.ASSIGNED,
        t.target.pk,
        there.pk,
    )


def test_transfer_to_campaign_without_a_deadline(two_campaigns):
    t = two_campaigns
    SmsChannel.objects.filter(campaign=t.target).update(max_queue_seconds=0)

    interaction_transfer_to_campaign(interaction_id=t.interaction.pk, by=t.agent, campaign=t.target)

    assert fresh(t.interaction).queue_deadline_at is None


def test_transfer_to_campaign_refused_when_the_customer_is_already_there(two_campaigns):
    t = two_campaigns
    enqueue(t.target, number=t.interaction.customer_number)

    with pytest.raises(ApplicationError) as excinfo:
        interaction_transfer_to_campaign(
            interaction_id=t.interaction.pk, by=t.agent, campaign=t.target
        )

    assert str(excinfo.value) == (
        f"{t.interaction.customer_number} already has an open conversation in “{t.target}”."
    )
    stored = fresh(t.interaction)
    assert (stored.status, stored.campaign_id, stored.agent_id) == (
        S.ASSIGNED,
        t.source.pk,
        t.agent.pk,
    )


def test_transfer_to_campaign_allowed_when_the_customers_old_one_there_is_closed(two_campaigns):
    t = two_campaigns
    InteractionFactory(
        campaign=t.target, customer_number=t.interaction.customer_number, status=S.FINISHED
    )

    interaction_transfer_to_campaign(interaction_id=t.interaction.pk, by=t.agent, campaign=t.target)

    assert fresh(t.interaction).campaign_id == t.target.pk


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: SmsChannel.objects.filter(campaign=c).update(status="disabled"),
            "Campaign “{c}” has its channel disabled.",
        ),
        (
            lambda c: Campaign.objects.filter(pk=c.pk).update(active=False),
            "Campaign “{c}” is inactive.",
        ),
        (
            lambda c: SmsChannel.objects.filter(campaign=c).delete(),
            "This campaign has no SMS channel.",
        ),
    ],
)
def test_transfer_to_campaign_refused_when_it_cannot_take_conversations(
    two_campaigns, change, message
):
    t = two_campaigns
    change(t.target)
    t.target.refresh_from_db()

    with pytest.raises(ApplicationError) as excinfo:
        interaction_transfer_to_campaign(
            interaction_id=t.interaction.pk, by=t.agent, campaign=t.target
        )

    assert str(excinfo.value) == message.format(c=t.target)
    assert fresh(t.interaction).campaign_id == t.source.pk


def test_transfer_to_the_same_campaign_is_refused(two_campaigns):
    t = two_campaigns

    with pytest.raises(
        ApplicationError, match=exactly("The conversation is already in that campaign.")
    ):
        interaction_transfer_to_campaign(
            interaction_id=t.interaction.pk, by=t.agent, campaign=t.source
        )


def test_transfer_to_campaign_withdraws_a_pending_offer(two_campaigns):
    t = two_campaigns
    receiver = agent_in(t.source)
    interaction_transfer_to_agent(interaction_id=t.interaction.pk, by=t.agent, to_agent=receiver)

    interaction_transfer_to_campaign(interaction_id=t.interaction.pk, by=t.agent, campaign=t.target)

    stored = fresh(t.interaction)
    assert (stored.status, stored.transfer_to_id, stored.transfer_deadline_at) == (
        S.QUEUED,
        None,
        None,
    )
    assert (held_count(t.agent), held_count(receiver)) == (0, 0)


# Finishing ------------------------------------------------------------------------------


@pytest.fixture
def finishing():
    """An agent holding a conversation in a campaign with one active disposition."""
    channel = make_channel()
    agent = agent_in(channel.campaign)
    interaction = held_by(agent, channel.campaign)
    disposition = DispositionFactory(campaign=channel.campaign, name="Resolved")
    return types.SimpleNamespace(
        channel=channel, agent=agent, interaction=interaction, disposition=disposition
    )


def test_finish_with_a_disposition(finishing):
    f = finishing
    now = timezone.now()

    interaction_finish(
        interaction_id=f.interaction.pk,
        by=f.agent,
        disposition_id=f.disposition.pk,
        note="refund sent",
        now=now,
    )

    stored = fresh(f.interaction)
    assert (stored.status, stored.agent_id, stored.disposition_id) == (
        S.FINISHED,
        f.agent.pk,
        f.disposition.pk,
    )
    assert (stored.finished_at, stored.close_reason) == (now, "finished")
    event = last_event(f.interaction)
    assert (event.from_status, event.to_status, event.reason, event.actor, event.user_id) == (
        S.ASSIGNED,
        S.FINISHED,
        "finished",
        Actor.AGENT,
        f.agent.pk,
    )
    assert event.data == {"note": "refund sent"}


def test_finish_requires_a_disposition_when_the_campaign_has_some(finishing):
    f = finishing

    with pytest.raises(
        ApplicationError, match=exactly("Pick a disposition to finish this conversation.")
    ):
        interaction_finish(interaction_id=f.interaction.pk, by=f.agent)

    assert fresh(f.interaction).status == S.ASSIGNED
    assert not InteractionEvent.objects.exists()


@pytest.mark.parametrize(
    "other_disposition",
    [
        lambda f: DispositionFactory(),  # Another campaign's.
        lambda f: DispositionFactory(campaign=f.channel.campaign, active=False),
    ],
)
def test_finish_refuses_a_disposition_not_in_the_campaigns_list(finishing, other_disposition):
    f = finishing

    with pytest.raises(
        ApplicationError, match=exactly("That disposition is not one of this campaign's.")
    ):
        interaction_finish(
            interaction_id=f.interaction.pk, by=f.agent, disposition_id=other_disposition(f).pk
        )

    assert fresh(f.interaction).status == S.ASSIGNED


def test_finish_without_active_dispositions_needs_none(finishing):
    f = finishing
    f.disposition.active = False
    f.disposition.save(update_fields=["active"])

    interaction_finish(interaction_id=f.interaction.pk, by=f.agent)

    stored = fresh(f.interaction)
    assert (stored.status, stored.disposition_id) == (S.FINISHED, None)
    assert last_event(f.interaction).data == {}


def test_an_agent_cannot_finish_another_agents_conversation(finishing):
    f = finishing
    other = agent_in(f.channel.campaign)

    with pytest.raises(ApplicationError, match=exactly("No such conversation.")):
        interaction_finish(
            interaction_id=f.interaction.pk, by=other, disposition_id=f.disposition.pk
        )

    assert fresh(f.interaction).status == S.ASSIGNED


def test_finishing_a_missing_conversation_is_refused(finishing):
    with pytest.raises(ApplicationError, match=exactly("No such conversation.")):
        interaction_finish(interaction_id=10**9, by=finishing.agent)


def test_a_supervisor_can_finish_any_conversation(finishing):
    f = finishing
    supervisor = SupervisorFactory()

    interaction_finish(
        interaction_id=f.interaction.pk, by=supervisor, disposition_id=f.disposition.pk
    )

    assert fresh(f.interaction).status == S.FINISHED
    assert events(f.interaction) == [
        (S.ASSIGNED, S.FINISHED, "finished", Actor.SUPERVISOR, supervisor.pk)
    ]


def test_finish_while_transferring_withdraws_the_offer(finishing):
    f = finishing
    receiver = agent_in(f.channel.campaign)
    interaction_transfer_to_agent(interaction_id=f.interaction.pk, by=f.agent, to_agent=receiver)

    interaction_finish(interaction_id=f.interaction.pk, by=f.agent, disposition_id=f.disposition.pk)

    stored = fresh(f.interaction)
    assert (stored.status, stored.transfer_to_id, stored.transfer_deadline_at) == (
        S.FINISHED,
        None,
        None,
    )
    assert held_count(receiver) == 0


def test_finish_frees_capacity_for_the_queue(finishing, django_capture_on_commit_callbacks):
    f = finishing
    AgentProfile.objects.filter(user=f.agent).update(capacity=1)
    waiting = enqueue(f.channel.campaign)

    with django_capture_on_commit_callbacks(execute=True):
        interaction_finish(
            interaction_id=f.interaction.pk, by=f.agent, disposition_id=f.disposition.pk
        )

    assert (fresh(waiting).status, holder(waiting)) == (S.ASSIGNED, f.agent.pk)


def test_finish_tells_the_channel_after_commit(
    finishing, channel_calls, django_capture_on_commit_callbacks
):
    # The channel starts the bot on finish; it must not run before the commit.
    f = finishing

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        interaction_finish(
            interaction_id=f.interaction.pk, by=f.agent, disposition_id=f.disposition.pk
        )
    assert channel_calls == []
    for callback in callbacks:
        callback()

    assert channel_calls == [("interaction_finished", f.interaction.pk)]


# Closing and reassigning (supervisors) -------------------------------------------------


def test_close_abandons_a_waiting_conversation():
    channel = make_channel(service_level_seconds=20)
    supervisor = SupervisorFactory()
    now = timezone.now()
    interaction = enqueue(channel.campaign, at=now - seconds(15))

    interaction_close(interaction_id=interaction.pk, by=supervisor, now=now)

    stored = fresh(interaction)
    assert (stored.status, stored.queue_outcome, stored.agent_id) == (
        S.ABANDONED,
        Outcome.ABANDONED,
        None,
    )
    assert (stored.left_queue_at, stored.finished_at) == (now, now)
    assert stored.close_reason == "closed by a supervisor"
    # Left within the service level (counted by "SL% with abandoned").
    assert stored.service_level_met is True
    assert events(interaction)[-1] == (
        S.QUEUED,
        S.ABANDONED,
        "closed by a supervisor",
        Actor.SUPERVISOR,
        supervisor.pk,
    )


def test_close_finishes_a_held_conversation_without_a_disposition(finishing):
    f = finishing
    supervisor = SupervisorFactory()
    now = timezone.now()

    interaction_close(
        interaction_id=f.interaction.pk, by=supervisor, reason="  customer called  ", now=now
    )

    stored = fresh(f.interaction)
    assert (stored.status, stored.disposition_id, stored.finished_at) == (S.FINISHED, None, now)
    assert stored.close_reason == "customer called"
    assert events(f.interaction) == [
        (S.ASSIGNED, S.FINISHED, "customer called", Actor.SUPERVISOR, supervisor.pk)
    ]


def test_an_agent_cannot_close_even_their_own_conversation(finishing):
    f = finishing

    with pytest.raises(ApplicationError, match=exactly("No such conversation.")):
        interaction_close(interaction_id=f.interaction.pk, by=f.agent)

    assert fresh(f.interaction).status == S.ASSIGNED


def test_abandoning_does_not_tell_the_channel_but_closing_a_held_one_does(
    channel_calls, django_capture_on_commit_callbacks
):
    channel = make_channel()
    supervisor = SupervisorFactory()
    waiting = enqueue(channel.campaign)
    held = held_by(agent_in(channel.campaign), channel.campaign)

    with django_capture_on_commit_callbacks(execute=True):
        interaction_close(interaction_id=waiting.pk, by=supervisor)
        interaction_close_by_customer(interaction_id=held.pk, reason="opt-out", now=timezone.now())

    assert channel_calls == [("interaction_finished", held.pk)]


def test_reassign_a_held_conversation():
    channel = make_channel()
    supervisor = SupervisorFactory()
    first = agent_in(channel.campaign)
    # The supervisor decides: the receiver need not be available.
    second = agent_in(channel.campaign, status=OFFLINE)
    interaction = held_by(first, channel.campaign)
    now = timezone.now()

    interaction_reassign(interaction_id=interaction.pk, by=supervisor, to_agent=second, now=now)

    stored = fresh(interaction)
    assert (stored.status, stored.agent_id, stored.assigned_at) == (S.ASSIGNED, second.pk, now)
    event = last_event(interaction)
    assert (event.from_status, event.to_status, event.reason, event.actor, event.user_id) == (
        S.ASSIGNED,
        S.ASSIGNED,
        "reassigned",
        Actor.SUPERVISOR,
        supervisor.pk,
    )
    assert event.data == {"from_agent": first.pk, "to_agent": second.pk}


def test_reassign_a_waiting_conversation_leaves_the_queue():
    channel = make_channel(service_level_seconds=20)
    supervisor = SupervisorFactory()
    agent = agent_in(channel.campaign, status=BREAK)
    now = timezone.now()
    interaction = enqueue(channel.campaign, at=now - seconds(30))

    interaction_reassign(interaction_id=interaction.pk, by=supervisor, to_agent=agent, now=now)

    stored = fresh(interaction)
    assert (stored.status, stored.agent_id, stored.assigned_at) == (S.ASSIGNED, agent.pk, now)
    assert (stored.left_queue_at, stored.queue_outcome, stored.service_level_met) == (
        now,
        Outcome.ATTENDED,
        False,
    )
    assert stored.queue_deadline_at is None
    assert events(interaction)[-1] == (
        S.QUEUED,
        S.ASSIGNED,
        "reassigned",
        Actor.SUPERVISOR,
        supervisor.pk,
    )
    assert last_event(interaction).data == {"from_agent": None, "to_agent": agent.pk}


def test_reassign_withdraws_a_pending_offer():
    channel = make_channel()
    supervisor = SupervisorFactory()
    sender, receiver, third = (agent_in(channel.campaign) for _ in range(3))
    interaction = offered(sender, receiver, channel.campaign)

    interaction_reassign(interaction_id=interaction.pk, by=supervisor, to_agent=third)

    stored = fresh(interaction)
    assert (stored.status, stored.agent_id, stored.transfer_to_id) == (S.ASSIGNED, third.pk, None)
    assert events(interaction)[-1][:3] == (S.TRANSFERRING, S.ASSIGNED, "reassigned")
    assert (held_count(sender), held_count(receiver)) == (0, 0)


def test_reassign_refusals():
    channel = make_channel()
    supervisor = SupervisorFactory()
    agent = agent_in(channel.campaign)
    full = agent_in(channel.campaign, capacity=1)
    held_by(full, channel.campaign)
    outsider = agent_in(CampaignFactory())
    interaction = held_by(agent, channel.campaign)

    with pytest.raises(
        ApplicationError, match=exactly("The conversation is already with that agent.")
    ):
        interaction_reassign(interaction_id=interaction.pk, by=supervisor, to_agent=agent)
    with pytest.raises(ApplicationError, match="is at their capacity of 1 conversation"):
        interaction_reassign(interaction_id=interaction.pk, by=supervisor, to_agent=full)
    with pytest.raises(ApplicationError, match="is not an active member of campaign"):
        interaction_reassign(interaction_id=interaction.pk, by=supervisor, to_agent=outsider)
    with pytest.raises(ApplicationError, match=exactly("No such conversation.")):
        interaction_reassign(interaction_id=interaction.pk, by=agent, to_agent=full)

    assert holder(interaction) == agent.pk
    assert not InteractionEvent.objects.filter(interaction=interaction).exists()


# Queue timeouts --------------------------------------------------------------------------


def test_queue_sweep_times_out_due_conversations_once():
    channel = make_channel(max_queue_seconds=60, service_level_seconds=20)
    no_limit = make_channel(max_queue_seconds=0)
    start = timezone.now() - seconds(600)
    due = enqueue(channel.campaign, at=start)
    later = enqueue(channel.campaign, at=start + seconds(30))
    unlimited = enqueue(no_limit.campaign, at=start - seconds(3600))
    deadline = start + seconds(60)

    assert sweep_queue_timeouts(now=deadline - seconds(1)) == []
    assert sweep_queue_timeouts(now=deadline) == [due.pk]

    stored = fresh(due)
    assert (stored.status, stored.queue_outcome, stored.close_reason) == (
        S.TIMED_OUT,
        Outcome.TIMED_OUT,
        "timed_out",
    )
    assert (stored.left_queue_at, stored.finished_at, stored.queue_deadline_at) == (
        deadline,
        deadline,
        None,
    )
    assert stored.service_level_met is False
    event = last_event(due)
    assert (event.from_status, event.to_status, event.reason, event.actor, event.user_id) == (
        S.QUEUED,
        S.TIMED_OUT,
        "maximum time in queue",
        Actor.SYSTEM,
        None,
    )
    assert event.created_at == deadline
    assert fresh(later).status == S.QUEUED
    assert fresh(later).queue_deadline_at == start + seconds(90)
    assert fresh(unlimited).queue_deadline_at is None

    # A second sweep finds nothing new to fire.
    assert sweep_queue_timeouts(now=deadline) == []
    assert len(events(due)) == 2

    assert sweep_queue_timeouts(now=start + seconds(90)) == [later.pk]
    assert sweep_queue_timeouts(now=start + datetime.timedelta(days=365)) == []
    assert fresh(unlimited).status == S.QUEUED


def test_queue_sweep_respects_the_batch_size():
    channel = make_channel(max_queue_seconds=10)
    start = timezone.now() - seconds(600)
    queued = [enqueue(channel.campaign, at=start + seconds(i)) for i in range(3)]

    assert sweep_queue_timeouts(now=timezone.now(), batch_size=2) == [queued[0].pk, queued[1].pk]
    assert sweep_queue_timeouts(now=timezone.now(), batch_size=2) == [queued[2].pk]


def test_queue_sweep_leaves_assigned_conversations_alone():
    channel = make_channel(max_queue_seconds=10)
    agent_in(channel.campaign)
    interaction = enqueue(channel.campaign, at=timezone.now() - seconds(5))
    route_campaign(campaign_id=channel.campaign_id)

    assert sweep_queue_timeouts(now=timezone.now() + seconds(3600)) == []
    assert fresh(interaction).status == S.ASSIGNED


def test_queue_sweep_tells_the_channel_of_each_timeout_after_commit(
    channel_calls, django_capture_on_commit_callbacks
):
    # The channel starts the bot after timeout, once per conversation.
    channel = make_channel(max_queue_seconds=10)
    start = timezone.now() - seconds(60)
    first = enqueue(channel.campaign, at=start)
    second = enqueue(channel.campaign, at=start + seconds(1))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert sweep_queue_timeouts() == [first.pk, second.pk]
    assert channel_calls == []
    for callback in callbacks:
        callback()

    assert channel_calls == [
        ("interaction_timed_out", first.pk),
        ("interaction_timed_out", second.pk),
    ]


# Illegal transitions ----------------------------------------------------------------------


def test_finishing_a_finished_conversation_is_refused(finishing):
    f = finishing
    interaction_finish(interaction_id=f.interaction.pk, by=f.agent, disposition_id=f.disposition.pk)

    with pytest.raises(ApplicationError) as excinfo:
        interaction_finish(
            interaction_id=f.interaction.pk, by=f.agent, disposition_id=f.disposition.pk
        )

    assert str(excinfo.value) == (
        f"Conversation #{f.interaction.pk} is finished; it cannot become finished."
    )
    assert len(events(f.interaction)) == 1


def test_transferring_a_waiting_conversation_is_refused():
    channel = make_channel()
    supervisor = SupervisorFactory()
    agent = agent_in(channel.campaign)
    interaction = enqueue(channel.campaign)

    with pytest.raises(ApplicationError) as excinfo:
        interaction_transfer_to_agent(interaction_id=interaction.pk, by=supervisor, to_agent=agent)

    assert str(excinfo.value) == (
        f"Conversation #{interaction.pk} is queued; it cannot become transferring."
    )
    assert fresh(interaction).status == S.QUEUED


def test_a_supervisor_cannot_finish_a_waiting_conversation():
    # Waiting conversations are closed (abandoned), not finished.
    channel = make_channel()
    interaction = enqueue(channel.campaign)

    with pytest.raises(
        ApplicationError, match=exactly("Only a conversation an agent holds can be finished.")
    ):
        interaction_finish(interaction_id=interaction.pk, by=SupervisorFactory())

    assert fresh(interaction).status == S.QUEUED


@pytest.mark.parametrize("status", [S.TIMED_OUT, S.FINISHED, S.ABANDONED, S.REJECTED])
def test_closed_conversations_cannot_be_closed_or_reassigned(status):
    channel = make_channel()
    agent = agent_in(channel.campaign)
    interaction = InteractionFactory(
        campaign=channel.campaign, status=status, reject_reason="queue_full"
    )
    supervisor = SupervisorFactory()
    label = Interaction.Status(status).label.lower()

    with pytest.raises(ApplicationError) as closing:
        interaction_close(interaction_id=interaction.pk, by=supervisor)
    with pytest.raises(ApplicationError) as reassigning:
        interaction_reassign(interaction_id=interaction.pk, by=supervisor, to_agent=agent)

    prefix = f"Conversation #{interaction.pk} is {label}; it cannot become"
    assert str(closing.value) == f"{prefix} finished."
    assert str(reassigning.value) == f"{prefix} assigned."
    assert fresh(interaction).status == status


def test_transferring_a_conversation_that_is_being_transferred_is_refused(transfer_setup):
    t = transfer_setup
    third = agent_in(t.channel.campaign)
    interaction_transfer_to_agent(interaction_id=t.interaction.pk, by=t.sender, to_agent=t.receiver)

    with pytest.raises(
        ApplicationError,
        match=exactly(
            f"Conversation #{t.interaction.pk} is transferring; it cannot become transferring."
        ),
    ):
        interaction_transfer_to_agent(interaction_id=t.interaction.pk, by=t.sender, to_agent=third)

    assert fresh(t.interaction).transfer_to_id == t.receiver.pk


# The customer leaves -------------------------------------------------------------------------


def test_customer_leaving_a_waiting_conversation_abandons_it():
    channel = make_channel(service_level_seconds=20)
    now = timezone.now()
    interaction = enqueue(channel.campaign, at=now - seconds(25))

    interaction_close_by_customer(interaction_id=interaction.pk, reason="opt-out (STOP)", now=now)

    stored = fresh(interaction)
    assert (stored.status, stored.queue_outcome, stored.close_reason) == (
        S.ABANDONED,
        Outcome.ABANDONED,
        "opt-out (STOP)",
    )
    assert (stored.left_queue_at, stored.finished_at) == (now, now)
    assert stored.service_level_met is False
    assert events(interaction)[-1] == (
        S.QUEUED,
        S.ABANDONED,
        "opt-out (STOP)",
        Actor.CUSTOMER,
        None,
    )


def test_customer_leaving_a_held_conversation_finishes_it(
    finishing, django_capture_on_commit_callbacks
):
    f = finishing
    AgentProfile.objects.filter(user=f.agent).update(capacity=1)
    waiting = enqueue(f.channel.campaign)
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        interaction_close_by_customer(
            interaction_id=f.interaction.pk, reason="opt-out (STOP)", now=now
        )

    stored = fresh(f.interaction)
    assert (stored.status, stored.finished_at, stored.close_reason, stored.disposition_id) == (
        S.FINISHED,
        now,
        "opt-out (STOP)",
        None,
    )
    assert events(f.interaction) == [
        (S.ASSIGNED, S.FINISHED, "opt-out (STOP)", Actor.CUSTOMER, None)
    ]
    # The agent's slot went to the waiting conversation.
    assert holder(waiting) == f.agent.pk


def test_customer_leaving_a_closed_conversation_changes_nothing():
    channel = make_channel()
    interaction = InteractionFactory(campaign=channel.campaign, status=S.TIMED_OUT)

    interaction_close_by_customer(
        interaction_id=interaction.pk, reason="opt-out", now=timezone.now()
    )

    assert fresh(interaction).status == S.TIMED_OUT
    assert not InteractionEvent.objects.exists()


def test_a_bot_cannot_requeue_into_a_campaign_with_its_channel_disabled():
    channel = make_channel()
    overflow = make_channel(status=SmsChannel.Status.DISABLED)
    interaction = InteractionFactory(
        campaign=channel.campaign, status=S.TIMED_OUT, queue_outcome=Outcome.TIMED_OUT
    )

    with pytest.raises(ApplicationError, match="has its channel disabled"):
        routing.interaction_bot_requeue(
            interaction_id=interaction.pk, campaign_name=overflow.campaign.name
        )

    assert fresh(interaction).status == S.TIMED_OUT
