"""Read queries of the campaigns app, for views, the admin and the dashboard."""

import datetime
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import (
    Avg,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.functions import TruncHour

from campaigns import strategies
from campaigns.channels import QueueSettings, TranscriptEntry, get_channel, registered_channels
from campaigns.models import (
    AgentProfile,
    Blacklist,
    BlacklistEntry,
    Campaign,
    Disposition,
    Interaction,
    InteractionEvent,
    Member,
    display_name,
)
from campaigns.routing import agent_loads, eligible_agents

BLACKLIST_CSV_HEADER = ["number", "reason", "added_by", "added_at"]

# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def blacklist_csv_rows(*, blacklist: Blacklist) -> Iterator[list[str]]:
    """Yield the export of `blacklist` as CSV rows, header first, by number."""
    yield BLACKLIST_CSV_HEADER
    entries = blacklist.entries.select_related("added_by").order_by("number")
    for entry in entries.iterator(chunk_size=2000):
        added_by = entry.added_by.get_username() if entry.added_by else ""
        # Numbers start with "+" by design and are E.164 digits only, so
        # only the free-text columns need defusing.
        yield [
            entry.number,
            _defuse_formula(entry.reason),
            _defuse_formula(added_by),
            entry.added_at.isoformat(timespec="seconds"),
        ]


def _defuse_formula(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_PREFIXES) else value


def open_interaction_for(
    *, campaign: Campaign, channel_kind: str, customer_number: str
) -> Interaction | None:
    """The customer's conversation in the campaign that is still open, if any."""
    return Interaction.objects.filter(
        campaign=campaign,
        channel_kind=channel_kind,
        customer_number=customer_number,
        status__in=Interaction.OPEN_STATUSES,
    ).first()


def campaign_queued_count(*, campaign: Campaign) -> int:
    """How many conversations wait in the campaign's queue now."""
    return Interaction.objects.filter(campaign=campaign, status=Interaction.Status.QUEUED).count()


def number_is_listed(*, number: str, blacklist_ids: list[int]) -> bool:
    """True when `number` is on any of the given blacklists."""
    if not blacklist_ids:
        return False
    return BlacklistEntry.objects.filter(number=number, blacklist_id__in=blacklist_ids).exists()


@dataclass(frozen=True)
class PeriodStatistics:
    """Queue figures for the conversations that entered a campaign's queue in a period."""

    entered: int
    attended: int
    attended_within: int
    timed_out: int
    abandoned: int
    abandoned_within: int
    sl_percent: float | None
    sl_percent_with_abandoned: float | None
    average_wait_seconds: float | None
    longest_wait_seconds: float | None
    rejected_by_reason: dict[str, int]


def campaign_period_statistics(
    *, campaign_id: int, start: datetime.datetime, end: datetime.datetime
) -> PeriodStatistics:
    """Count the queue stays that began in [start, end) and the rejections created then.

    Two queries: one aggregate over the cohort, one count per reject reason.
    """
    outcome = Interaction.QueueOutcome
    attended = Q(queue_outcome=outcome.ATTENDED)
    wait = ExpressionWrapper(F("left_queue_at") - F("queued_at"), output_field=DurationField())
    figures = Interaction.objects.filter(
        campaign_id=campaign_id, queued_at__gte=start, queued_at__lt=end
    ).aggregate(
        entered=Count("id"),
        attended=Count("id", filter=attended),
        attended_within=Count("id", filter=attended & Q(service_level_met=True)),
        timed_out=Count("id", filter=Q(queue_outcome=outcome.TIMED_OUT)),
        abandoned=Count("id", filter=Q(queue_outcome=outcome.ABANDONED)),
        abandoned_within=Count(
            "id", filter=Q(queue_outcome=outcome.ABANDONED, service_level_met=True)
        ),
        average_wait=Avg(wait, filter=attended),
        longest_wait=Max(wait, filter=attended),
    )
    rejected = (
        Interaction.objects.filter(
            campaign_id=campaign_id,
            status=Interaction.Status.REJECTED,
            created_at__gte=start,
            created_at__lt=end,
        )
        .values_list("reject_reason")
        .annotate(count=Count("id"))
        .order_by("reject_reason")
    )
    left = figures["attended"] + figures["timed_out"] + figures["abandoned"]
    return PeriodStatistics(
        entered=figures["entered"],
        attended=figures["attended"],
        attended_within=figures["attended_within"],
        timed_out=figures["timed_out"],
        abandoned=figures["abandoned"],
        abandoned_within=figures["abandoned_within"],
        sl_percent=_percent(figures["attended_within"], left),
        sl_percent_with_abandoned=_percent(
            figures["attended_within"] + figures["abandoned_within"], left
        ),
        average_wait_seconds=_seconds(figures["average_wait"]),
        longest_wait_seconds=_seconds(figures["longest_wait"]),
        rejected_by_reason=dict(rejected),
    )


def _percent(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def _seconds(duration: datetime.timedelta | None) -> float | None:
    return round(duration.total_seconds(), 1) if duration is not None else None


@dataclass(frozen=True)
class CampaignStatistics:
    """What a supervisor's dashboard shows for one campaign."""

    today: PeriodStatistics
    last_hour: PeriodStatistics
    queued_now: int
    longest_waiting_seconds: float | None
    agents_by_status: dict[str, int]
    agents_busy: int


def campaign_statistics(*, campaign: Campaign, now: datetime.datetime) -> CampaignStatistics:
    """The campaign's figures for today (its time zone), the last hour and right now.

    A fixed number of queries whatever the number of conversations or agents.
    """
    # A zoneinfo midnight that falls in a DST gap resolves to the end of the
    # gap, and an ambiguous one to its first occurrence: the start of the day.
    local_midnight = datetime.datetime.combine(
        now.astimezone(campaign.time_zone).date(), datetime.time(0), tzinfo=campaign.time_zone
    )
    waiting = Interaction.objects.filter(
        campaign=campaign, status=Interaction.Status.QUEUED
    ).aggregate(count=Count("id"), oldest=Min("queued_at"))
    load = Interaction.objects.filter(
        agent_id=OuterRef("agent_id"),
        status__in=[Interaction.Status.ASSIGNED, Interaction.Status.TRANSFERRING],
    )
    agents = Member.objects.filter(campaign=campaign, active=True).aggregate(
        busy=Count("id", filter=Q(Exists(load))),
        **{
            status: Count("id", filter=Q(agent__agent_profile__status=status))
            for status in AgentProfile.Status.values
        },
    )
    busy = agents.pop("busy")
    return CampaignStatistics(
        today=campaign_period_statistics(campaign_id=campaign.pk, start=local_midnight, end=now),
        last_hour=campaign_period_statistics(
            campaign_id=campaign.pk, start=now - datetime.timedelta(hours=1), end=now
        ),
        queued_now=waiting["count"],
        longest_waiting_seconds=(
            _seconds(now - waiting["oldest"]) if waiting["oldest"] is not None else None
        ),
        agents_by_status=agents,
        agents_busy=busy,
    )


def campaigns_with_queue() -> list[int]:
    """Ids of the campaigns with at least one conversation waiting."""
    return list(
        Interaction.objects.filter(status=Interaction.Status.QUEUED)
        .order_by()
        .values_list("campaign_id", flat=True)
        .distinct()
    )


# How many recent assignments the estimated wait averages over, and how far back.
ESTIMATE_SAMPLE = 20
ESTIMATE_WINDOW = datetime.timedelta(hours=2)


def queue_position(*, interaction: Interaction) -> int | None:
    """1 for the next conversation to be served; None when it is not waiting."""
    if interaction.status != Interaction.Status.QUEUED or interaction.queued_at is None:
        return None
    ahead = Interaction.objects.filter(
        Q(queued_at__lt=interaction.queued_at)
        | Q(queued_at=interaction.queued_at, pk__lt=interaction.pk),
        campaign_id=interaction.campaign_id,
        status=Interaction.Status.QUEUED,
    ).count()
    return ahead + 1


def estimated_wait_seconds(*, campaign_id: int, now: datetime.datetime) -> float | None:
    """The average wait of the campaign's latest assignments; None without recent ones."""
    recent = (
        Interaction.objects.filter(
            campaign_id=campaign_id,
            queue_outcome=Interaction.QueueOutcome.ATTENDED,
            queued_at__gte=now - ESTIMATE_WINDOW,
        )
        .order_by("-queued_at")
        .annotate(wait=ExpressionWrapper(F("left_queue_at") - F("queued_at"), DurationField()))
        .values_list("wait", flat=True)[:ESTIMATE_SAMPLE]
    )
    waits = [w.total_seconds() for w in recent if w is not None]
    return round(sum(waits) / len(waits), 1) if waits else None


def describe_wait(seconds: float | None) -> str:
    """A wait as a customer reads it in an SMS."""
    if seconds is None:
        return "a few minutes"
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    return "about 1 minute" if minutes == 1 else f"about {minutes} minutes"


def queue_placeholders(*, interaction: Interaction, now: datetime.datetime) -> dict[str, str]:
    """`{queue_position}` and `{estimated_wait}` for templates and bots."""
    position = queue_position(interaction=interaction)
    return {
        "queue_position": str(position) if position is not None else "",
        "estimated_wait": describe_wait(
            estimated_wait_seconds(campaign_id=interaction.campaign_id, now=now)
        ),
    }


# The supervisor dashboard ---------------------------------------------------------

_HELD = (Interaction.Status.ASSIGNED, Interaction.Status.TRANSFERRING)
_WAIT = ExpressionWrapper(F("left_queue_at") - F("queued_at"), output_field=DurationField())
# The campaign page lists this many waiting conversations; the count covers them all.
QUEUE_DISPLAY_LIMIT = 100


def local_midnight(*, now: datetime.datetime, time_zone) -> datetime.datetime:
    """The start of today in `time_zone`, as `campaign_statistics` reckons it."""
    return datetime.datetime.combine(
        now.astimezone(time_zone).date(), datetime.time(0), tzinfo=time_zone
    )


@dataclass(frozen=True)
class CampaignOverview:
    """One campaign's live figures on the supervisor dashboard."""

    campaign: Campaign
    statistics: CampaignStatistics
    # Satisfaction surveys answered today (campaign time zone), scored 1-5.
    satisfaction_answers: int
    satisfaction_average: float | None

    @property
    def longest_waiting(self) -> str:
        return duration_text(self.statistics.longest_waiting_seconds)

    @property
    def average_wait_today(self) -> str:
        return duration_text(self.statistics.today.average_wait_seconds)

    @property
    def rejected_today(self) -> list[tuple[str, int]]:
        """Today's rejections by reason, as (label, count), most frequent first."""
        labels = dict(Interaction.RejectReason.choices)
        counts = self.statistics.today.rejected_by_reason
        return sorted(
            ((labels.get(reason, reason), n) for reason, n in counts.items()),
            key=lambda item: (-item[1], item[0]),
        )

    @property
    def rejected_today_total(self) -> int:
        return sum(self.statistics.today.rejected_by_reason.values())


def campaigns_overview(*, now: datetime.datetime) -> list[CampaignOverview]:
    """Every active campaign's figures, by name, in a fixed number of queries.

    The same figures as `campaign_statistics`, but each query is grouped by
    campaign instead of run once per campaign.
    """
    return _overviews(list(Campaign.objects.filter(active=True).order_by("name")), now=now)


def campaign_overview(*, campaign: Campaign, now: datetime.datetime) -> CampaignOverview:
    """One campaign's figures, as the overview shows them."""
    (overview,) = _overviews([campaign], now=now)
    return overview


def _overviews(campaigns: list[Campaign], *, now: datetime.datetime) -> list[CampaignOverview]:
    if not campaigns:
        return []
    ids = [c.pk for c in campaigns]
    hour_ago = now - datetime.timedelta(hours=1)
    # Campaigns whose day began at the same instant share one condition, so
    # the SQL grows with the number of distinct time zones, not campaigns.
    by_midnight: dict[datetime.datetime, list[int]] = {}
    for campaign in campaigns:
        midnight = local_midnight(now=now, time_zone=campaign.time_zone)
        by_midnight.setdefault(midnight, []).append(campaign.pk)
    since = min(*by_midnight, hour_ago)

    def today(field: str) -> Q:
        condition = Q()
        for midnight, campaign_ids in by_midnight.items():
            condition |= Q(campaign_id__in=campaign_ids, **{f"{field}__gte": midnight})
        return condition

    # Named after the CampaignStatistics fields they fill.
    periods = {"today": today("queued_at"), "last_hour": Q(queued_at__gte=hour_ago)}
    cohorts = {
        row.pop("campaign_id"): row
        for row in Interaction.objects.filter(
            campaign_id__in=ids, queued_at__gte=since, queued_at__lt=now
        )
        .values("campaign_id")
        .annotate(**_period_aggregates(periods))
        .order_by()
    }
    rejected: dict[int, dict[str, dict[str, int]]] = {}
    for row in (
        Interaction.objects.filter(
            campaign_id__in=ids,
            status=Interaction.Status.REJECTED,
            created_at__gte=since,
            created_at__lt=now,
        )
        .values("campaign_id", "reject_reason")
        .annotate(
            today=Count("id", filter=today("created_at")),
            last_hour=Count("id", filter=Q(created_at__gte=hour_ago)),
        )
        .order_by("campaign_id", "reject_reason")
    ):
        for period in periods:
            if row[period]:
                reasons = rejected.setdefault(row["campaign_id"], {}).setdefault(period, {})
                reasons[row["reject_reason"]] = row[period]
    waiting = {
        row["campaign_id"]: row
        for row in Interaction.objects.filter(campaign_id__in=ids, status=Interaction.Status.QUEUED)
        .values("campaign_id")
        .annotate(count=Count("id"), oldest=Min("queued_at"))
        .order_by()
    }
    load = Interaction.objects.filter(agent_id=OuterRef("agent_id"), status__in=_HELD)
    agents = {
        row.pop("campaign_id"): row
        for row in Member.objects.filter(campaign_id__in=ids, active=True)
        .values("campaign_id")
        .annotate(
            busy=Count("id", filter=Q(Exists(load))),
            **{
                status: Count("id", filter=Q(agent__agent_profile__status=status))
                for status in AgentProfile.Status.values
            },
        )
        .order_by()
    }
    satisfaction = _satisfaction(by_midnight, now=now)
    no_agents = {"busy": 0, **dict.fromkeys(AgentProfile.Status.values, 0)}
    overviews = []
    for campaign in campaigns:
        cohort = cohorts.get(campaign.pk, {})
        queue = waiting.get(campaign.pk, {"count": 0, "oldest": None})
        agent_counts = dict(agents.get(campaign.pk, no_agents))
        busy = agent_counts.pop("busy")
        answers, average = satisfaction.get(campaign.pk, (0, None))
        overviews.append(
            CampaignOverview(
                campaign=campaign,
                statistics=CampaignStatistics(
                    **{
                        period: _period_from(
                            cohort,
                            period=period,
                            rejected=rejected.get(campaign.pk, {}).get(period, {}),
                        )
                        for period in periods
                    },
                    queued_now=queue["count"],
                    longest_waiting_seconds=(
                        _seconds(now - queue["oldest"]) if queue["oldest"] is not None else None
                    ),
                    agents_by_status=agent_counts,
                    agents_busy=busy,
                ),
                satisfaction_answers=answers,
                satisfaction_average=average,
            )
        )
    return overviews


def _period_aggregates(periods: dict[str, Q]) -> dict:
    """The aggregates of `campaign_period_statistics`, once per period, prefixed by its name."""
    outcome = Interaction.QueueOutcome
    attended = Q(queue_outcome=outcome.ATTENDED)
    aggregates = {}
    for name, period in periods.items():
        aggregates |= {
            f"{name}_entered": Count("id", filter=period),
            f"{name}_attended": Count("id", filter=period & attended),
            f"{name}_attended_within": Count(
                "id", filter=period & attended & Q(service_level_met=True)
            ),
            f"{name}_timed_out": Count("id", filter=period & Q(queue_outcome=outcome.TIMED_OUT)),
            f"{name}_abandoned": Count("id", filter=period & Q(queue_outcome=outcome.ABANDONED)),
            f"{name}_abandoned_within": Count(
                "id", filter=period & Q(queue_outcome=outcome.ABANDONED, service_level_met=True)
            ),
            f"{name}_average_wait": Avg(_WAIT, filter=period & attended),
            f"{name}_longest_wait": Max(_WAIT, filter=period & attended),
        }
    return aggregates


def _period_from(figures: dict, *, period: str, rejected: dict[str, int]) -> PeriodStatistics:
    """PeriodStatistics from the aggregates `_period_aggregates` named for `period`."""
    figures = {
        key.removeprefix(f"{period}_"): value
        for key, value in figures.items()
        if key.startswith(f"{period}_")
    }
    count = {
        name: figures.get(name, 0)
        for name in (
            "entered",
            "attended",
            "attended_within",
            "timed_out",
            "abandoned",
            "abandoned_within",
        )
    }
    left = count["attended"] + count["timed_out"] + count["abandoned"]
    return PeriodStatistics(
        **count,
        sl_percent=_percent(count["attended_within"], left),
        sl_percent_with_abandoned=_percent(
            count["attended_within"] + count["abandoned_within"], left
        ),
        average_wait_seconds=_seconds(figures.get("average_wait")),
        longest_wait_seconds=_seconds(figures.get("longest_wait")),
        rejected_by_reason=rejected,
    )


def _satisfaction(
    by_midnight: dict[datetime.datetime, list[int]], *, now: datetime.datetime
) -> dict[int, tuple[int, float | None]]:
    """Today's survey answers per campaign, from every channel: (count, average).

    One query per channel and distinct start of day: the channel protocol
    takes one period per call.
    """
    totals: dict[int, tuple[int, float]] = {}
    for _kind, channel in registered_channels():
        for midnight, campaign_ids in by_midnight.items():
            found = channel.satisfaction(campaign_ids=campaign_ids, start=midnight, end=now)
            for campaign_id, (answers, average) in found.items():
                if answers and average is not None:
                    count, total = totals.get(campaign_id, (0, 0.0))
                    totals[campaign_id] = (count + answers, total + answers * average)
    return {
        campaign_id: (count, round(total / count, 2))
        for campaign_id, (count, total) in totals.items()
    }


@dataclass(frozen=True)
class QueueEntry:
    """A waiting conversation, with its place in the queue (1 is served next)."""

    interaction: Interaction
    position: int
    wait_seconds: float

    @property
    def wait(self) -> str:
        return duration_text(self.wait_seconds)


@dataclass(frozen=True)
class MemberRow:
    """A campaign member as the supervisor watches them."""

    member: Member
    name: str
    status: str
    status_label: str
    status_changed_at: datetime.datetime | None
    capacity: int
    load: int
    last_seen_at: datetime.datetime | None
    # Not seen in the console within the heartbeat window: routing skips them.
    stale: bool

    @property
    def agent_id(self) -> int:
        return self.member.agent_id

    @property
    def can_take_work(self) -> bool:
        """May be given a conversation by a supervisor: an active member and user."""
        return self.member.active and self.member.agent.is_active


@dataclass(frozen=True)
class HeldEntry:
    """A conversation an agent holds (assigned, or being transferred)."""

    interaction: Interaction
    agent_name: str
    held_seconds: float | None
    transfer_to_name: str
    transfer_left_seconds: float | None

    @property
    def held(self) -> str:
        return duration_text(self.held_seconds)

    @property
    def transfer_left(self) -> str:
        return duration_text(self.transfer_left_seconds)


@dataclass(frozen=True)
class HourStatistics:
    """The conversations that entered a campaign's queue in one hour of its day."""

    start: datetime.datetime  # in the campaign's time zone
    entered: int
    attended_within: int
    left: int  # attended, timed out or abandoned
    sl_percent: float | None


@dataclass(frozen=True)
class CampaignDashboard:
    """Everything the supervisor's page for one campaign shows, fully loaded."""

    overview: CampaignOverview
    queue: list[QueueEntry]
    members: list[MemberRow]
    in_progress: list[HeldEntry]
    hours: list[HourStatistics]

    @property
    def campaign(self) -> Campaign:
        return self.overview.campaign

    @property
    def queue_hidden(self) -> int:
        """Waiting conversations beyond the listed ones."""
        return max(self.overview.statistics.queued_now - len(self.queue), 0)

    @property
    def assignable(self) -> list[MemberRow]:
        return [row for row in self.members if row.can_take_work]


def campaign_dashboard(*, campaign: Campaign, now: datetime.datetime) -> CampaignDashboard:
    """One campaign's figures, queue, agents, held conversations and hours, in fixed queries."""
    return CampaignDashboard(
        overview=campaign_overview(campaign=campaign, now=now),
        queue=campaign_queue(campaign=campaign, now=now),
        members=campaign_members(campaign=campaign, now=now),
        in_progress=campaign_in_progress(campaign=campaign, now=now),
        hours=campaign_hourly(campaign=campaign, now=now),
    )


def campaign_queue(
    *, campaign: Campaign, now: datetime.datetime, limit: int = QUEUE_DISPLAY_LIMIT
) -> list[QueueEntry]:
    """The first `limit` waiting conversations in the order routing serves them."""
    waiting = Interaction.objects.filter(
        campaign=campaign, status=Interaction.Status.QUEUED
    ).order_by("queued_at", "id")[:limit]
    return [
        QueueEntry(
            interaction=interaction,
            position=position,
            wait_seconds=max((now - (interaction.queued_at or now)).total_seconds(), 0.0),
        )
        for position, interaction in enumerate(waiting, start=1)
    ]


# What an agent without a profile yet gets when a service first needs one.
_DEFAULT_CAPACITY = AgentProfile._meta.get_field("capacity").default


def campaign_members(*, campaign: Campaign, now: datetime.datetime) -> list[MemberRow]:
    """The campaign's members in position order with status, load and last sign of life."""
    members = list(
        Member.objects.filter(campaign=campaign)
        .select_related("agent__agent_profile")
        .order_by("position", "id")
    )
    loads = agent_loads(agent_ids=[m.agent_id for m in members])
    stale_before = now - datetime.timedelta(seconds=settings.AGENT_HEARTBEAT_STALE_SECONDS)
    rows = []
    for member in members:
        profile = getattr(member.agent, "agent_profile", None)
        last_seen = profile.last_seen_at if profile else None
        rows.append(
            MemberRow(
                member=member,
                name=display_name(member.agent),
                status=profile.status if profile else AgentProfile.Status.OFFLINE,
                status_label=(
                    profile.get_status_display() if profile else AgentProfile.Status.OFFLINE.label
                ),
                status_changed_at=profile.status_changed_at if profile else None,
                capacity=profile.capacity if profile else _DEFAULT_CAPACITY,
                load=loads[member.agent_id],
                last_seen_at=last_seen,
                stale=last_seen is None or last_seen < stale_before,
            )
        )
    return rows


def campaign_in_progress(*, campaign: Campaign, now: datetime.datetime) -> list[HeldEntry]:
    """Conversations agents hold now, longest held first."""
    held = (
        Interaction.objects.filter(campaign=campaign, status__in=_HELD)
        .select_related("agent", "transfer_to")
        .order_by("assigned_at", "id")
    )
    return [
        HeldEntry(
            interaction=interaction,
            agent_name=display_name(interaction.agent),
            held_seconds=(
                (now - interaction.assigned_at).total_seconds() if interaction.assigned_at else None
            ),
            transfer_to_name=display_name(interaction.transfer_to),
            transfer_left_seconds=(
                max((interaction.transfer_deadline_at - now).total_seconds(), 0.0)
                if interaction.status == Interaction.Status.TRANSFERRING
                and interaction.transfer_deadline_at
                else None
            ),
        )
        for interaction in held
    ]


def campaign_hourly(*, campaign: Campaign, now: datetime.datetime) -> list[HourStatistics]:
    """Each hour of the campaign's today (its time zone), in one grouped query.

    Hours not yet begun have zeros. When clocks go back, the repeated hour is
    one bucket, as the wall clock shows it.
    """
    time_zone = campaign.time_zone
    midnight = local_midnight(now=now, time_zone=time_zone)
    outcome = Interaction.QueueOutcome
    rows = (
        Interaction.objects.filter(campaign=campaign, queued_at__gte=midnight, queued_at__lt=now)
        .annotate(hour=TruncHour("queued_at", tzinfo=time_zone))
        .values("hour")
        .annotate(
            entered=Count("id"),
            attended_within=Count(
                "id", filter=Q(queue_outcome=outcome.ATTENDED, service_level_met=True)
            ),
            left=Count("id", filter=Q(queue_outcome__in=outcome.values)),
        )
        .order_by("hour")
    )
    found = {_wall_clock(row["hour"], time_zone): row for row in rows}
    next_midnight = datetime.datetime.combine(
        midnight.date() + datetime.timedelta(days=1), datetime.time(0), tzinfo=time_zone
    )
    hours = []
    seen = set()
    # Step in absolute hours, so a day of 23 or 25 hours has as many slots.
    instant = midnight.astimezone(datetime.UTC)
    while instant < next_midnight:
        local = instant.astimezone(time_zone)
        key = _wall_clock(local, time_zone)
        instant += datetime.timedelta(hours=1)
        if key in seen:
            continue
        seen.add(key)
        row = found.get(key, {"entered": 0, "attended_within": 0, "left": 0})
        hours.append(
            HourStatistics(
                start=local.replace(minute=0, second=0, microsecond=0),
                entered=row["entered"],
                attended_within=row["attended_within"],
                left=row["left"],
                sl_percent=_percent(row["attended_within"], row["left"]),
            )
        )
    return hours


def _wall_clock(moment: datetime.datetime, time_zone) -> datetime.datetime:
    return moment.astimezone(time_zone).replace(tzinfo=None, minute=0, second=0, microsecond=0)


def duration_text(seconds: float | None) -> str:
    """A duration as a supervisor reads it at a glance: 45s, 3m 05s, 1h 02m."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


# Agent console ------------------------------------------------------------------

# An assignment this recent is flagged as new in the agent's list.
NEW_ASSIGNMENT = datetime.timedelta(seconds=30)
# The pending list shows at most this many waiting conversations, oldest first.
PENDING_LIMIT = 50
_HELD = (Interaction.Status.ASSIGNED, Interaction.Status.TRANSFERRING)


def describe_seconds(seconds: float | None) -> str:
    """A duration as the console shows it: coarse, so polled lists rarely change."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return "under a minute"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def describe_countdown(seconds: int) -> str:
    """m:ss, as console.js ticks it down."""
    return f"{seconds // 60}:{seconds % 60:02d}"


def _seconds_between(start: datetime.datetime | None, end: datetime.datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))


def agent_profile(*, agent) -> AgentProfile:
    """The agent's presence; an unsaved offline one for an agent who never had one."""
    return AgentProfile.objects.filter(user=agent).first() or AgentProfile(user=agent)


def agent_own_interactions(*, agent) -> QuerySet[Interaction]:
    """Conversations `agent` holds or held last: the only ones their pages open."""
    return Interaction.objects.filter(agent=agent)


def agent_takeable_interactions(*, agent) -> QuerySet[Interaction]:
    """Conversations of the campaigns where `agent` is an active member
    (`interaction_take` decides whether this one may be taken now)."""
    return Interaction.objects.filter(
        campaign__members__agent=agent, campaign__members__active=True
    )


def agent_offered_interactions(*, agent) -> QuerySet[Interaction]:
    """Conversations offered to `agent` now or before, so that answering an
    offer that lapsed meanwhile says so instead of "not found"."""
    offered_before = InteractionEvent.objects.filter(
        interaction=OuterRef("pk"), data__to_agent=agent.pk
    )
    return Interaction.objects.filter(Q(transfer_to=agent) | Q(Exists(offered_before)))


def _unread_counts(interactions: list[Interaction]) -> dict[int, int]:
    """Customer messages after each conversation's read mark: one query per channel kind."""
    marks: dict[str, dict[int, datetime.datetime | None]] = defaultdict(dict)
    for interaction in interactions:
        marks[interaction.channel_kind][interaction.pk] = interaction.agent_read_at
    counts: dict[int, int] = {}
    for kind, read_marks in sorted(marks.items()):
        counts |= get_channel(kind).unread_counts(read_marks=read_marks)
    return counts


@dataclass(frozen=True)
class HeldConversation:
    """A row of the agent's "My conversations"."""

    interaction: Interaction
    unread: int
    is_new: bool
    waited_seconds: int | None  # in the queue before it reached an agent
    quiet_seconds: int | None  # since the last message

    @property
    def waited(self) -> str:
        return describe_seconds(self.waited_seconds)

    @property
    def quiet(self) -> str:
        return describe_seconds(self.quiet_seconds)


def agent_conversations(*, agent, now: datetime.datetime) -> list[HeldConversation]:
    """What `agent` holds (assigned, or offered away but still theirs), newest
    assignment first, with unread counts: two queries."""
    held = list(
        Interaction.objects.filter(agent=agent, status__in=_HELD)
        .select_related("campaign", "transfer_to")
        .order_by("-assigned_at", "-pk")
    )
    unread = _unread_counts(held)
    return [
        HeldConversation(
            interaction=interaction,
            unread=unread.get(interaction.pk, 0),
            is_new=interaction.assigned_at is not None
            and interaction.assigned_at >= now - NEW_ASSIGNMENT,
            waited_seconds=_seconds_between(interaction.queued_at, interaction.left_queue_at),
            quiet_seconds=_seconds_between(interaction.last_message_at, now),
        )
        for interaction in held
    ]


@dataclass(frozen=True)
class WaitingConversation:
    """A conversation in the queue that the agent may take."""

    interaction: Interaction
    waiting_seconds: int
    rings: bool  # ring all: nobody gets it unless an agent takes it

    @property
    def waiting(self) -> str:
        return describe_seconds(self.waiting_seconds)


@dataclass(frozen=True)
class OfferedTransfer:
    """A conversation another agent offers to this one."""

    interaction: Interaction
    seconds_left: int | None  # None: the offer has no time limit

    @property
    def time_left(self) -> str:
        return describe_countdown(self.seconds_left or 0)


@dataclass(frozen=True)
class AgentPending:
    offers: list[OfferedTransfer]
    waiting: list[WaitingConversation]
    more_waiting: bool  # more than PENDING_LIMIT wait


def agent_pickable_campaigns(*, agent) -> dict[str, dict[int, QueueSettings]]:
    """Per channel kind, the campaigns whose queue `agent` may take from:
    an active member where the strategy is ring all or agents may pick."""
    campaign_ids = list(
        Member.objects.filter(agent=agent, active=True).values_list("campaign_id", flat=True)
    )
    pickable: dict[str, dict[int, QueueSettings]] = {}
    if not campaign_ids:
        return pickable
    for kind, channel in registered_channels():
        found = channel.queue_settings_many(campaign_ids=campaign_ids)
        chosen = {
            campaign_id: settings_
            for campaign_id, settings_ in found.items()
            if settings_.strategy == strategies.RINGALL or settings_.agents_may_pick
        }
        if chosen:
            pickable[kind] = chosen
    return pickable


def agent_pending(*, agent, now: datetime.datetime) -> AgentPending:
    """Transfers offered to `agent` and the waiting conversations they may take.

    Four queries: offers, memberships, queue settings (per channel kind), queue.
    """
    offers = (
        Interaction.objects.filter(transfer_to=agent, status=Interaction.Status.TRANSFERRING)
        .select_related("campaign", "agent")
        .order_by(F("transfer_deadline_at").asc(nulls_last=True), "pk")
    )
    pickable = agent_pickable_campaigns(agent=agent)
    waiting: list[Interaction] = []
    if pickable:
        where = Q()
        for kind, by_campaign in pickable.items():
            where |= Q(channel_kind=kind, campaign_id__in=list(by_campaign))
        waiting = list(
            Interaction.objects.filter(where, status=Interaction.Status.QUEUED)
            .select_related("campaign")
            .order_by("queued_at", "pk")[: PENDING_LIMIT + 1]
        )
    return AgentPending(
        offers=[
            OfferedTransfer(
                interaction=offer,
                seconds_left=(
                    max(0, math.ceil((offer.transfer_deadline_at - now).total_seconds()))
                    if offer.transfer_deadline_at
                    else None
                ),
            )
            for offer in offers
        ],
        waiting=[
            WaitingConversation(
                interaction=interaction,
                waiting_seconds=_seconds_between(interaction.queued_at, now) or 0,
                rings=pickable[interaction.channel_kind][interaction.campaign_id].strategy
                == strategies.RINGALL,
            )
            for interaction in waiting[:PENDING_LIMIT]
        ],
        more_waiting=len(waiting) > PENDING_LIMIT,
    )


def agent_campaigns(*, agent, channel_kind: str) -> list[Campaign]:
    """Active campaigns where `agent` is an active member and the channel is enabled:
    where they may start a conversation."""
    campaigns = list(
        Campaign.objects.filter(active=True, members__agent=agent, members__active=True).order_by(
            "name"
        )
    )
    found = get_channel(channel_kind).queue_settings_many(campaign_ids=[c.pk for c in campaigns])
    return [c for c in campaigns if c.pk in found and found[c.pk].enabled]


@dataclass(frozen=True)
class TimelineItem:
    """One line of a conversation's history: a message, or a note of what happened."""

    at: datetime.datetime
    message: TranscriptEntry | None = None
    note: str = ""


def conversation_timeline(*, interaction: Interaction) -> list[TimelineItem]:
    """The channel's transcript and the event log, interleaved by time.

    At most four queries whatever the length: messages, events, and the
    people and campaigns the events name.
    """
    entries = get_channel(interaction.channel_kind).transcript(interaction_id=interaction.pk)
    events = list(InteractionEvent.objects.filter(interaction=interaction))
    user_ids = {event.user_id for event in events if event.user_id}
    campaign_ids = set()
    for event in events:
        user_ids |= {v for k in _EVENT_AGENT_KEYS if isinstance(v := event.data.get(k), int)}
        campaign_ids |= {v for k in _EVENT_CAMPAIGN_KEYS if isinstance(v := event.data.get(k), int)}
    users = {
        user.pk: display_name(user) for user in get_user_model().objects.filter(pk__in=user_ids)
    }
    campaigns = dict(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", "name"))
    # Events first at equal times: the state change, then what was said in it.
    items = [
        TimelineItem(at=event.created_at, note=_event_note(event, users, campaigns))
        for event in events
    ]
    items += [TimelineItem(at=entry.at, message=entry) for entry in entries]
    return sorted(items, key=lambda item: item.at)


def last_customer_message_at(timeline: list[TimelineItem]) -> datetime.datetime | None:
    """When the customer's latest message in `timeline` arrived."""
    return max(
        (
            item.at
            for item in timeline
            if item.message is not None and item.message.who == "customer"
        ),
        default=None,
    )


_EVENT_AGENT_KEYS = ("agent", "from_agent", "to_agent")
_EVENT_CAMPAIGN_KEYS = ("from_campaign", "to_campaign")
_STATUS_LABELS = dict(Interaction.Status.choices)


def _event_note(event: InteractionEvent, users: dict[int, str], campaigns: dict[int, str]) -> str:
    """An event as one line: "Assigned: taken from the pending list · by Ann Lee"."""
    data = {k: v for k, v in (event.data or {}).items() if isinstance(v, int | str)}
    reason = event.reason.replace("_", " ")
    label = _STATUS_LABELS.get(event.to_status, event.to_status)
    if event.from_status != event.to_status and label:
        headline = label if reason.lower() in ("", label.lower()) else f"{label}: {reason}"
    else:
        headline = reason[:1].upper() + reason[1:]
    details = []
    if data.get("from_agent") in users and data.get("to_agent") in users:
        details.append(f"{users[data['from_agent']]} → {users[data['to_agent']]}")
    elif data.get("agent") in users:
        details.append(f"to {users[data['agent']]}")
    if data.get("from_campaign") in campaigns and data.get("to_campaign") in campaigns:
        details.append(f"“{campaigns[data['from_campaign']]}” → “{campaigns[data['to_campaign']]}”")
    if data.get("note"):
        details.append(f"note: “{data['note']}”")
    if event.user_id in users:
        by = users[event.user_id]
        if not any(by in detail for detail in details):
            details.append(f"by {by}")
    return " · ".join([headline, *details])


@dataclass(frozen=True)
class TransferTargets:
    agents: list  # users
    campaigns: list[Campaign]


def transfer_targets(*, interaction: Interaction, agent, now: datetime.datetime) -> TransferTargets:
    """Where `agent` may send the conversation: another agent of its campaign who
    may take work now, or another active campaign whose channel is enabled."""
    agent_ids = [
        eligible.candidate.agent_id
        for eligible in eligible_agents(
            campaign=interaction.campaign, strategy=strategies.RINGALL, now=now
        )
        if eligible.candidate.agent_id != agent.pk
    ]
    agents = list(
        get_user_model()
        .objects.filter(pk__in=agent_ids)
        .order_by("first_name", "last_name", "username")
    )
    campaigns = list(
        Campaign.objects.filter(active=True).exclude(pk=interaction.campaign_id).order_by("name")
    )
    found = get_channel(interaction.channel_kind).queue_settings_many(
        campaign_ids=[c.pk for c in campaigns]
    )
    return TransferTargets(
        agents=agents,
        campaigns=[c for c in campaigns if c.pk in found and found[c.pk].enabled],
    )


def active_dispositions(*, campaign_id: int) -> list[Disposition]:
    """The dispositions an agent may finish the campaign's conversations with."""
    return list(Disposition.objects.filter(campaign_id=campaign_id, active=True).order_by("name"))


@dataclass(frozen=True)
class ConversationDetail:
    """Everything the conversation page shows, read up front."""

    interaction: Interaction
    timeline: list[TimelineItem]
    bot_answers: list[tuple[str, object]]  # in the order the bot asked
    held: bool  # the agent still holds it: reply, transfer and finish apply
    dispositions: list[Disposition]
    targets: TransferTargets | None

    @property
    def waited(self) -> str:
        interaction = self.interaction
        return describe_seconds(_seconds_between(interaction.queued_at, interaction.left_queue_at))


def conversation_detail(
    *, interaction: Interaction, agent, now: datetime.datetime
) -> ConversationDetail:
    """The conversation page of `agent`, who holds or held `interaction`."""
    held = interaction.status in _HELD and interaction.agent_id == agent.pk
    answers = get_channel(interaction.channel_kind).bot_answers(interaction_id=interaction.pk)
    return ConversationDetail(
        interaction=interaction,
        timeline=conversation_timeline(interaction=interaction),
        bot_answers=list(answers.items()),
        held=held,
        dispositions=active_dispositions(campaign_id=interaction.campaign_id) if held else [],
        targets=(
            transfer_targets(interaction=interaction, agent=agent, now=now)
            if held and interaction.status == Interaction.Status.ASSIGNED
            else None
        ),
    )
