"""A mixed soak: gunicorn, a Celery worker and beat under steady traffic and 50 agents.

    .venv/bin/python -m bench.soak                 # 5 minutes, plus about a minute around it
    .venv/bin/python -m bench.soak --minutes 1     # a quick try

Processes, all on loopback and all stopped by the benchmark: gunicorn (4
sync workers, as in bench/webhook_load.py, without --max-requests so that
no worker recycling hides a leak), one Celery worker consuming every queue
in CELERY_TASK_QUEUES (`-Q routing,sms,bots,celery`, prefork, 2 children),
beat with the database scheduler (its sweeps every 2 s, route-all every
5 s), PostgreSQL, a spare Redis database as the broker, and, in this
process, the tests' fake Twilio REST API (TWILIO_API_BASE_URL) that the
worker sends the outbound texts to.

One campaign on a Twilio number (`twilio_connect`), round robin with memory,
a queue timeout of 120 s and a start bot that greets each new conversation
(one text). Customers (a few hundred numbers, in a process of their own)
text at a steady rate through signed inbound webhooks; a text from a
customer with an open conversation joins it. 50 agents of capacity 2, run
by 10 threads calling the services the agent console calls, each with its
own database connection: set available, a heartbeat every 15 s, the
console's list every 2 s, open a new conversation (its page marks it read),
reply once after 1-4 s, finish 3-10 s later; now and then, with nothing
held, a break of 10-30 s.

When the time is up the texts stop, the agents finish what they hold and
the queues drain (at most --drain-seconds), the agents sign off. Checks: no
error anywhere (webhook answers, agents' service calls, the logs of
gunicorn, the worker and beat); nothing stuck (sampled every 5 s: nothing
queued longer than --stuck-seconds while an available agent had a free
slot; at the end nothing queued or held, no conversation timed out, every
conversation the agents held finished, each with one assigned and one
finished event, no bot still running, every outbound text handed to the
fake Twilio exactly once, every inbound one stored exactly once); the RSS
of every process (/proc/<pid>/status VmRSS) when started, after the warm-up
texts, a minute in and at the end: flat if nothing grew by more than 2 MB
or 5 % after that minute.
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench import common
from bench.webhook_load import (
    HOST,
    Block,
    CpuMeter,
    Gunicorn,
    RequestFactory,
    _send,
    children,
    database_backends,
    declare_queues,
    free_port,
    machine_cpu,
    rss_kb,
    spare_redis,
    stop_group,
)

DB_NAME = "contactcenter_bench_soak"
CAPACITY = 2
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 2.0
# Log lines that are the benchmark's own doing, not a problem.
EXPECTED_LOG = ("Method Not Allowed (GET): /sms/twilio/inbound/",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="of traffic")
    parser.add_argument("--rate", type=float, default=6.0, help="inbound texts a second")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--agent-threads", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--max-requests", type=int, default=0, help="gunicorn's (the Procfile has 1000)"
    )
    parser.add_argument("--celery-workers", type=int, default=1, help="worker processes (-Q all)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children each")
    parser.add_argument("--stuck-seconds", type=float, default=15.0)
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    parser.add_argument("--redis-db", type=int, default=11, help="a spare db: it is flushed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if args.redis_db == 0:
        parser.error("use a spare Redis database, not 0")

    # Stopped with SIGTERM, still run the clean-up below (its own processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    print(f"Soak ({common.describe_machine()})")
    broker_url = f"redis://{HOST}:6379/{args.redis_db}"
    broker = spare_redis(broker_url)
    common.recreate_database(DB_NAME)
    from tests.fake_twilio import start_fake_twilio

    fake, fake_server = start_fake_twilio()
    env = common.bench_env(
        DB_NAME,
        CELERY_BROKER_URL=broker_url,
        DEBUG="false",
        PUBLIC_BASE_URL="",
        TWILIO_API_BASE_URL=fake.base_url,
        LOG_LEVEL="WARNING",
    )
    common.setup_django(env)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
            failed = Soak(args, env, fake, Path(tmp)).run()
    finally:
        fake_server.shutdown()
        fake_server.server_close()
        broker.flushdb()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            common.drop_database(DB_NAME)
    if failed:
        sys.exit("a check failed")


# Processes -----------------------------------------------------------------------


class Service:
    """A Celery worker or beat in its own process group, logging to a file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=common.ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        if not self.alive():
            return []
        return [self.process.pid, *children(self.process.pid)]

    def stop(self) -> None:
        if self.process is not None:
            # A warm shutdown lets running tasks finish (their time limit is 60 s).
            stop_group(self.process, grace=30)


def _celery_queues() -> str:
    from django.conf import settings

    queues = getattr(settings, "CELERY_TASK_QUEUES", None)
    return ",".join(q.name for q in queues) if queues else "celery"


def _worker(number: int, args, env: dict[str, str], tmp: Path) -> Service:
    return Service(
        f"celery worker {number}",
        [
            common.PYTHON,
            "-m",
            "celery",
            "-A",
            "contactcenter",
            "worker",
            "-Q",
            _celery_queues(),
            "--pool=prefork",
            f"--concurrency={args.concurrency}",
            "-n",
            f"soak{number}@{HOST}",
            "--loglevel=WARNING",
        ],
        env,
        tmp / f"worker{number}.log",
    )


def _beat(env: dict[str, str], tmp: Path) -> Service:
    return Service(
        "celery beat",
        [
            common.PYTHON,
            "-m",
            "celery",
            "-A",
            "contactcenter",
            "beat",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--loglevel=WARNING",
        ],
        env,
        tmp / "beat.log",
    )


def _wait_for_workers(count: int, services: list[Service]) -> None:
    from contactcenter.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(not s.alive() for s in services):
            break
        if len(app.control.ping(timeout=1.0)) >= count:
            return
    raise RuntimeError("the Celery workers did not answer a ping within 60 s")


# The soak ------------------------------------------------------------------------


class Soak:
    def __init__(self, args, env: dict[str, str], fake, tmp: Path) -> None:
        self.args = args
        self.env = env
        self.fake = fake
        self.tmp = tmp
        self.url = common.database_url(DB_NAME)

    def run(self) -> bool:
        args = self.args
        agents = _set_up(args)
        declare_queues()
        port = free_port()
        customers = [f"+1415777{n:04d}" for n in range(args.customers)]
        gunicorn = Gunicorn(
            self.env,
            port=port,
            workers=args.workers,
            worker_class="sync",
            threads=1,
            log_path=self.tmp / "gunicorn.log",
            app="contactcenter.wsgi:application",
            extra=["--max-requests", str(args.max_requests)] if args.max_requests else [],
        )
        services = [_worker(n, args, self.env, self.tmp) for n in range(1, args.celery_workers + 1)]
        beat = _beat(self.env, self.tmp)
        print(
            f"gunicorn {gunicorn.describe()}"
            + (f", --max-requests {args.max_requests}" if args.max_requests else "")
            + f"; {args.celery_workers} Celery worker(s) -Q {_celery_queues()}, prefork x "
            f"{args.concurrency}; beat (database scheduler); Redis db {args.redis_db}; fake "
            f"Twilio at {self.fake.base_url}"
        )
        print(
            f"{args.minutes:g} min of texts at {args.rate:g}/s from {args.customers} customers; "
            f"{args.agents} agents of capacity {CAPACITY} in {args.agent_threads} threads"
        )
        sender = Sender(
            port=port,
            customers=customers,
            seed=args.seed,
            rate=args.rate,
            seconds=args.minutes * 60,
        )
        processes = {"gunicorn": gunicorn.pids, "beat": beat.pids}
        for service in services:
            processes[service.name] = service.pids
        meter = CpuMeter(
            {
                **processes,
                "postgres backends": lambda: database_backends(DB_NAME),
                "agents (this one)": lambda: [os.getpid()],
                "customers": lambda: [sender.process.pid] if sender.process.pid else [],
            },
            interval=1.0,
        )
        memory = Memory(processes)
        monitor = Monitor(self.url, stuck_seconds=args.stuck_seconds, memory=memory)
        crew = [
            AgentThread(agents[i :: args.agent_threads], seed=args.seed + i)
            for i in range(args.agent_threads)
        ]
        started = time.monotonic()
        try:
            gunicorn.start()
            for service in [*services, beat]:
                service.start()
            _wait_for_workers(args.celery_workers, services)
            sender.start()
            memory.sample("boot")
            # Each gunicorn worker loads the URLs and views and connects to the
            # database on its first request; those are not the soak's figures.
            warm_up = sender.warm_up(count=8 * args.workers)
            memory.sample("start")
            meter.start()
            cpu_start, machine_start = meter.totals(), machine_cpu()
            measured_from = time.monotonic()
            monitor.start()
            for thread in crew:
                thread.start()
            sender.go()
            warm_at = min(60.0, args.minutes * 60 / 5)
            self._wait(sender, [gunicorn, *services, beat], memory, warm_at)
            print(f"{_clock(started)} texts stopped; draining (at most {args.drain_seconds:g} s)")
            drained = _drain(self.url, seconds=args.drain_seconds)
            for thread in crew:
                thread.stop()
            memory.sample("end")
            cpu_used = {k: v - cpu_start.get(k, 0.0) for k, v in meter.totals().items()}
            (busy, total), (busy_before, total_before) = machine_cpu(), machine_start
            machine_busy = (busy - busy_before) / max(total - total_before, 1)
            elapsed = time.monotonic() - measured_from
            alive = all(p.alive() for p in [gunicorn, *services, beat])
        finally:
            sender.stop()
            for thread in crew:
                thread.stop()
            monitor.stop()
            meter.stop()
            beat.stop()
            for service in services:
                service.stop()
            gunicorn.stop()
        print(f"{_clock(started)} everything stopped")
        logs = {
            "gunicorn": self.tmp / "gunicorn.log",
            **{s.name: s.log_path for s in services},
            "beat": beat.log_path,
        }
        return not _report(
            args=args,
            sender=sender,
            warm_up=warm_up,
            crew=crew,
            monitor=monitor,
            memory=memory,
            fake=self.fake,
            drained=drained,
            alive=alive,
            logs=logs,
            cpu_used=cpu_used,
            machine_busy=machine_busy,
            elapsed=elapsed,
        )

    def _wait(self, sender, processes, memory: "Memory", warm_at: float) -> None:
        """Until the sender has sent everything; samples memory along the way."""
        started = time.monotonic()
        deadline = started + sender.seconds + 120
        warm = False
        next_print = started + 30
        while not sender.wait(timeout=1.0):
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError("the customers' process is more than 2 minutes late")
            if not warm and now - started >= warm_at:
                memory.sample("warm")
                warm = True
            if now >= next_print:
                memory.sample(f"{now - started:.0f} s")
                next_print += 30
            if not all(p.alive() for p in processes):
                raise RuntimeError("a server process exited during the soak")
        if not warm:
            memory.sample("warm")


def _clock(started: float) -> str:
    return f"[{time.monotonic() - started:6.1f} s]"


def _set_up(args):
    """The campaign on a Twilio number with its start bot; its agents, signed off."""
    from bots.models import Bot, BotStep
    from bots.services import bot_save
    from campaigns.models import AgentProfile
    from sms_channel.models import SmsChannel
    from sms_channel.services import sms_channel_save, twilio_connect
    from tests.factories import CampaignFactory
    from tests.sms_channel.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, TWILIO_NUMBER

    campaign = CampaignFactory(name="Soak")
    channel = twilio_connect(
        campaign_name=campaign.name,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        number=TWILIO_NUMBER,
    )
    greeting = bot_save(bot=Bot(name="Soak greeting"))
    BotStep.objects.create(
        bot=greeting,
        position=10,
        kind=BotStep.Kind.SEND_MESSAGE,
        text="Thanks for texting {campaign}. You are number {queue_position}; "
        "the wait is {estimated_wait}.",
    )
    channel.strategy = SmsChannel.Strategy.RRMEMORY
    channel.max_queue_seconds = 120
    channel.bot_on_start = greeting
    sms_channel_save(channel=channel)
    agents = common.create_agents(campaign=campaign, count=args.agents, capacity=CAPACITY)
    # They sign in through the service when the soak starts.
    AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE, last_seen_at=None)
    from django.db import connection

    connection.close()
    return agents


# Customers ------------------------------------------------------------------------


class Sender:
    """The customers: signed inbound webhooks at a steady rate, open loop.

    They run in a process of their own: in this one the agents' threads hold
    the GIL most of the time and would delay the sends and their timing.
    """

    def __init__(self, *, port: int, customers: list[str], seed: int, rate: float, seconds: float):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.total = int(rate * seconds)
        self.seconds = seconds
        self.process = context.Process(
            target=_customers,
            args=(child, port, customers, seed, rate, self.total),
            name="bench-soak-customers",
            daemon=True,
        )
        self.results: dict | None = None

    def start(self) -> None:
        self.process.start()

    def warm_up(self, *, count: int) -> Block:
        """`count` texts, four at a time, before the soak (not in its figures)."""
        self.conn.send(("warm up", count))
        return self._receive(timeout=120)

    def go(self) -> None:
        self.conn.send(("go", None))

    def wait(self, timeout: float) -> bool:
        """True once every text is sent and answered (or the process is gone)."""
        if self.results is None and self.conn.poll(timeout):
            self.results = self.conn.recv()
        return self.results is not None or not self.process.is_alive()

    def _receive(self, *, timeout: float):
        if not self.conn.poll(timeout):
            raise RuntimeError("the customers' process did not answer")
        return self.conn.recv()

    def stop(self) -> None:
        if self.process.is_alive() and self.results is None:
            with contextlib.suppress(OSError):
                self.conn.send(("stop", None))
            with contextlib.suppress(OSError, EOFError, RuntimeError):
                self.results = self._receive(timeout=90)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)


def _customers(conn, port: int, customers: list[str], seed: int, rate: float, total: int):
    """The customers' process: warm up, then send `total` texts at `rate`, then report."""
    factory = RequestFactory(port=port, customers=customers, rng=random.Random(seed))
    command, count = conn.recv()
    if command == "warm up":
        conn.send(asyncio.run(_warm_up(factory, port, count)))
        command, _ = conn.recv()
    block = Block(label="webhooks", count=total)
    # (seconds since the first text, latency in ms) of every answered one
    timeline: list[tuple[float, float]] = []
    if command == "go":
        asyncio.run(_send_all(conn, factory, port, rate, total, block, timeline))
    conn.send({"block": block, "timeline": timeline, "sids": factory.webhook_sids})


async def _warm_up(factory: RequestFactory, port: int, count: int) -> Block:
    block = Block(label="warm-up", count=count)
    requests = iter(factory.webhooks(count))

    async def client() -> None:
        for request in requests:
            started = time.perf_counter()
            block.note(started, await _send(port, request, 30.0))

    await asyncio.gather(*(client() for _ in range(4)))
    return block


async def _send_all(conn, factory, port, rate, total, block: Block, timeline: list) -> None:
    pending = set()
    start = time.perf_counter()

    async def one(due: float, request: bytes) -> None:
        answered = len(block.latencies)
        block.note(due, await _send(port, request, 30.0))
        if len(block.latencies) > answered:
            timeline.append((due - start, block.latencies[-1]))

    for i in range(total):
        if conn.poll():  # told to stop
            break
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        (request,) = factory.webhooks(1)
        task = asyncio.create_task(one(due, request))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=60)
    block.seconds = time.perf_counter() - start


# Agents --------------------------------------------------------------------------


@dataclass
class Plan:
    """What an agent will do with one conversation, and when."""

    reply_at: float
    finish_after: float
    replied: bool = False


class AgentThread(threading.Thread):
    """Plays several agents' consoles, each visited every POLL_SECONDS."""

    def __init__(self, agents: list, *, seed: int) -> None:
        super().__init__(daemon=True)
        self.agents = agents
        self.rng = random.Random(seed)
        self.actions: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.plans: dict[int, Plan] = {}
        self.breaks: dict[int, float] = {}  # agent id -> when the break ends
        self.heartbeats: dict[int, float] = {}
        self.finishing = threading.Event()  # no new breaks
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            for agent in self.agents:
                self._call("available", self._set_status, agent, "available")
                self.heartbeats[agent.pk] = time.monotonic()
            gap = POLL_SECONDS / len(self.agents)
            while not self.stopping.is_set():
                for agent in self.agents:
                    self._visit(agent)
                    if self.stopping.wait(gap):
                        break
            for agent in self.agents:
                self._call("offline", self._set_status, agent, "offline")
        finally:
            connection.close()

    def _call(self, action: str, function, *args) -> None:
        from django.db import connection

        try:
            function(*args)
        except Exception as exc:  # every failure is counted and reported
            key = f"{action}: {type(exc).__name__}"
            self.errors[key] += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{key}: {exc}")
            # A broken connection must not fail every later call too.
            connection.close_if_unusable_or_obsolete()
        else:
            self.actions[action] += 1

    def _set_status(self, agent, status: str) -> None:
        from campaigns.routing import agent_set_status

        agent_set_status(agent=agent, status=status)

    def _visit(self, agent) -> None:
        from campaigns.routing import agent_heartbeat

        now = time.monotonic()
        if now - self.heartbeats[agent.pk] >= HEARTBEAT_SECONDS:
            self._call("heartbeat", lambda: agent_heartbeat(agent=agent))
            self.heartbeats[agent.pk] = now
        if agent.pk in self.breaks:
            if now >= self.breaks[agent.pk]:
                del self.breaks[agent.pk]
                self._call("back from break", self._set_status, agent, "available")
            return
        held: list = []
        self._call("console poll", lambda: held.extend(self._console(agent)))
        still_held = len(held)
        for interaction in held:
            plan = self.plans.get(interaction.pk)
            if plan is None:
                plan = self.plans[interaction.pk] = Plan(
                    reply_at=now + self.rng.uniform(1, 4), finish_after=self.rng.uniform(3, 10)
                )
                self._call("open conversation", self._open, agent, interaction.pk)
            if not plan.replied and now >= plan.reply_at:
                self._call("reply", self._reply, agent, interaction.pk)
                plan.replied = True
                plan.reply_at = now
            elif plan.replied and now >= plan.reply_at + plan.finish_after:
                self._call("finish", self._finish, agent, interaction.pk)
                del self.plans[interaction.pk]
                still_held -= 1
                if not still_held and not self.finishing.is_set() and self.rng.random() < 0.05:
                    self._call("break", self._set_status, agent, "break")
                    self.breaks[agent.pk] = now + self.rng.uniform(10, 30)

    def _console(self, agent) -> list:
        from django.utils import timezone

        from campaigns.selectors import agent_conversations

        return [row.interaction for row in agent_conversations(agent=agent, now=timezone.now())]

    def _open(self, agent, interaction_id: int) -> None:
        """The conversation page: its detail, then everything shown is read."""
        from django.utils import timezone

        from campaigns.models import Interaction
        from campaigns.selectors import conversation_detail, last_customer_message_at
        from campaigns.services import interaction_mark_read

        interaction = Interaction.objects.select_related(
            "campaign", "transfer_to", "disposition"
        ).get(pk=interaction_id, agent=agent)
        detail = conversation_detail(interaction=interaction, agent=agent, now=timezone.now())
        latest = last_customer_message_at(detail.timeline)
        if latest is not None:
            interaction_mark_read(interaction=interaction, now=latest)

    def _reply(self, agent, interaction_id: int) -> None:
        from campaigns.routing import interaction_reply

        interaction_reply(
            interaction_id=interaction_id,
            by=agent,
            body="Thanks for waiting. I am looking at your order now.",
        )

    def _finish(self, agent, interaction_id: int) -> None:
        from campaigns.routing import interaction_finish

        interaction_finish(interaction_id=interaction_id, by=agent)

    def stop(self) -> None:
        self.finishing.set()
        self.stopping.set()
        self.join(timeout=60)


# Watching -------------------------------------------------------------------------


_SNAPSHOT = """
    SELECT
        (SELECT count(*) FROM campaigns_interaction WHERE status = 'queued'),
        (SELECT extract(epoch FROM now() - min(queued_at))
         FROM campaigns_interaction WHERE status = 'queued'),
        (SELECT count(*) FROM campaigns_interaction WHERE status IN ('assigned', 'transferring')),
        (SELECT count(*) FROM campaigns_interaction WHERE status = 'finished'),
        (SELECT coalesce(sum(greatest(p.capacity - coalesce(l.n, 0), 0)), 0)
         FROM campaigns_agentprofile p
         LEFT JOIN (
             SELECT agent_id, count(*) AS n FROM campaigns_interaction
             WHERE status IN ('assigned', 'transferring') GROUP BY agent_id
         ) l ON l.agent_id = p.user_id
         WHERE p.status = 'available' AND p.last_seen_at > now() - interval '60 seconds'),
        (SELECT count(*) FROM (
             SELECT i.agent_id FROM campaigns_interaction i
             JOIN campaigns_agentprofile p ON p.user_id = i.agent_id
             WHERE i.status IN ('assigned', 'transferring')
             GROUP BY i.agent_id, p.capacity HAVING count(*) > p.capacity
         ) over)
"""


class Monitor(threading.Thread):
    """Every 5 s: the queue, the held conversations and the free slots."""

    def __init__(self, url: str, *, stuck_seconds: float, memory: "Memory") -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stuck_seconds = stuck_seconds
        self.memory = memory
        self.samples: list[tuple] = []
        self.stuck: list[str] = []
        self.over_capacity = 0
        self.max_queued_age = 0.0
        self.max_queued = 0
        self.stopping = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.wait(5.0):
                queued, oldest, held, finished, free, over = conn.execute(_SNAPSHOT).fetchone()
                oldest = float(oldest or 0.0)
                at = time.monotonic() - self.started
                self.samples.append((at, queued, oldest, held, finished, free))
                self.max_queued_age = max(self.max_queued_age, oldest)
                self.max_queued = max(self.max_queued, queued)
                self.over_capacity += over
                if oldest > self.stuck_seconds and free > 0:
                    self.stuck.append(
                        f"at {at:.0f} s: {queued} queued, the oldest for {oldest:.0f} s, "
                        f"with {free} free slots"
                    )
                if len(self.samples) % 6 == 0:
                    print(
                        f"[{at:6.1f} s] queued {queued} (oldest {oldest:.1f} s), held {held}, "
                        f"finished {finished}, free slots {free}; RSS MB " + self.memory.brief(),
                        flush=True,
                    )

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=15)


class Memory:
    """VmRSS of every process of every group, at named moments."""

    def __init__(self, groups: dict) -> None:
        self.groups = groups
        self.samples: list[tuple[str, dict[tuple[str, int], int]]] = []
        self.lock = threading.Lock()

    def sample(self, label: str) -> None:
        rss = {}
        for name, pids in self.groups.items():
            for pid in pids():
                kb = rss_kb(pid)
                if kb is not None:
                    rss[(name, pid)] = kb
        with self.lock:
            self.samples.append((label, rss))

    def brief(self) -> str:
        """The latest sample per group, in MB."""
        with self.lock:
            if not self.samples:
                return "-"
            _, rss = self.samples[-1]
        totals: Counter[str] = Counter()
        for (name, _), kb in rss.items():
            totals[name] += kb
        return ", ".join(f"{name} {kb / 1024:.0f}" for name, kb in totals.items())

    def at(self, label: str) -> dict[tuple[str, int], int]:
        return next(rss for name, rss in self.samples if name == label)


def _drain(url: str, *, seconds: float) -> bool:
    """Wait until nothing is queued, held, unsent or in a bot; True if that happened."""
    deadline = time.monotonic() + seconds
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            (busy,) = conn.execute(
                """
                SELECT (SELECT count(*) FROM campaigns_interaction
                        WHERE status IN ('queued', 'assigned', 'transferring'))
                     + (SELECT count(*) FROM sms_channel_message
                        WHERE direction = 'outbound' AND provider_sid IS NULL
                          AND status = 'queued')
                     + (SELECT count(*) FROM bots_botsession
                        WHERE status IN ('running', 'waiting'))
                """
            ).fetchone()
            if not busy:
                return True
            time.sleep(1.0)
    return False


# Results ---------------------------------------------------------------------------


def _report(
    *,
    args,
    sender: Sender,
    warm_up: Block,
    crew: list[AgentThread],
    monitor: Monitor,
    memory: Memory,
    fake,
    drained: bool,
    alive: bool,
    logs: dict[str, Path],
    cpu_used: dict[str, float],
    machine_busy: float,
    elapsed: float,
) -> bool:
    problems = []
    if sender.results is None:
        print("webhooks: the customers' process sent no results")
        return False
    block = sender.results["block"]
    errors = sum(block.errors.values())
    print(
        f"webhooks: {block.done} of {sender.total} sent in {block.seconds:.0f} s "
        f"({block.done / max(block.seconds, 1e-9):.1f}/s), {errors} errors, latency p50 "
        f"{block.p(50):.1f} ms, p99 {block.p(99):.1f} ms, max "
        f"{max(block.latencies, default=float('nan')):.1f} ms"
    )
    for sample in block.error_samples:
        print(f"    {sample}")
    minutes: dict[int, list[float]] = {}
    for offset, ms in sender.results["timeline"]:
        minutes.setdefault(int(offset // 60), []).append(ms)
    print(
        "    by minute (p50 / p99 / max ms): "
        + "; ".join(
            f"{minute + 1}: {common.percentile(v, 50):.0f} / {common.percentile(v, 99):.0f} / "
            f"{max(v):.0f}"
            for minute, v in sorted(minutes.items())
        )
    )
    print(f"    warm-up before it: {warm_up.done} texts, {sum(warm_up.errors.values())} errors")
    if errors or block.done != sender.total or warm_up.errors:
        problems.append("webhook errors")

    actions: Counter[str] = Counter()
    agent_errors: Counter[str] = Counter()
    samples = []
    for thread in crew:
        actions.update(thread.actions)
        agent_errors.update(thread.errors)
        samples.extend(thread.error_samples)
    print("agents: " + ", ".join(f"{n} {action}" for action, n in sorted(actions.items())))
    if agent_errors:
        problems.append("agent errors")
        print("agent errors: " + ", ".join(f"{n} {k}" for k, n in agent_errors.items()))
        for sample in samples[:5]:
            print(f"    {sample}")

    problems.extend(_check_database(sids=sender.results["sids"], fake=fake))
    print(
        f"queue while it ran (every 5 s, {len(monitor.samples)} samples): at most "
        f"{monitor.max_queued} queued, the oldest for at most {monitor.max_queued_age:.1f} s; "
        f"{len(monitor.stuck)} samples with a conversation queued over {args.stuck_seconds:g} s "
        f"while a slot was free; {monitor.over_capacity} agents seen above capacity"
    )
    for line in monitor.stuck[:5]:
        print(f"    {line}")
    if monitor.stuck or monitor.over_capacity:
        problems.append("stuck or over capacity")
    if not drained:
        problems.append(f"not drained within {args.drain_seconds:g} s")
    if not alive:
        problems.append("a server process exited")

    ours = sum(cpu_used.values()) / elapsed
    print(
        f"CPU over the {elapsed:.0f} s, cores on average: the machine's {os.cpu_count()} were "
        f"{machine_busy:.0%} busy, {machine_busy * (os.cpu_count() or 1):.2f} cores, of which "
        f"these processes {ours:.2f} (this one and everyone else's the rest); "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    for name, seconds in cpu_used.items():
        print(f"    {name:18} {seconds / elapsed:5.2f}")

    problems.extend(_memory_report(memory))
    problems.extend(_log_report(logs))
    print(f"verdict: {'no problem found' if not problems else 'PROBLEMS: ' + '; '.join(problems)}")
    return not problems


def _check_database(*, sids: list[str], fake) -> list[str]:
    from django.db import connection

    from bots.models import BotSession
    from campaigns.models import Interaction
    from sms_channel.models import Message

    problems = []
    sent = sids
    stored = Message.objects.filter(provider_sid__in=sent).count()
    inbound = Message.objects.filter(direction=Message.Direction.INBOUND).count()
    statuses = _count_by(Interaction.objects.all(), "status")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE a.n IS DISTINCT FROM 1 OR f.n IS DISTINCT FROM 1)
            FROM campaigns_interaction i
            LEFT JOIN (SELECT interaction_id, count(*) n FROM campaigns_interactionevent
                       WHERE to_status = 'assigned' AND from_status <> 'assigned'
                       GROUP BY 1) a ON a.interaction_id = i.id
            LEFT JOIN (SELECT interaction_id, count(*) n FROM campaigns_interactionevent
                       WHERE to_status = 'finished' AND from_status <> 'finished'
                       GROUP BY 1) f ON f.interaction_id = i.id
            WHERE i.status = 'finished'
            """
        )
        (bad_events,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM (SELECT provider_sid FROM sms_channel_message"
            " WHERE provider_sid IS NOT NULL GROUP BY 1 HAVING count(*) > 1) twice"
        )
        (twice,) = cursor.fetchone()
    outbound = Message.objects.filter(direction=Message.Direction.OUTBOUND)
    outbound_count = outbound.count()
    handed = outbound.filter(provider_sid__isnull=False).exclude(status="failed").count()
    by_sender = _count_by(outbound, "sender")
    fake_sent = len(fake.sent)
    bots = _count_by(BotSession.objects.all(), "status")
    print(
        f"inbound: {stored} of {len(sent)} texts stored by MessageSid ({inbound} in all, "
        f"{twice} SIDs stored twice)"
    )
    print(
        "conversations: "
        + ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        + f"; {bad_events} finished ones without exactly one assigned and one finished event"
    )
    print(
        f"outbound: {outbound_count} texts ("
        + ", ".join(f"{n} by {who}" for who, n in sorted(by_sender.items()))
        + f"), {handed} handed to the fake Twilio, which received {fake_sent}; bot sessions: "
        + ", ".join(f"{n} {status}" for status, n in sorted(bots.items()))
    )
    if not (stored == inbound == len(sent)) or twice:
        problems.append("inbound texts not stored exactly once")
    held_or_waiting = sum(statuses[s] for s in ("queued", "assigned", "transferring"))
    if held_or_waiting or statuses["timed_out"] or bad_events:
        problems.append("conversations left open, timed out or with a wrong event log")
    if not (handed == outbound_count == fake_sent):
        problems.append("outbound texts not sent exactly once")
    if bots["running"] or bots["waiting"] or bots["failed"]:
        problems.append("bot sessions left running or failed")
    return problems


def _count_by(queryset, field: str) -> Counter:
    from django.db.models import Count

    rows = queryset.order_by().values_list(field).annotate(n=Count("pk"))
    return Counter(dict(rows))


def _memory_report(memory: Memory) -> list[str]:
    """RSS when started, after the warm-up texts, a minute in (a fifth of a shorter
    run) and at the end. Flat: no process grew by more than 2 MB or 5 % from a
    minute in to the end.
    """
    moments = [memory.at(label) for label in ("boot", "start", "warm", "end")]
    print("RSS MB (VmRSS)          pid   booted  started  warmed      end  end - warmed")
    problems = []
    for key in sorted(set().union(*moments)):
        name, pid = key
        values = [d.get(key) for d in moments]
        cells = "".join(f"{v / 1024:9.1f}" if v is not None else f"{'-':>9}" for v in values)
        warm, end = values[2], values[3]
        growth = ""
        if warm is not None and end is not None:
            delta = end - warm
            flat = delta <= max(2048, warm * 0.05)
            growth = f"{delta / 1024:+9.1f}" + ("" if flat else "  GROWING")
            if not flat:
                problems.append(f"{name} {pid} memory grew {delta / 1024:.1f} MB")
        elif end is None:
            growth = "   gone (restarted?)"
            problems.append(f"{name} {pid} gone")
        else:
            growth = "   new"
        print(f"{name:20}{pid:>8}{cells}{growth}")
    totals = {}
    for label, rss in memory.samples:
        totals[label] = sum(rss.values())
    print(
        "all of them, MB: " + ", ".join(f"{label} {kb / 1024:.0f}" for label, kb in totals.items())
    )
    print(f"memory: {'flat' if not problems else 'NOT flat'} after warm-up")
    return problems


def _log_report(logs: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in logs.items():
        lines = [
            line
            for line in path.read_text(errors="replace").splitlines()
            if line.strip() and not any(expected in line for expected in EXPECTED_LOG)
        ]
        bad = [
            line
            for line in lines
            if any(word in line for word in ("ERROR", "CRITICAL", "Traceback", "Error"))
        ]
        print(f"log of {name}: {len(lines)} lines, {len(bad)} with an error")
        for line in (bad or lines)[:5]:
            print(f"    {line[:300]}")
        if bad:
            problems.append(f"errors in the log of {name}")
    return problems


if __name__ == "__main__":
    main()
