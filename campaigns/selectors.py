"""Read queries of the campaigns app, for views, the admin and the dashboard."""

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

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
)

from campaigns.models import AgentProfile, Blacklist, BlacklistEntry, Campaign, Interaction, Member

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
