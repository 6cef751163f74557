"""Read queries of the campaigns app, for views, the admin and the dashboard."""

from collections.abc import Iterator

from campaigns.models import Blacklist, BlacklistEntry, Campaign, Interaction

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
