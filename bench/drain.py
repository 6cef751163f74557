"""Time for four routers to fill every agent slot from a full queue, against a floor.

    .venv/bin/python -m bench.drain                      # under a minute

One campaign (enabled SMS channel, rrmemory), 1,000 available agents of
capacity 10 (10,000 slots) and 10,000 queued conversations. Four router
processes each call `route_campaign(campaign_id=...)` until nothing is left
to route; the time is from the moment all four are released at once until
the last one stops.

Floor, on the same data reset to its initial state in the same run: four
processes running the bare claim-and-update loop (claim 50 queued rows
oldest first with FOR NO KEY UPDATE SKIP LOCKED, set status and agent,
commit), with no agent selection, capacity check or event row. It runs
before and after the routers; the ratio is against the mean of the two.

Between them, for comparison (not the goal; --no-single skips them): one
router process alone, and the floor loop in one process. Routers of one
campaign take turns on the campaign's row lock (first-in first-out), so one
router's throughput is the campaign's, however many routers run.

After each phase every conversation must be assigned once (after a router
phase, with one assigned event each) and no agent may hold more than their
capacity. Last, one router alone routes 20 batches in this process with
timers around its parts, to show where a batch's time goes (--breakdown 0
skips it).
"""

import argparse
import multiprocessing
import queue
import signal
import sys
import time

import psycopg

from bench import common

DB_NAME = "contactcenter_bench_drain"
ROUTERS = 4
GOAL_RATIO = 3.0

_CLAIM = """
    SELECT id FROM campaigns_interaction
    WHERE campaign_id = %(campaign)s AND channel_kind = 'sms' AND status = 'queued'
    ORDER BY queued_at, id
    LIMIT %(batch)s
    FOR NO KEY UPDATE SKIP LOCKED
"""
# Interaction ids run from 1 to the number of slots after each reset, so
# agent number (id mod agents) gets exactly `capacity` of them.
_ASSIGN = """
    UPDATE campaigns_interaction
    SET status = 'assigned', agent_id = (%(agents)s::int[])[(id %% %(n_agents)s)::int + 1],
        assigned_at = now(), left_queue_at = now(), queue_outcome = 'attended',
        service_level_met = false
    WHERE id = ANY(%(ids)s)
"""
_ANY_QUEUED = """
    SELECT EXISTS (
        SELECT 1 FROM campaigns_interaction WHERE campaign_id = %s AND status = 'queued'
    )
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--capacity", type=int, default=10)
    parser.add_argument("--strategy", default="rrmemory")
    parser.add_argument(
        "--batch-size", type=int, default=50, help="per claim (routing.ROUTE_BATCH_SIZE is 50)"
    )
    parser.add_argument("--time-limit", type=float, default=300, help="seconds per phase")
    parser.add_argument(
        "--no-single",
        dest="single",
        action="store_false",
        help="skip the one-router and one-writer-floor phases",
    )
    parser.add_argument(
        "--breakdown",
        type=int,
        default=20,
        metavar="BATCHES",
        help="afterwards, time this many batches of one router alone by part (0: skip)",
    )
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    slots = args.agents * args.capacity

    # Stopped with SIGTERM, still run the clean-up below (its own processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    print(f"Drain ({common.describe_machine()})")
    common.recreate_database(DB_NAME)
    # Agents send no heartbeats here; they must not go stale during a slow phase.
    env = common.bench_env(DB_NAME, AGENT_HEARTBEAT_STALE_SECONDS="86400")
    common.setup_django(env)
    try:
        _run(args, env, slots)
    finally:
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            common.drop_database(DB_NAME)


def _run(args, env: dict[str, str], slots: int) -> None:
    campaign = common.create_campaign(name="Drain", strategy=args.strategy)
    agents = common.create_agents(campaign=campaign, count=args.agents, capacity=args.capacity)
    agent_ids = [a.pk for a in agents]
    print(
        f"{slots} queued conversations, {args.agents} agents of capacity {args.capacity} "
        f"({args.strategy}), {ROUTERS} processes, batches of {args.batch_size}"
    )
    figures = {}
    failed = False
    # (label, router or floor, processes). The single-process phases show what
    # one writer does: routers of one campaign take turns on its row lock, so
    # the campaign's throughput is one router's however many run.
    phases = [
        ("floor", "floor", ROUTERS),
        ("routers", "routers", ROUTERS),
        ("one router", "routers", 1),
        ("floor, 1 writer", "floor", 1),
        ("floor again", "floor", ROUTERS),
    ]
    if not args.single:
        phases = [p for p in phases if p[2] == ROUTERS]
    for phase, kind, processes in phases:
        _load_queue(campaign_id=campaign.pk, count=slots)
        if kind == "routers":
            target = _router
            target_args = (env, campaign.pk, args.batch_size, args.time_limit)
        else:
            target = _floor_claimer
            target_args = (
                common.database_url(DB_NAME),
                campaign.pk,
                agent_ids,
                args.batch_size,
                args.time_limit,
            )
        seconds, per_process = _race(
            target, target_args, count=processes, time_limit=args.time_limit
        )
        figures[phase] = seconds
        counts = ", ".join(str(p["assigned"]) for p in per_process)
        extra = ""
        if kind == "routers":
            calls = sum(p["calls"] for p in per_process)
            batches = sum(p["batches"] for p in per_process)
            extra = f"; {calls} route_campaign calls, {batches} batches"
        print(
            f"{phase:16} {seconds:7.2f} s  {slots / seconds:8.0f} conversations/s  "
            f"(assigned per process: {counts}{extra})"
        )
        if not _verify(campaign_id=campaign.pk, slots=slots, with_events=kind == "routers"):
            failed = True
    floor = (figures["floor"] + figures["floor again"]) / 2
    ratio = figures["routers"] / floor
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    print(f"ratio routers / floor (mean of both floors): {ratio:.1f}x")
    print(f"goal: within {GOAL_RATIO:g}x of the floor: {verdict}")
    if args.single:
        print(
            f"not a goal, for comparison: one router / floor with 1 writer: "
            f"{figures['one router'] / figures['floor, 1 writer']:.1f}x; "
            f"{ROUTERS} routers / one router: {figures['routers'] / figures['one router']:.2f}x"
        )
    if args.breakdown:
        _load_queue(campaign_id=campaign.pk, count=slots)
        _breakdown(campaign_id=campaign.pk, batches=args.breakdown, batch_size=args.batch_size)
    if failed:
        sys.exit("a check failed")


def _load_queue(*, campaign_id: int, count: int) -> None:
    """Empty the queue tables and fill them with `count` queued conversations."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE campaigns_interactionevent, campaigns_interaction RESTART IDENTITY CASCADE"
        )
        cursor.execute(
            """
            INSERT INTO campaigns_interaction (
                campaign_id, channel_kind, customer_number, direction, status, reject_reason,
                close_reason, transfer_note, queue_outcome, created_at, queued_at,
                last_message_at
            )
            SELECT %s, 'sms', '+1555' || lpad(g::text, 7, '0'), 'inbound', 'queued', '', '',
                   '', '', t, t, t
            FROM generate_series(1, %s) AS g,
                 LATERAL (SELECT now() - interval '1 hour' + g * interval '1 ms') AS s(t)
            ORDER BY g
            """,
            [campaign_id, count],
        )
        cursor.execute(
            """
            INSERT INTO campaigns_interactionevent (
                interaction_id, from_status, to_status, actor, reason, data, created_at
            )
            SELECT id, '', 'queued', 'customer', 'new conversation', '{}', created_at
            FROM campaigns_interaction ORDER BY id
            """
        )
        cursor.execute("UPDATE campaigns_campaign SET rr_last_member_id = NULL")
        cursor.execute(
            "UPDATE campaigns_agentprofile SET last_assignment_at = NULL, last_seen_at = now()"
        )
        for table in (
            "campaigns_interaction",
            "campaigns_interactionevent",
            "campaigns_agentprofile",
            "campaigns_campaign",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def _race(target, target_args: tuple, *, count: int, time_limit: float) -> tuple[float, list[dict]]:
    """Run `count` processes released together; seconds from release to the last stop."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*target_args, barrier, results)) for _ in range(count)
    ]
    for process in processes:
        process.start()
    per_process: list[dict] = []
    deadline = time.monotonic() + time_limit + 150
    try:
        while len(per_process) < len(processes) and time.monotonic() < deadline:
            try:
                per_process.append(results.get(timeout=1))
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    break
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
    if len(per_process) < len(processes):
        raise RuntimeError("a process failed or ran out of time (its traceback is above)")
    start = min(p["start"] for p in per_process)
    end = max(p["end"] for p in per_process)
    return end - start, per_process


def _router(
    env: dict[str, str], campaign_id: int, batch_size: int, time_limit: float, barrier, results
) -> None:
    common.setup_django(env)
    from campaigns.models import Interaction
    from campaigns.routing import route_campaign

    queued = Interaction.objects.filter(campaign_id=campaign_id, status="queued")
    queued.exists()  # connect before the start
    barrier.wait(timeout=120)
    start = time.monotonic()
    assigned = calls = batches = idle = 0
    while time.monotonic() - start < time_limit and idle < 1000:
        result = route_campaign(campaign_id=campaign_id, batch_size=batch_size)
        calls += 1
        batches += result.batches
        assigned += result.assigned
        if result.assigned:
            idle = 0
        elif not queued.exists():
            break
        else:
            # The rest is claimed by the other routers right now.
            idle += 1
            time.sleep(0.002)
    end = time.monotonic()
    results.put(
        {"start": start, "end": end, "assigned": assigned, "calls": calls, "batches": batches}
    )


def _floor_claimer(
    url: str,
    campaign_id: int,
    agent_ids: list[int],
    batch_size: int,
    time_limit: float,
    barrier,
    results,
) -> None:
    params = {"campaign": campaign_id, "batch": batch_size}
    assign = {"agents": agent_ids, "n_agents": len(agent_ids)}
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1")
        conn.commit()
        barrier.wait(timeout=120)
        start = time.monotonic()
        assigned = batches = idle = 0
        while time.monotonic() - start < time_limit and idle < 1000:
            ids = [row[0] for row in conn.execute(_CLAIM, params).fetchall()]
            if ids:
                conn.execute(_ASSIGN, {**assign, "ids": ids})
                conn.commit()
                assigned += len(ids)
                batches += 1
                idle = 0
                continue
            conn.commit()
            any_queued = conn.execute(_ANY_QUEUED, [campaign_id]).fetchone()[0]
            conn.commit()
            if not any_queued:
                break
            idle += 1
            time.sleep(0.002)
        end = time.monotonic()
    results.put({"start": start, "end": end, "assigned": assigned, "batches": batches})


def _breakdown(*, campaign_id: int, batches: int, batch_size: int) -> None:
    """Time `batches` routing batches of one router, in this process, by part.

    Timers wrap the functions `_route_batch` calls (patched for the run, the
    same objects it looks up) and every SQL statement; product code is not
    changed. A statement run outside those functions is a part of its own,
    named after what it does. One `_Snapshot` serves all the batches, as in
    one `route_campaign` call, so `eligible_agents()` runs once.
    """
    from contextlib import ExitStack
    from unittest import mock

    from django.db import DEFAULT_DB_ALIAS, connection, connections
    from django.db.models.query import QuerySet

    from campaigns import routing, strategies

    spent: dict[str, list[float]] = {}  # label: [wall seconds, of which SQL seconds]
    current = ["other"]

    def timed(label_of, original):
        def wrapper(*args, **kwargs):
            if current[0] != "other":  # nested: counted in the outer part
                return original(*args, **kwargs)
            current[0] = label_of(*args)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent.setdefault(current[0], [0.0, 0.0])[0] += time.perf_counter() - started
                current[0] = "other"

        return wrapper

    def statement_label(sql: str) -> str:
        if "SKIP LOCKED" in sql and "campaigns_interaction" in sql:
            return "claim (SQL, SKIP LOCKED)"
        if sql.startswith("SELECT") and "campaigns_campaign" in sql and "FOR NO KEY" in sql:
            return "campaign row lock (SQL)"
        if sql.startswith("UPDATE") and "campaigns_agentprofile" in sql:
            return "last_assignment_at UPDATE (SQL)"
        if sql.startswith("UPDATE") and "campaigns_campaign" in sql:
            return "round-robin memory UPDATE (SQL)"
        return "other SQL"

    def sql_timer(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            if current[0] == "other":
                part = spent.setdefault(statement_label(sql.lstrip()), [0.0, 0.0])
                part[0] += elapsed
            else:
                part = spent.setdefault(current[0], [0.0, 0.0])
            part[1] += elapsed

    kind, settings_ = routing._routable_kinds(campaign_id)[0]
    channel = routing.get_channel(kind)
    snapshot = routing._Snapshot()
    patches = [
        (routing, "eligible_agents", "eligible_agents() (once)"),
        (routing, "_last_served", "_last_served()"),
        (strategies, "rank", "strategies.rank()"),
        (routing, "agent_profiles_locked", "agent profile locks"),
        (routing, "agent_loads", "agent_loads()"),
        (routing, "_transition", "_transition() (events built)"),
        (routing, "_assign_fields", "_assign_fields()"),
        (routing, "_update_rows", "Interaction UPDATE (_update_rows)"),
        (type(channel), "interactions_assigned", "channel: interactions_assigned()"),
    ]
    with ExitStack() as stack:
        stack.enter_context(connection.execute_wrapper(sql_timer))
        for owner, name, label in patches:
            wrapped = timed(lambda *a, label=label: label, getattr(owner, name))
            stack.enter_context(mock.patch.object(owner, name, wrapped))
        # The transaction's COMMIT (fsync) is no cursor statement: timed apart.
        database = connections[DEFAULT_DB_ALIAS]
        stack.enter_context(
            mock.patch.object(database, "commit", timed(lambda *a: "COMMIT", database.commit))
        )
        stack.enter_context(
            mock.patch.object(
                QuerySet,
                "bulk_create",
                timed(lambda qs, *a: f"{qs.model.__name__}.bulk_create()", QuerySet.bulk_create),
            )
        )
        started = time.perf_counter()
        assigned = 0
        for _ in range(batches):
            assigned += routing._route_batch(
                campaign_id=campaign_id,
                kind=kind,
                settings_=settings_,
                batch_size=batch_size,
                rng=None,
                snapshot=snapshot,
            )
        total = time.perf_counter() - started
    if "COMMIT" in spent:
        spent["COMMIT"][1] = spent["COMMIT"][0]  # a round trip, nearly all server time
    parts_total = sum(wall for wall, _ in spent.values())
    spent["the rest (Python: querysets, rows built, loop)"] = [total - parts_total, 0.0]
    sql_total = sum(sql for _, sql in spent.values())
    per = 1000 / batches
    print(
        f"where the time goes: one router alone, {batches} batches ({assigned} assigned): "
        f"{total * per:.1f} ms a batch, of which SQL round trips {sql_total * per:.1f} ms"
    )
    for label, (wall, sql) in sorted(spent.items(), key=lambda item: -item[1][0]):
        print(
            f"  {label:46}{wall * per:7.2f} ms a batch ({sql * per:.2f} ms SQL, "
            f"{(wall - sql) * per:.2f} ms Python)"
        )


def _verify(*, campaign_id: int, slots: int, with_events: bool) -> bool:
    """Print and check: every conversation assigned once, nobody above capacity."""
    from campaigns.models import Interaction

    report = common.integrity(campaign_id=campaign_id)
    queued = Interaction.objects.filter(campaign_id=campaign_id, status="queued").count()
    problems = []
    if report["assigned"] != slots or queued:
        problems.append(f"{report['assigned']} assigned and {queued} queued of {slots}")
    if report["over_capacity"]:
        problems.append(f"{report['over_capacity']} agents above capacity")
    if with_events and (report["without_event"] or report["twice"]):
        problems.append(
            f"{report['without_event']} without an assigned event, "
            f"{report['twice']} with more than one"
        )
    print(f"                 check: {'; '.join(problems) or 'every slot filled once, nobody over'}")
    return not problems


if __name__ == "__main__":
    main()
