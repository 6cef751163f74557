"""The hot queries on a table of a million conversations, with their plans.

    .venv/bin/python -m bench.queries                    # under a minute

Five campaigns (40 agents each) and 1,000,000 conversations over 90 days,
inserted with one INSERT ... SELECT generate_series: mostly finished, some
timed out, abandoned and rejected; about 400 queued, 500 assigned and 50
transferring now, of which 40 queue deadlines (--due) and 10 transfer
deadlines are due. Then VACUUM ANALYZE, as autovacuum would have done.

Each query is the one the product runs: the service runs once inside a
rolled-back transaction while its statements are captured, and the captured
SQL is then timed alone (median of several runs, each rolled back) and shown
with its EXPLAIN (ANALYZE) plan. `campaign_statistics` is also timed as a
whole call (its six statements plus the ORM). Baselines in the same run: a
primary-key lookup of a campaign, as raw SQL and through the ORM.
"""

import argparse
import re
import time
from collections.abc import Callable

from bench import common

DB_NAME = "contactcenter_bench_queries"
GOAL_MS = 50.0
CAMPAIGNS = 5
AGENTS_PER_CAMPAIGN = 40
# Open conversations, the newest rows: assigned, then transferring, then queued.
ASSIGNED, TRANSFERRING, QUEUED = 500, 50, 400
DUE_QUEUED, DUE_TRANSFERS = 40, 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument(
        "--due",
        type=int,
        default=DUE_QUEUED,
        help=f"queue deadlines due (at most {QUEUED}; the sweep takes 200 at a time)",
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs per query")
    parser.add_argument("--full-plans", action="store_true", help="every plan line")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    print(f"Queries ({common.describe_machine()})")
    common.recreate_database(DB_NAME)
    common.setup_django(common.bench_env(DB_NAME))
    try:
        _run(args)
    finally:
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            common.drop_database(DB_NAME)


def _run(args) -> None:
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import Campaign
    from campaigns.routing import (
        eligible_agents,
        route_campaign,
        sweep_queue_timeouts,
        sweep_transfer_timeouts,
    )
    from campaigns.selectors import campaign_statistics, campaigns_with_queue

    started = time.monotonic()
    campaigns = _load(rows=args.rows, days=args.days, due=min(args.due, QUEUED))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('campaigns_interaction'))")
        (size,) = cursor.fetchone()
    print(
        f"loaded {args.rows:,} conversations over {args.days} days in "
        f"{time.monotonic() - started:.0f} s (table and indexes: {size}); "
        f"{args.runs} timed runs each, median"
    )
    busiest = campaigns[0]
    now = timezone.now()

    timings: list[tuple[str, float, str]] = []  # label, ms, baseline kind
    pk = busiest.pk
    sql_baseline = _median_ms(
        lambda: _execute(f"SELECT * FROM campaigns_campaign WHERE id = {pk}"), args.runs * 4
    )
    orm_baseline = _median_ms(lambda: Campaign.objects.get(pk=pk), args.runs * 4)
    print(f"baseline: primary-key lookup of a campaign, SQL {sql_baseline:.2f} ms")
    print(f"baseline: Campaign.objects.get(pk=...), ORM  {orm_baseline:.2f} ms")

    claims = [
        ("queue-timeout sweep claim", lambda: sweep_queue_timeouts(now=now)),
        ("transfer sweep claim", lambda: sweep_transfer_timeouts(now=now)),
        ("route claim", lambda: route_campaign(campaign_id=pk)),
    ]
    for label, call in claims:
        statements = _captured(call)
        claim = next(
            sql for sql in statements if "SKIP LOCKED" in sql and "campaigns_interaction" in sql
        )
        ms = _median_ms(lambda sql=claim: _execute(sql, rollback=True), args.runs)
        timings.append((label, ms, "sql"))
        _show(label, ms, sql_baseline, [claim], args.full_plans)
        whole = _median_ms(lambda call=call: _rolled_back(call), max(3, args.runs // 3))
        timings.append((f"  whole service call ({label.split(' claim')[0]})", whole, "orm"))
        print(f"  the whole service call, rolled back: {whole:.1f} ms")

    def statistics_call():
        return campaign_statistics(campaign=busiest, now=now)

    statements = _captured(statistics_call)
    ms = _median_ms(statistics_call, args.runs)
    timings.append(("campaign_statistics()", ms, "orm"))
    _show(
        f"campaign_statistics() ({len(statements)} statements + ORM)",
        ms,
        orm_baseline,
        statements,
        args.full_plans,
    )

    extras = [("campaigns_with_queue() (route-all beat, every 5 s)", campaigns_with_queue)]
    for strategy in ("rrmemory", "leastrecent", "fewestcalls"):
        extras.append(
            (
                f"eligible_agents() ({strategy}, once per route_campaign)",
                lambda strategy=strategy: eligible_agents(
                    campaign=busiest, strategy=strategy, now=now
                ),
            )
        )
    for label, call in extras:
        statements = _captured(call)
        ms = _median_ms(call, args.runs)
        timings.append((label, ms, "orm"))
        _show(label, ms, orm_baseline, statements, args.full_plans)

    print()
    print(f"{'query':58}{'ms':>8}{'ratio':>9}  goal < {GOAL_MS:g} ms")
    for label, ms, kind in timings:
        base = sql_baseline if kind == "sql" else orm_baseline
        verdict = "" if label.startswith(" ") else ("met" if ms < GOAL_MS else "MISSED")
        print(f"{label:58}{ms:8.2f}{ms / base:8.0f}x  {verdict}")


def _load(*, rows: int, days: int, due: int) -> list:
    """Campaigns, agents and `rows` conversations; returns the campaigns, busiest first."""
    from django.db import connection

    from campaigns.models import AgentProfile

    campaigns = [
        common.create_campaign(name=f"Campaign {i}", strategy="rrmemory") for i in range(CAMPAIGNS)
    ]
    agent_ids = []
    for campaign in campaigns:
        users = common.create_agents(
            campaign=campaign, count=AGENTS_PER_CAMPAIGN, capacity=3, prefix="agent"
        )
        agent_ids += [u.pk for u in users]
    # Most agents available; some on break, some offline.
    for n, status in ((5, "break"), (7, "offline")):
        AgentProfile.objects.filter(user_id__in=agent_ids[::n]).update(status=status)
    closed = rows - ASSIGNED - TRANSFERRING - QUEUED
    params = {
        "rows": rows,
        "closed": closed,
        "step": f"{days * 86400 / rows} seconds",
        "campaigns": [c.pk for c in campaigns],
        "agents": agent_ids,
        "per": AGENTS_PER_CAMPAIGN,
        "assigned": ASSIGNED,
        "transferring": TRANSFERRING,
        "due_queued": due,
        "due_transfers": DUE_TRANSFERS,
    }
    with connection.cursor() as cursor:
        # h: a pseudo-random 0-99 per row (Knuth's multiplicative hash), which
        # picks the outcome; c: the campaign (40 %, 25 %, 15 %, 12 %, 8 %).
        cursor.execute(
            """
            INSERT INTO campaigns_interaction (
                campaign_id, channel_kind, customer_number, direction, status, reject_reason,
                close_reason, transfer_note, queue_outcome, created_at, queued_at,
                queue_deadline_at, assigned_at, left_queue_at, finished_at, last_message_at,
                service_level_met, agent_id, transfer_to_id, transfer_deadline_at
            )
            SELECT
                (%(campaigns)s::bigint[])[(c + 1)::int], 'sms', '+1555' || lpad(g::text, 7, '0'),
                'inbound', status,
                CASE WHEN status = 'rejected'
                     THEN (ARRAY['out_of_hours', 'out_of_hours', 'blacklisted', 'queue_full',
                                 'channel_disabled'])[(g %% 5 + 1)::int]
                     ELSE '' END,
                CASE WHEN status IN ('finished', 'timed_out') THEN status ELSE '' END,
                '',
                CASE status WHEN 'finished' THEN 'attended' WHEN 'assigned' THEN 'attended'
                     WHEN 'transferring' THEN 'attended' WHEN 'timed_out' THEN 'timed_out'
                     WHEN 'abandoned' THEN 'abandoned' ELSE '' END,
                t, CASE WHEN status = 'rejected' THEN NULL ELSE t END,
                CASE WHEN status <> 'queued' THEN NULL
                     WHEN g - %(closed)s - %(assigned)s - %(transferring)s <= %(due_queued)s
                     THEN now() - interval '1 second'
                     ELSE now() + interval '10 minutes' END,
                CASE WHEN status IN ('finished', 'assigned', 'transferring') THEN t + wait END,
                CASE WHEN status IN ('queued', 'rejected') THEN NULL ELSE t + wait END,
                CASE WHEN status IN ('finished', 'timed_out', 'abandoned') THEN t + wait
                          + interval '6 minutes'
                     WHEN status = 'rejected' THEN t END,
                t + wait,
                CASE WHEN status IN ('queued', 'rejected') THEN NULL
                     WHEN status = 'timed_out' THEN false
                     ELSE wait <= interval '20 seconds' END,
                CASE WHEN status IN ('finished', 'assigned', 'transferring')
                     THEN (%(agents)s::int[])[(c * %(per)s + g / 5 %% %(per)s + 1)::int] END,
                CASE WHEN status = 'transferring'
                     THEN (%(agents)s::int[])[(c * %(per)s + (g / 5 + 1) %% %(per)s + 1)::int] END,
                CASE WHEN status <> 'transferring' THEN NULL
                     WHEN g - %(closed)s - %(assigned)s <= %(due_transfers)s
                     THEN now() - interval '1 second'
                     ELSE now() + interval '2 minutes' END
            FROM generate_series(1, %(rows)s::bigint) AS g,
            LATERAL (SELECT (g::bigint * 2654435761 %% 4294967296) %% 100 AS h) AS hash,
            LATERAL (
                SELECT
                    CASE WHEN g > %(closed)s THEN g %% 5
                         WHEN h < 40 THEN 0 WHEN h < 65 THEN 1 WHEN h < 80 THEN 2
                         WHEN h < 92 THEN 3 ELSE 4 END AS c,
                    CASE WHEN g > %(closed)s + %(assigned)s + %(transferring)s THEN 'queued'
                         WHEN g > %(closed)s + %(assigned)s THEN 'transferring'
                         WHEN g > %(closed)s THEN 'assigned'
                         WHEN (h * 7) %% 100 < 8 THEN 'rejected'
                         WHEN (h * 7) %% 100 < 12 THEN 'timed_out'
                         WHEN (h * 7) %% 100 < 15 THEN 'abandoned'
                         ELSE 'finished' END AS status,
                    CASE WHEN g > %(closed)s THEN now() - (%(rows)s - g) * interval '1 second'
                         ELSE now() - interval '10 minutes'
                              - (%(closed)s - g) * %(step)s::interval END AS t,
                    (g * 7919 %% 90) * interval '1 second' AS wait
            ) AS row
            """,
            params,
        )
        for table in ("campaigns_interaction", "campaigns_agentprofile", "campaigns_member"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return campaigns


def _execute(sql: str, *, rollback: bool = False) -> None:
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql)
            cursor.fetchall()
        if rollback:
            transaction.set_rollback(True)


def _rolled_back(call: Callable) -> None:
    from django.db import transaction

    with transaction.atomic():
        call()
        transaction.set_rollback(True)


def _captured(call: Callable) -> list[str]:
    """The SQL statements `call` runs, as sent (literals inlined), rolled back."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        call()
        transaction.set_rollback(True)
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().upper().startswith("SELECT")
    ]


def _median_ms(call: Callable, runs: int) -> float:
    for _ in range(2):
        call()
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        durations.append((time.perf_counter() - started) * 1000)
    return common.median(durations)


def _show(label: str, ms: float, baseline: float, statements: list[str], full: bool) -> None:
    from django.db import connection, transaction

    print()
    print(f"{label}: {ms:.2f} ms median, {ms / baseline:.0f}x the baseline")
    for sql in statements:
        print(f"  SQL: {_shorten(sql)}")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            plan = [row[0] for row in cursor.fetchall()]
            transaction.set_rollback(True)
        for line in plan:
            if full or _is_interesting(line):
                print(f"    {line}")


def _is_interesting(line: str) -> bool:
    """The plan lines that say how rows are found: nodes, conditions and the total."""
    stripped = line.strip()
    return (
        "->" in line
        or stripped.startswith(("Index Cond", "Filter", "Rows Removed", "Execution Time"))
        or not line.startswith(" ")
    )


def _shorten(sql: str, width: int = 180) -> str:
    """The statement from its outermost FROM (the column list says little), one line."""
    sql = re.sub(r"\s+", " ", sql)
    depth = 0
    for i, char in enumerate(sql):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and sql.startswith(" FROM ", i):
            sql = "SELECT …" + sql[i:]
            break
    return sql if len(sql) <= width else sql[: width - 1] + "…"


if __name__ == "__main__":
    main()
