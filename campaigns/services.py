"""Use cases that change the campaigns app's rows; the only place that writes them."""

import csv
import datetime
import io
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.models import (
    AGENTS_GROUP,
    AgentProfile,
    Blacklist,
    BlacklistEntry,
    Campaign,
    Interaction,
    InteractionEvent,
    Member,
)
from campaigns.phone import normalize_e164
from campaigns.tasks import route_campaign_task
from contactcenter.celery import publish_on_commit
from contactcenter.exceptions import ApplicationError

CSV_IMPORT_MAX_BYTES = 5 * 1024 * 1024
CSV_IMPORT_MAX_ROWS = 100_000


@transaction.atomic
def agent_create(
    *,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    capacity: int = 3,
) -> User:
    """Create a user who works in the agent console: in the Agents group, never staff."""
    user = User(username=username, first_name=first_name, last_name=last_name, email=email)
    user.set_password(password)
    user.full_clean()
    user.save()
    user.groups.add(Group.objects.get(name=AGENTS_GROUP))
    profile = AgentProfile(user=user, capacity=capacity)
    profile.full_clean()
    profile.save()
    return user


@transaction.atomic
def agent_update(
    *,
    agent: User,
    first_name: str,
    last_name: str,
    email: str,
    is_active: bool,
    capacity: int,
) -> User:
    """Change an agent's details and capacity.

    Deactivating an agent also sets them offline: routing picks available
    agents, and a deactivated one could otherwise get work until their
    heartbeat went stale.
    """
    # Locked so two edits of one agent apply in turn.
    user = User.objects.select_for_update().get(pk=agent.pk)
    user.first_name = first_name
    user.last_name = last_name
    user.email = email
    user.is_active = is_active
    user.full_clean()
    user.save(update_fields=["first_name", "last_name", "email", "is_active"])

    profile, _ = AgentProfile.objects.get_or_create(user=user)
    profile.capacity = capacity
    update_fields = ["capacity"]
    if not is_active and profile.status != AgentProfile.Status.OFFLINE:
        profile.status = AgentProfile.Status.OFFLINE
        profile.status_changed_at = timezone.now()
        update_fields += ["status", "status_changed_at"]
    profile.full_clean()
    profile.save(update_fields=update_fields)
    return user


def agent_set_password(*, agent: User, password: str) -> None:
    agent.set_password(password)
    agent.save(update_fields=["password"])


class InvalidRow(NamedTuple):
    line_number: int
    raw_value: str
    message: str


@dataclass(frozen=True)
class ImportResult:
    added: int
    duplicates: int
    invalid: list[InvalidRow]


def blacklist_import_csv(
    *, blacklist: Blacklist, file: BinaryIO, added_by: User | None
) -> ImportResult:
    """Add the numbers of a CSV file (columns: number, optional reason) to `blacklist`.

    A first row whose first cell mentions "number" is a header; blank lines are
    skipped; further columns are ignored, so an export imports back. Numbers
    already on the list or repeated in the file count as duplicates; rows that
    cannot be read are reported with their line numbers and the rest are added
    in one transaction. A file that cannot be read as a whole raises
    ApplicationError and writes nothing.
    """
    rows = _read_csv_rows(file)
    reason_max_length = BlacklistEntry._meta.get_field("reason").max_length
    entries: list[BlacklistEntry] = []
    invalid: list[InvalidRow] = []
    duplicates = 0
    with transaction.atomic():
        # Two imports into one list wait for each other, so each sees the
        # other's numbers as duplicates instead of both adding them.
        Blacklist.objects.select_for_update(no_key=True).get(pk=blacklist.pk)
        seen = set(blacklist.entries.values_list("number", flat=True))
        for line_number, cells in rows:
            raw_number = cells[0].strip()
            reason = cells[1].strip() if len(cells) > 1 else ""
            try:
                number = normalize_e164(raw_number)
            except ValidationError as exc:
                invalid.append(InvalidRow(line_number, raw_number, exc.messages[0]))
                continue
            if len(reason) > reason_max_length:
                message = f"The reason is longer than {reason_max_length} characters."
                invalid.append(InvalidRow(line_number, raw_number, message))
                continue
            if number in seen:
                duplicates += 1
                continue
            seen.add(number)
            entries.append(
                BlacklistEntry(blacklist=blacklist, number=number, reason=reason, added_by=added_by)
            )
        # A number added meanwhile by another path (a customer's STOP) is
        # skipped rather than failing the whole import.
        BlacklistEntry.objects.bulk_create(entries, batch_size=1000, ignore_conflicts=True)
    return ImportResult(added=len(entries), duplicates=duplicates, invalid=invalid)


def _read_csv_rows(file: BinaryIO) -> list[tuple[int, list[str]]]:
    """Return the data rows of a CSV upload with the line each starts on.

    Raise ApplicationError when the file as a whole cannot be used.
    """
    data = file.read(CSV_IMPORT_MAX_BYTES + 1)
    if len(data) > CSV_IMPORT_MAX_BYTES:
        limit_mb = CSV_IMPORT_MAX_BYTES // (1024 * 1024)
        raise ApplicationError(
            f"The file is larger than {limit_mb} MB: split it and import the parts."
        )
    try:
        # utf-8-sig drops the byte-order mark that Excel writes.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError(
            "The file is not UTF-8 text. Save it as “CSV UTF-8” and import it again."
        ) from None
    if "\x00" in text:
        raise ApplicationError("The file is not a CSV text file.")

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    first_row = True
    next_line = 1
    try:
        for cells in reader:
            line_number, next_line = next_line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            is_header = first_row and "number" in cells[0].lower()
            first_row = False
            if is_header:
                continue
            if len(rows) == CSV_IMPORT_MAX_ROWS:
                raise ApplicationError(
                    f"The file has more than {CSV_IMPORT_MAX_ROWS:,} rows: "
                    "split it and import the parts."
                )
            rows.append((line_number, cells))
    except csv.Error as exc:
        # The line where the broken record starts: an unclosed quote runs to the end.
        raise ApplicationError(f"The file is not valid CSV (line {next_line}: {exc}).") from None
    if not rows:
        raise ApplicationError("The file has no numbers in it.")
    return rows


def blacklist_add_number(
    *, blacklist: Blacklist, number: str, reason: str = "", added_by: User | None = None
) -> BlacklistEntry:
    """Put `number` (E.164) on `blacklist`; a number already there stays as it is."""
    entry, _ = BlacklistEntry.objects.get_or_create(
        blacklist=blacklist,
        number=number,
        defaults={"reason": reason[:255], "added_by": added_by},
    )
    return entry


def blacklist_remove_number(*, blacklist: Blacklist, number: str) -> bool:
    """Take `number` off `blacklist`; True if it was there."""
    deleted, _ = BlacklistEntry.objects.filter(blacklist=blacklist, number=number).delete()
    return bool(deleted)


# Interactions. Every status change goes through _transition, which checks
# ALLOWED_TRANSITIONS and writes the event row.


def _transition(
    *,
    interaction: Interaction,
    to_status: str,
    actor: str,
    user=None,
    reason: str = "",
    data: dict | None = None,
    now: datetime.datetime,
) -> InteractionEvent:
    """Move `interaction` to `to_status` in memory and record the event.

    Lock precondition: the caller holds the interaction's row lock or has
    just created it, and saves the changed fields afterwards.
    """
    from_status = interaction.status
    interaction.check_transition(to_status)
    interaction.status = to_status
    return InteractionEvent(
        interaction=interaction,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        user=user,
        reason=reason,
        data=data or {},
        created_at=now,
    )


def _create_with_event(
    *, interaction: Interaction, to_status: str, actor: str, reason: str, now
) -> Interaction:
    event = _transition(
        interaction=interaction, to_status=to_status, actor=actor, reason=reason, now=now
    )
    interaction.save()
    event.save()
    return interaction


@transaction.atomic
def interaction_enqueue_new(
    *,
    campaign: Campaign,
    channel_kind: str,
    customer_number: str,
    max_queue_seconds: int,
    now: datetime.datetime,
) -> Interaction:
    """Open a new inbound conversation waiting in the campaign's queue.

    The open-conversation unique constraint makes a concurrent duplicate fail
    with IntegrityError; the caller retries and then finds this one open.
    """
    deadline = now + datetime.timedelta(seconds=max_queue_seconds) if max_queue_seconds else None
    interaction = Interaction(
        campaign=campaign,
        channel_kind=channel_kind,
        customer_number=customer_number,
        direction=Interaction.Direction.INBOUND,
        status="",
        created_at=now,
        queued_at=now,
        queue_deadline_at=deadline,
        last_message_at=now,
    )
    _create_with_event(
        interaction=interaction,
        to_status=Interaction.Status.QUEUED,
        actor=InteractionEvent.Actor.CUSTOMER,
        reason="new conversation",
        now=now,
    )
    publish_on_commit(route_campaign_task, campaign.pk)
    return interaction


@transaction.atomic
def interaction_reject_new(
    *,
    campaign: Campaign,
    channel_kind: str,
    customer_number: str,
    reason: str,
    now: datetime.datetime,
) -> Interaction:
    """Record a conversation refused at the door (the reason is counted)."""
    interaction = Interaction(
        campaign=campaign,
        channel_kind=channel_kind,
        customer_number=customer_number,
        status="",
        reject_reason=reason,
        created_at=now,
        finished_at=now,
        last_message_at=now,
    )
    return _create_with_event(
        interaction=interaction,
        to_status=Interaction.Status.REJECTED,
        actor=InteractionEvent.Actor.SYSTEM,
        reason=reason,
        now=now,
    )


def refuse_second_open(*, campaign: Campaign, channel_kind: str, customer_number: str) -> None:
    """Refuse a conversation the customer would have twice open in `campaign`."""
    if Interaction.objects.filter(
        campaign=campaign,
        channel_kind=channel_kind,
        customer_number=customer_number,
        status__in=Interaction.OPEN_STATUSES,
    ).exists():
        raise ApplicationError(
            f"{customer_number} already has an open conversation in “{campaign}”."
        )


@transaction.atomic
def interaction_start_outbound(
    *,
    campaign: Campaign,
    channel_kind: str,
    customer_number: str,
    agent,
    now: datetime.datetime,
) -> Interaction:
    """Open an agent-started conversation, owned by that agent from the start."""
    if not Member.objects.filter(campaign=campaign, agent=agent, active=True).exists():
        raise ApplicationError(f"You are not an active member of campaign “{campaign}”.")
    refuse_second_open(
        campaign=campaign, channel_kind=channel_kind, customer_number=customer_number
    )
    interaction = Interaction(
        campaign=campaign,
        channel_kind=channel_kind,
        customer_number=customer_number,
        direction=Interaction.Direction.OUTBOUND,
        status="",
        agent=agent,
        created_at=now,
        assigned_at=now,
        last_message_at=now,
    )
    event = _transition(
        interaction=interaction,
        to_status=Interaction.Status.ASSIGNED,
        actor=InteractionEvent.Actor.AGENT,
        user=agent,
        reason="agent started the conversation",
        now=now,
    )
    interaction.save()
    event.save()
    return interaction


def interaction_touch(
    *, interaction: Interaction, now: datetime.datetime, by_agent: bool = False
) -> None:
    """Note a new message on the conversation (for unread and wait displays);
    an agent's first one is the conversation's first response."""
    Interaction.objects.filter(pk=interaction.pk).update(last_message_at=now)
    interaction.last_message_at = now
    if by_agent and interaction.first_response_at is None:
        Interaction.objects.filter(pk=interaction.pk, first_response_at__isnull=True).update(
            first_response_at=now
        )
        interaction.first_response_at = now


def interaction_mark_read(*, interaction: Interaction, now: datetime.datetime) -> None:
    """The agent holding the conversation has seen every message so far."""
    Interaction.objects.filter(pk=interaction.pk).update(agent_read_at=now)
    interaction.agent_read_at = now


def interaction_note(
    *, interaction_id: int, reason: str, actor: str, data: dict | None = None, user=None
) -> InteractionEvent:
    """Record something that happened to a conversation without a status change."""
    interaction = Interaction.objects.only("status").get(pk=interaction_id)
    return InteractionEvent.objects.create(
        interaction_id=interaction_id,
        from_status=interaction.status,
        to_status=interaction.status,
        actor=actor,
        user=user,
        reason=reason,
        data=data or {},
    )


# Blacklists in bulk (the REST API). Each row gets its own result; the valid
# rows are applied together in one transaction.

BLACKLIST_BULK_MAX_ROWS = 1000


class BulkRowStatus:
    """What happened to one row of a bulk request."""

    ADDED = "added"
    DUPLICATE = "duplicate"
    REMOVED = "removed"
    NOT_FOUND = "not_found"
    INVALID = "invalid"


class BulkRowResult(NamedTuple):
    index: int
    number: str  # E.164 when it could be read, else as sent
    status: str  # a BulkRowStatus value
    error: str = ""


def _check_bulk_size(rows: int) -> None:
    if rows > BLACKLIST_BULK_MAX_ROWS:
        raise ApplicationError(
            f"At most {BLACKLIST_BULK_MAX_ROWS} rows per request; this one has {rows}. "
            "Split it into smaller requests."
        )


def blacklist_bulk_add(
    *, blacklist: Blacklist, entries: list[tuple[str, str]], added_by: User | None
) -> list[BulkRowResult]:
    """Add (number, reason) pairs to `blacklist`, one result per pair, in order.

    Numbers already on the list, or earlier in `entries`, are duplicates and
    keep their stored reason. Rows that cannot be read are reported as
    invalid and the others are still added. More than BLACKLIST_BULK_MAX_ROWS
    pairs raise ApplicationError and write nothing.
    """
    _check_bulk_size(len(entries))
    reason_max_length = BlacklistEntry._meta.get_field("reason").max_length
    results: list[BulkRowResult] = []
    new_entries: list[BlacklistEntry] = []
    with transaction.atomic():
        # Concurrent bulk adds and CSV imports into one list take turns, so
        # each reports the other's numbers as duplicates.
        Blacklist.objects.select_for_update(no_key=True).get(pk=blacklist.pk)
        parsed = [_parse_number(raw) for raw, _ in entries]
        seen = set(
            blacklist.entries.filter(
                number__in=[number for number, _ in parsed if number]
            ).values_list("number", flat=True)
        )
        for index, ((raw, reason), (number, error)) in enumerate(zip(entries, parsed, strict=True)):
            reason = reason.strip()
            if not error and len(reason) > reason_max_length:
                error = f"The reason is longer than {reason_max_length} characters."
            if error:
                results.append(BulkRowResult(index, raw, BulkRowStatus.INVALID, error))
            elif number in seen:
                results.append(BulkRowResult(index, number, BulkRowStatus.DUPLICATE))
            else:
                seen.add(number)
                new_entries.append(
                    BlacklistEntry(
                        blacklist=blacklist, number=number, reason=reason, added_by=added_by
                    )
                )
                results.append(BulkRowResult(index, number, BulkRowStatus.ADDED))
        # A number added meanwhile by a path that does not lock the list (a
        # customer's STOP) is skipped rather than failing the whole request.
        BlacklistEntry.objects.bulk_create(new_entries, ignore_conflicts=True)
    return results


def blacklist_bulk_remove(*, blacklist: Blacklist, numbers: list[str]) -> list[BulkRowResult]:
    """Take `numbers` off `blacklist`, one result per number, in order.

    A number not on the list, or repeated after it was removed, is not_found;
    one that cannot be read is invalid. More than BLACKLIST_BULK_MAX_ROWS
    numbers raise ApplicationError and remove nothing.
    """
    _check_bulk_size(len(numbers))
    results: list[BulkRowResult] = []
    with transaction.atomic():
        Blacklist.objects.select_for_update(no_key=True).get(pk=blacklist.pk)
        parsed = [_parse_number(raw) for raw in numbers]
        present = set(
            blacklist.entries.filter(
                number__in=[number for number, _ in parsed if number]
            ).values_list("number", flat=True)
        )
        removed: set[str] = set()
        for index, (raw, (number, error)) in enumerate(zip(numbers, parsed, strict=True)):
            if error:
                results.append(BulkRowResult(index, raw, BulkRowStatus.INVALID, error))
            elif number in present and number not in removed:
                removed.add(number)
                results.append(BulkRowResult(index, number, BulkRowStatus.REMOVED))
            else:
                results.append(BulkRowResult(index, number, BulkRowStatus.NOT_FOUND))
        BlacklistEntry.objects.filter(blacklist=blacklist, number__in=removed).delete()
    return results


def _parse_number(raw: str) -> tuple[str, str]:
    """(E.164 number, "") or ("", why it cannot be read)."""
    try:
        return normalize_e164(raw), ""
    except ValidationError as exc:
        return "", exc.messages[0]
