"""Enqueue-to-assignment latency through a real Celery worker, Redis and PostgreSQL.

    .venv/bin/python -m bench.routing_latency            # about two minutes

A worker subprocess (`celery worker --pool=prefork --concurrency=2 -Q routing,celery`)
consumes a spare Redis database. Conversations arrive at a steady rate through
`interaction_enqueue_new` inside `transaction.atomic()`, whose on-commit hook
publishes `route_campaign_task`, for one campaign (enabled SMS channel,
rrmemory) with 50 available agents whose consoles send heartbeats throughout.

Baseline, through the same worker and broker in the same run: a no-op task's
publish → executed. Blocks of baseline and routing alternate, so drift of a
noisy machine touches both. Two figures for each:

- stamped: the worker's clock when it did the work (the conversation's
  `assigned_at`, the no-op's `ran_at`) minus the sender's (`queued_at`, the
  moment before `delay()`);
- observed: when a poller in this process (every 10 ms) first saw the
  committed row, minus the same start. This one includes the commit and is
  the one the goal (p99 < 250 ms) is judged on.
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import redis

from bench import common

DB_NAME = "contactcenter_bench_latency"
GOAL_P99_MS = 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="arrivals per second")
    parser.add_argument("--rounds", type=int, default=4, help="baseline/routing block pairs")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--capacity", type=int, default=50)
    parser.add_argument("--strategy", default="rrmemory")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--redis-db", type=int, default=13, help="a spare db: it is flushed")
    parser.add_argument("--poll-ms", type=float, default=10.0)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if args.redis_db == 0:
        parser.error("use a spare Redis database, not 0")

    # Stopped with SIGTERM, still run the clean-up below (its own processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    print(f"Routing latency ({common.describe_machine()})")
    broker_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    common.recreate_database(DB_NAME)
    env = common.bench_env(DB_NAME, CELERY_BROKER_URL=broker_url)
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    common.setup_django(env)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            _run(args, env, Path(tmp) / "worker.log")
    finally:
        broker.flushdb()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            common.drop_database(DB_NAME)


def _run(args, env: dict[str, str], log_path: Path) -> None:
    from django.db import connection

    from campaigns.models import Interaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_noop (n integer PRIMARY KEY, ran_at double precision)")
    campaign = common.create_campaign(name="Latency", strategy=args.strategy)
    agents = common.create_agents(campaign=campaign, count=args.agents, capacity=args.capacity)
    poller = Poller(common.database_url(DB_NAME), interval=args.poll_ms / 1000)
    heartbeats = Heartbeats(agents, every_seconds=15.0)
    worker = _start_worker(env, log_path, args.concurrency)
    try:
        poller.start()
        heartbeats.start()
        _wait_for_worker(worker, poller, log_path)
        driver = Driver(campaign=campaign, poller=poller, rate=args.rate)
        # Warm up: each worker child opens its database connection, imports
        # the routing code and caches its plans.
        driver.noop_block(range(-40, -1))
        driver.route_block(40, measured=False)
        per_block = args.interactions // args.rounds
        for _ in range(args.rounds):
            driver.noop_block(range(driver.next_noop, driver.next_noop + per_block))
            driver.route_block(per_block, measured=True)
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited:\n{log_path.read_text()[-4000:]}")
    finally:
        heartbeats.stop()
        poller.stop()
        _stop_worker(worker)

    routed = {
        pk: (queued_at.timestamp(), assigned_at.timestamp() if assigned_at else None)
        for pk, queued_at, assigned_at in Interaction.objects.filter(
            pk__in=driver.measured
        ).values_list("pk", "queued_at", "assigned_at")
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT n, ran_at FROM bench_noop WHERE n >= 0")
        ran = dict(cursor.fetchall())
    noop_stamped = [(ran[n] - sent) * 1000 for n, sent in driver.noop_sent.items() if n in ran]
    noop_observed = _observed(driver.noop_sent, poller.noops_seen)
    route_stamped = [(a - q) * 1000 for q, a in routed.values() if a is not None]
    route_observed = _observed({pk: routed[pk][0] for pk in routed}, poller.interactions_seen)

    print(
        f"{len(driver.measured)} conversations at {args.rate:g}/s in {args.rounds} blocks, "
        f"{args.agents} agents ({args.strategy}, capacity {args.capacity}), worker prefork "
        f"x{args.concurrency}, Redis db {args.redis_db}, poll every {args.poll_ms:g} ms"
    )
    print(f"{'':26}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    rows = [
        ("no-op task, stamped", noop_stamped, len(driver.noop_sent)),
        ("no-op task, observed", noop_observed, len(driver.noop_sent)),
        ("routing, stamped", route_stamped, len(driver.measured)),
        ("routing, observed", route_observed, len(driver.measured)),
    ]
    for label, values, expected in rows:
        missing = f"   ({expected - len(values)} never seen)" if len(values) < expected else ""
        print(
            f"{label:26}{len(values):>6}"
            + "".join(f"{common.percentile(values, p):>9.1f}" for p in (50, 90, 99))
            + f"{max(values, default=float('nan')):>9.1f}{missing}"
        )
    for kind, route, noop in (
        ("stamped", route_stamped, noop_stamped),
        ("observed", route_observed, noop_observed),
    ):
        ratios = [common.percentile(route, p) / common.percentile(noop, p) for p in (50, 99)]
        print(f"ratio routing / no-op ({kind}): p50 {ratios[0]:.1f}x, p99 {ratios[1]:.1f}x")
    p99 = common.percentile(route_observed, 99)
    complete = len(route_observed) == len(driver.measured)
    verdict = "met" if complete and p99 < GOAL_P99_MS else "MISSED"
    print(f"goal: routing p99 (observed) < {GOAL_P99_MS} ms: {verdict} ({p99:.1f} ms)")
    if not _check_integrity(campaign, driver.measured):
        sys.exit("the integrity check failed")


def _observed(sent: dict, seen: dict) -> list[float]:
    return [(seen[key] - start) * 1000 for key, start in sent.items() if key in seen]


def _check_integrity(campaign, measured: list[int]) -> bool:
    from campaigns.models import Interaction

    report = common.integrity(campaign_id=campaign.pk)
    queued = Interaction.objects.filter(pk__in=measured, status="queued").count()
    print(
        f"integrity: {report['assigned']} assigned, {report['without_event']} without an "
        f"assigned event, {report['twice']} with more than one, {queued} measured still "
        f"queued, {report['over_capacity']} agents above capacity"
    )
    return not (queued or report["without_event"] or report["twice"] or report["over_capacity"])


class Driver:
    """Sends no-op tasks and conversations at a steady rate, one block at a time."""

    def __init__(self, *, campaign, poller: "Poller", rate: float) -> None:
        self.campaign = campaign
        self.poller = poller
        self.interval = 1 / rate
        self.noop_sent: dict[int, float] = {}
        self.measured: list[int] = []
        self.next_noop = 0
        self.next_number = 0

    def noop_block(self, numbers: range) -> None:
        from bench.latency_tasks import bench_noop_task

        start = time.monotonic()
        for i, n in enumerate(numbers):
            _sleep_until(start + i * self.interval)
            sent = time.time()
            bench_noop_task.delay(n)
            self.poller.expect_noop(n)
            if n >= 0:
                self.noop_sent[n] = sent
        self.next_noop = max(self.next_noop, numbers.stop)
        self.poller.wait_idle(timeout=30)

    def route_block(self, count: int, *, measured: bool) -> None:
        from django.db import transaction
        from django.utils import timezone

        from campaigns.services import interaction_enqueue_new

        start = time.monotonic()
        for i in range(count):
            _sleep_until(start + i * self.interval)
            self.next_number += 1
            with transaction.atomic():
                interaction = interaction_enqueue_new(
                    campaign=self.campaign,
                    channel_kind="sms",
                    customer_number=f"+1555{self.next_number:07d}",
                    max_queue_seconds=0,
                    now=timezone.now(),
                )
            self.poller.expect_interaction(interaction.pk)
            if measured:
                self.measured.append(interaction.pk)
        self.poller.wait_idle(timeout=30)


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class Poller(threading.Thread):
    """Notes when each awaited row first becomes visible to another connection."""

    def __init__(self, url: str, *, interval: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.lock = threading.Lock()
        self.pending_interactions: set[int] = set()
        self.pending_noops: set[int] = set()
        self.interactions_seen: dict[int, float] = {}
        self.noops_seen: dict[int, float] = {}
        self.stopping = threading.Event()

    def expect_interaction(self, pk: int) -> None:
        with self.lock:
            self.pending_interactions.add(pk)

    def expect_noop(self, n: int) -> None:
        with self.lock:
            self.pending_noops.add(n)

    def wait_idle(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.pending_interactions and not self.pending_noops:
                    return
            time.sleep(0.05)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.is_set():
                with self.lock:
                    interactions = list(self.pending_interactions)
                    noops = list(self.pending_noops)
                # Anything committed before this moment is in the snapshot below.
                polled_at = time.time()
                done = ran = []
                if interactions:
                    done = conn.execute(
                        "SELECT id FROM campaigns_interaction"
                        " WHERE id = ANY(%s) AND status <> 'queued'",
                        [interactions],
                    ).fetchall()
                if noops:
                    ran = conn.execute(
                        "SELECT n FROM bench_noop WHERE n = ANY(%s)", [noops]
                    ).fetchall()
                with self.lock:
                    for (pk,) in done:
                        self.interactions_seen[pk] = polled_at
                        self.pending_interactions.discard(pk)
                    for (n,) in ran:
                        self.noops_seen[n] = polled_at
                        self.pending_noops.discard(n)
                self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class Heartbeats(threading.Thread):
    """Every agent's console sends a heartbeat every `every_seconds`, spread evenly."""

    def __init__(self, agents: list, *, every_seconds: float) -> None:
        super().__init__(daemon=True)
        self.agents = agents
        self.gap = every_seconds / len(agents)
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from campaigns.routing import agent_heartbeat

        try:
            while not self.stopping.is_set():
                for agent in self.agents:
                    agent_heartbeat(agent=agent)
                    if self.stopping.wait(self.gap):
                        return
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def _start_worker(env: dict[str, str], log_path: Path, concurrency: int) -> subprocess.Popen:
    log = log_path.open("w")
    return subprocess.Popen(
        [
            common.PYTHON,
            "-m",
            "celery",
            "-A",
            "contactcenter",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "-Q",
            # routing: route_campaign_task's queue; celery: the no-op baseline.
            "routing,celery",
            "-I",
            "bench.latency_tasks",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
            "-n",
            "bench-latency@127.0.0.1",
        ],
        cwd=common.ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own process group, so stopping it also stops its pool children.
        start_new_session=True,
    )


def _wait_for_worker(worker: subprocess.Popen, poller: Poller, log_path: Path) -> None:
    from bench.latency_tasks import bench_noop_task

    bench_noop_task.delay(-1)
    poller.expect_noop(-1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if -1 in poller.noops_seen:
            return
        if worker.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"the worker did not start:\n{log_path.read_text()[-4000:]}")


def _stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
    # Pool children that outlived the main process.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
