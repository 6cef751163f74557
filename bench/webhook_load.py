"""Signed Twilio inbound webhooks through gunicorn and PostgreSQL, against a minimal insert view.

    .venv/bin/python -m bench.webhook_load           # two to three minutes

One gunicorn (4 sync workers by default) serves `bench.baseline.settings`:
the application's settings and URLs plus `/bench/insert/`, a view that
parses the same form and inserts one row in one durable transaction. A
Twilio connector and number serve one campaign's SMS channel (as
`twilio_connect` sets it up).

Closed loop: 32 clients (asyncio, in this process) each send a request,
wait for the whole answer and send the next one, a new connection per
request (`Connection: close`). Webhook requests are Twilio's inbound
payload with a unique MessageSid each, from a few hundred customers, signed
with the SDK's RequestValidator for the URL gunicorn sees. Webhook and
baseline blocks alternate (W B, then B W, ...) so that drift of a busy
machine touches both; the ratio of throughputs is the headline.

Then, open loop (not a goal, --paced-rate 0 skips it): the same two
requests at a fixed rate, by default half the webhook's closed-loop
throughput, so that their latency is the service time and not the wait
behind 31 other clients.

For every CPU figure, the CPU time of gunicorn's processes and of this
database's PostgreSQL backends is read from /proc during each block.

The webhook publishes `route_campaign_task` on commit. No Celery worker
runs: the broker is a spare Redis database (it must be empty; it is flushed
at the end) whose queues are declared as a worker would declare them, so a
publish costs what it costs in production and the tasks can be counted,
while routing (with no agent, nothing to do) does not compete with the
webhook for the two cores.

Afterwards: every webhook answered 200 and its message is stored exactly
once (Message rows by provider_sid = requests sent, none twice), one open
conversation per customer with one "queued" event, one routing task
published per conversation; every baseline request stored one row.

Last (--breakdown 0 skips it), where a webhook's time goes: 1,000 more
webhooks from the same customers, in this process through Django's test
client (no gunicorn), with timers around the functions the view calls and
a count of the SQL statements.
"""

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import redis

from bench import common

DB_NAME = "contactcenter_bench_webhook"
GOAL_RATIO = 0.60
GOAL_P99_MS = 100
HOST = "127.0.0.1"
BASELINE_PATH = "/bench/insert/"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="webhooks, closed loop")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="webhook/baseline block pairs")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=200, help="of each, before measuring")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="sync", help="gunicorn's -k: sync or gthread")
    parser.add_argument("--threads", type=int, default=1, help="per worker (gthread)")
    parser.add_argument(
        "--paced-rate",
        type=float,
        default=None,
        help="requests/s, open loop (default: half the webhook's closed-loop rate; 0: skip)",
    )
    parser.add_argument("--paced-requests", type=int, default=1000, help="of each, open loop")
    parser.add_argument("--redis-db", type=int, default=10, help="a spare db: it is flushed")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per block")
    parser.add_argument(
        "--breakdown",
        type=int,
        default=1000,
        metavar="WEBHOOKS",
        help="afterwards, time this many webhooks in this process by part (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if args.redis_db == 0:
        parser.error("use a spare Redis database, not 0")

    # Stopped with SIGTERM, still run the clean-up below (its own processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    print(f"Webhook load ({common.describe_machine()})")
    broker_url = f"redis://{HOST}:6379/{args.redis_db}"
    broker = spare_redis(broker_url)
    common.recreate_database(DB_NAME)
    env = common.bench_env(
        DB_NAME,
        CELERY_BROKER_URL=broker_url,
        DJANGO_SETTINGS_MODULE="bench.baseline.settings",
        DEBUG="false",
        PUBLIC_BASE_URL="",
    )
    common.setup_django(env)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
            failed = _run(args, env, broker, Path(tmp) / "gunicorn.log")
    finally:
        broker.flushdb()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            common.drop_database(DB_NAME)
    if failed:
        sys.exit("a check failed")


def declare_queues() -> None:
    """Declare the Celery queues in the broker, as a worker would at start.

    Without it Redis has no binding for them and drops what is published, so
    the published tasks could not be counted.
    """
    from contactcenter.celery import app

    with app.connection_for_write() as connection:
        for queue in app.amqp.queues.values():
            queue.bind(connection.default_channel).declare()


def spare_redis(url: str) -> redis.Redis:
    """The benchmark's Redis database, which must be empty: it is flushed afterwards."""
    broker = redis.Redis.from_url(url)
    if broker.dbsize():
        sys.exit(f"{url} holds keys (someone else's?); pick another with --redis-db")
    return broker


def _run(args, env: dict[str, str], broker: redis.Redis, log_path: Path) -> bool:
    from django.db import connection

    from sms_channel.services import twilio_connect
    from tests.factories import CampaignFactory
    from tests.sms_channel.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, TWILIO_NUMBER

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_insert (id bigserial PRIMARY KEY, sid text NOT NULL)")
    campaign = CampaignFactory(name="Webhook load")
    twilio_connect(
        campaign_name=campaign.name,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        number=TWILIO_NUMBER,
    )
    connection.close()
    declare_queues()

    port = free_port()
    rng = random.Random(args.seed)
    customers = [f"+1415666{n:04d}" for n in range(args.customers)]
    factory = RequestFactory(port=port, customers=customers, rng=rng)
    server = Gunicorn(
        env,
        port=port,
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads,
        log_path=log_path,
    )
    print(
        f"gunicorn {server.describe()}; {args.clients} clients, closed loop, a new connection "
        f"per request; {args.requests} webhooks from {args.customers} customers and as many "
        f"baseline requests in {args.rounds} rounds; Celery broker Redis db {args.redis_db}, "
        "no worker"
    )
    meter = CpuMeter({"gunicorn": server.pids, "postgres": lambda: database_backends(DB_NAME)})
    blocks: list[Block] = []
    paced: list[Block] = []
    warm_ups: list[Block] = []
    try:
        server.start()
        meter.start()
        # Every worker opens its database connection and imports the views.
        warm_ups = [
            _closed_loop(factory.make(kind, args.warmup), server, meter, args, label="warm-up")
            for kind in ("webhook", "baseline")
        ]
        per_round = args.requests // args.rounds
        for number in range(1, args.rounds + 1):
            order = ["webhook", "baseline"] if number % 2 else ["baseline", "webhook"]
            for kind in order:
                requests = factory.make(kind, per_round)
                block = _closed_loop(requests, server, meter, args, label=f"{kind} round {number}")
                block.kind = kind
                blocks.append(block)
        rate = args.paced_rate
        if rate is None:
            webhooks = [b for b in blocks if b.kind == "webhook"]
            rate = round(sum(b.done for b in webhooks) / sum(b.seconds for b in webhooks) / 2)
        if rate:
            for kind in ("webhook", "baseline"):
                requests = factory.make(kind, args.paced_requests)
                label = f"{kind}, {rate:g}/s"
                block = _open_loop(
                    requests, server, meter, rate=rate, timeout=args.timeout, label=label
                )
                block.kind = kind
                paced.append(block)
        if not server.alive():
            raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-4000:]}")
    finally:
        meter.stop()
        server.stop()
    failed = _report(blocks, paced, args)
    warm_up_errors = sum(sum(b.errors.values()) for b in warm_ups)
    print(f"warm-up before them: {args.warmup} of each, {warm_up_errors} errors")
    failed |= bool(warm_up_errors) or not _check(factory, broker)
    # The readiness probe's GET is refused with a logged 405.
    lines = [
        line
        for line in log_path.read_text().splitlines()
        if line.strip() and "Method Not Allowed (GET)" not in line
    ]
    print(
        f"gunicorn log: {len(lines)} lines besides the readiness probe"
        + "".join(f"\n  {line}" for line in lines[-10:])
    )
    if args.breakdown:
        _breakdown(customers=customers, count=args.breakdown, rng=rng)
    return failed or bool(lines)


# The requests ---------------------------------------------------------------------


class RequestFactory:
    """Raw HTTP requests, built ahead so the clients only send bytes."""

    def __init__(self, *, port: int, customers: list[str], rng: random.Random) -> None:
        self.port = port
        self.customers = customers
        self.rng = rng
        self.webhook_sids: list[str] = []
        self.webhook_customers: set[str] = set()
        self.baseline_sids: list[str] = []
        self.number = 0

    def _params(self, customer: str) -> dict[str, str]:
        from tests.sms_channel.twilio_helpers import payload

        self.number += 1
        sid = "SM" + uuid.uuid4().hex
        params = payload(
            "twilio_inbound_sms",
            MessageSid=sid,
            From=customer,
            Body=f"Message {self.number}: my order has not arrived yet",
        )
        params["SmsMessageSid"] = params["SmsSid"] = sid
        return params

    def make(self, kind: str, count: int) -> list[bytes]:
        return self.webhooks(count) if kind == "webhook" else self.baselines(count)

    def webhooks(self, count: int) -> list[bytes]:
        from tests.sms_channel.twilio_helpers import INBOUND_PATH, sign

        url = f"http://{HOST}:{self.port}{INBOUND_PATH}"
        requests = []
        for _ in range(count):
            customer = self.rng.choice(self.customers)
            params = self._params(customer)
            self.webhook_sids.append(params["MessageSid"])
            self.webhook_customers.add(customer)
            requests.append(
                raw_post(
                    self.port,
                    INBOUND_PATH,
                    params,
                    {"X-Twilio-Signature": sign(url, params)},
                )
            )
        return requests

    def baselines(self, count: int) -> list[bytes]:
        requests = []
        for _ in range(count):
            params = self._params(self.rng.choice(self.customers))
            self.baseline_sids.append(params["MessageSid"])
            requests.append(raw_post(self.port, BASELINE_PATH, params, {}))
        return requests


def raw_post(port: int, path: str, params: dict[str, str], headers: dict[str, str]) -> bytes:
    """An HTTP/1.1 form POST as Twilio sends it; the server closes the connection after it."""
    body = urlencode(params).encode()
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "User-Agent: TwilioProxy/1.1",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Send one request on a new connection, read the answer to the end; (status, answer)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        answer = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    status_line = answer.split(b"\r\n", 1)[0].split(b" ")
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP answer: {answer[:80]!r}")
    return int(status_line[1]), answer


# Running blocks -------------------------------------------------------------------


@dataclass
class Block:
    label: str
    count: int
    kind: str = ""
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms, answered requests only
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    server_cpu: float = 0.0  # seconds, gunicorn master and workers
    database_cpu: float = 0.0  # seconds, this database's PostgreSQL backends
    client_cpu: float = 0.0  # seconds, this process
    machine_busy: float = 0.0  # share of all CPUs busy, whoever used them

    def note(self, started: float, outcome) -> None:
        if isinstance(outcome, tuple) and outcome[0] == 200:
            self.latencies.append((time.perf_counter() - started) * 1000)
            return
        if isinstance(outcome, tuple):
            key = f"HTTP {outcome[0]}"
            sample = outcome[1][-300:].decode(errors="replace")
        else:
            key = type(outcome).__name__
            sample = repr(outcome)
        self.errors[key] = self.errors.get(key, 0) + 1
        if len(self.error_samples) < 3:
            self.error_samples.append(f"{key}: {sample}")

    @property
    def done(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else float("nan")

    def p(self, percent: float) -> float:
        return common.percentile(self.latencies, percent)


async def _send(port: int, request: bytes, timeout: float):
    try:
        return await asyncio.wait_for(exchange(port, request), timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        return exc


def _measured(block: Block, meter: "CpuMeter", coroutine) -> Block:
    cpu_before, machine_before = meter.totals(), machine_cpu()
    client_before = time.process_time()
    started = time.perf_counter()
    asyncio.run(coroutine)
    block.seconds = time.perf_counter() - started
    block.client_cpu = time.process_time() - client_before
    cpu_after = meter.totals()
    block.server_cpu = cpu_after["gunicorn"] - cpu_before["gunicorn"]
    block.database_cpu = cpu_after["postgres"] - cpu_before["postgres"]
    (busy_after, total_after), (busy_before, total_before) = machine_cpu(), machine_before
    busy, total = busy_after - busy_before, total_after - total_before
    block.machine_busy = busy / total if total else float("nan")
    return block


def _closed_loop(
    requests: list[bytes], server: "Gunicorn", meter: "CpuMeter", args, *, label: str
) -> Block:
    """`args.clients` clients, each sending the next request once its last one is answered."""
    block = Block(label=label, count=len(requests))
    pending = iter(requests)

    async def client(deadline: float) -> None:
        for request in pending:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            block.note(started, await _send(server.port, request, args.timeout))

    async def clients() -> None:
        deadline = time.monotonic() + args.time_limit
        await asyncio.gather(*(client(deadline) for _ in range(args.clients)))

    return _measured(block, meter, clients())


def _open_loop(
    requests: list[bytes],
    server: "Gunicorn",
    meter: "CpuMeter",
    *,
    rate: float,
    timeout: float,
    label: str,
) -> Block:
    """One request every 1/rate seconds, whether or not earlier ones were answered.

    Latency counts from the moment the request was due, so a client that
    fell behind cannot hide a slow server.
    """
    block = Block(label=label, count=len(requests))
    interval = 1 / rate

    async def one(due: float, request: bytes) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        block.note(due, await _send(server.port, request, timeout))

    async def all_of_them() -> None:
        start = time.perf_counter() + 0.05
        await asyncio.gather(*(one(start + i * interval, r) for i, r in enumerate(requests)))

    return _measured(block, meter, all_of_them())


# gunicorn and /proc ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Gunicorn:
    """One gunicorn serving this benchmark's database, in its own process group."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        port: int,
        workers: int,
        worker_class: str,
        threads: int,
        log_path: Path,
        app: str = "contactcenter.wsgi:application",
        extra: list[str] | None = None,
    ) -> None:
        self.env = env
        self.port = port
        self.workers = workers
        self.worker_class = worker_class
        self.threads = threads
        self.log_path = log_path
        self.app = app
        self.extra = extra or []
        self.process: subprocess.Popen | None = None

    def describe(self) -> str:
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"{self.workers} {self.worker_class} workers{threads} on {HOST}:{self.port}"

    def start(self) -> None:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    common.PYTHON,
                    "-m",
                    "gunicorn",
                    self.app,
                    "--bind",
                    f"{HOST}:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--worker-class",
                    self.worker_class,
                    "--threads",
                    str(self.threads),
                    # Its default is one path in $HOME shared by every gunicorn.
                    "--no-control-socket",
                    "--log-level",
                    "warning",
                    "--timeout",
                    "30",
                    "--graceful-timeout",
                    "10",
                    *self.extra,
                ],
                cwd=common.ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so stopping it also stops its workers.
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if len(self.worker_pids()) == self.workers and self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{self.log_path.read_text()[-4000:]}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=5) as sock:
                sock.sendall(
                    f"GET /sms/twilio/inbound/ HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                return sock.recv(64).startswith(b"HTTP/1.1 405")
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        """The master and its workers."""
        if not self.alive():
            return []
        return [self.process.pid, *self.worker_pids()]

    def worker_pids(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def stop(self) -> None:
        if self.process is None:
            return
        stop_group(self.process, grace=20)


def stop_group(process: subprocess.Popen, *, grace: float) -> None:
    """SIGTERM the process group, wait `grace` seconds, then SIGKILL whatever is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # Children that outlived their parent.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses; the rest follows the last ")".
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            if int(_stat_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of `pid`, None if it is gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return None
    # utime and stime are fields 14 and 15 of /proc/<pid>/stat.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def database_backends(name: str) -> list[int]:
    """PostgreSQL backends connected to database `name` (from their process titles)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if title.startswith(b"postgres:") and f" {name} ".encode() in title:
                found.append(int(entry.name))
    return found


class CpuMeter(threading.Thread):
    """CPU time of groups of processes, sampled every `interval` seconds.

    Each process's last sample is kept after it exits (a backend closed when
    its connection reached CONN_MAX_AGE, a recycled worker), so a group's
    total only loses what a process used in its last `interval`.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]], interval: float = 0.5):
        super().__init__(daemon=True)
        self.groups = groups
        self.interval = interval
        self.seen: dict[str, dict[int, float]] = {name: {} for name in groups}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self.lock:
            for name, pids in self.groups.items():
                for pid in pids():
                    seconds = cpu_seconds(pid)
                    if seconds is not None:
                        self.seen[name][pid] = seconds

    def totals(self) -> dict[str, float]:
        self.sample()
        with self.lock:
            return {name: sum(seen.values()) for name, seen in self.seen.items()}

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def rss_kb(pid: int) -> int | None:
    """VmRSS of `pid` in kB, None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


# Where the time goes ----------------------------------------------------------------


def _breakdown(*, customers: list[str], count: int, rng: random.Random) -> None:
    """Time `count` webhooks in this process through Django's test client, by part.

    Timers (wall and this thread's CPU) wrap the functions the view and
    `sms_receive` call, patched for the run where the caller looks them up;
    a part's time includes the parts indented under it. Every SQL statement
    Django sends is counted by kind (BEGIN and COMMIT are not statements
    here: psycopg opens the transaction, Django commits on the connection).
    """
    from contextlib import ExitStack
    from unittest import mock

    from celery.app.task import Task
    from django.db import connection
    from django.test import Client

    from sms_channel import services, webhooks
    from tests.sms_channel.twilio_helpers import INBOUND_PATH, payload, sign

    spent: dict[str, list[float]] = {}  # label: [wall seconds, CPU seconds, calls]

    def timed(label: str, original):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                part = spent.setdefault(label, [0.0, 0.0, 0])
                part[0] += time.perf_counter() - wall
                part[1] += time.thread_time() - cpu
                part[2] += 1

        return wrapper

    statements: dict[str, int] = {}
    sql_seconds = [0.0]

    def counted(execute, sql, params, many, context):
        kind = sql.lstrip().split(None, 1)[0].upper()
        statements[kind] = statements.get(kind, 0) + 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds[0] += time.perf_counter() - started

    patches = [
        (webhooks, "_connector_for_inbound", "view: number -> connector"),
        (webhooks, "_authenticate", "view: signature and account"),
        (webhooks.InboundForm, "is_valid", "view: InboundForm"),
        (webhooks, "sms_receive", "sms_receive (all of it)"),
        (services, "_channel_for_number", "  _channel_for_number"),
        (services, "_apply_intake_rules", "  _apply_intake_rules (all of it)"),
        (services, "open_interaction_for", "    open_interaction_for"),
        (services, "interaction_touch", "    interaction_touch"),
        (services, "bot_customer_replied", "    bot_customer_replied"),
        (services, "_attach", "    _attach"),
        (services, "waiting_session_for", "    waiting_session_for"),
        (services, "campaign_is_open", "    campaign_is_open"),
        (services, "interaction_enqueue_new", "    interaction_enqueue_new"),
        (services, "bot_start", "    bot_start"),
        (Task, "apply_async", "publish to Redis (on commit)"),
    ]
    client = Client(HTTP_HOST=HOST)
    url = f"http://{HOST}{INBOUND_PATH}"
    with ExitStack() as stack:
        stack.enter_context(connection.execute_wrapper(counted))
        for owner, name, label in patches:
            stack.enter_context(mock.patch.object(owner, name, timed(label, getattr(owner, name))))
        wall, cpu = time.perf_counter(), time.thread_time()
        for number in range(count):
            sid = "SM" + uuid.uuid4().hex
            params = payload(
                "twilio_inbound_sms",
                MessageSid=sid,
                From=rng.choice(customers),
                Body=f"Breakdown {number}: my order has not arrived yet",
            )
            params["SmsMessageSid"] = params["SmsSid"] = sid
            response = client.post(
                INBOUND_PATH,
                data=urlencode(params),
                content_type="application/x-www-form-urlencoded",
                HTTP_X_TWILIO_SIGNATURE=sign(url, params),
            )
            if response.status_code != 200:
                raise RuntimeError(f"breakdown webhook answered {response.status_code}")
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    connection.close()
    per = 1000 / count
    print(
        f"where a webhook's time goes: {count} in this process through Django's test client, "
        f"{wall * per:.2f} ms a webhook ({cpu * per:.2f} ms CPU), of which SQL round trips "
        f"{sql_seconds[0] * per:.2f} ms; {sum(statements.values()) / count:.1f} statements a "
        "webhook ("
        + ", ".join(f"{kind} {n / count:.1f}" for kind, n in sorted(statements.items()))
        + ") besides BEGIN and COMMIT; per webhook, parts included in the part above them:"
    )
    for _, _, label in patches:
        if label not in spent:
            continue
        part_wall, part_cpu, calls = spent[label]
        print(
            f"  {label:42}{part_wall * per:7.2f} ms{part_cpu * per:7.2f} ms CPU   ({calls} calls)"
        )


# Results -------------------------------------------------------------------------


def _report(blocks: list[Block], paced: list[Block], args) -> bool:
    print(
        f"{'':24}{'n':>6}{'s':>7}{'req/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}{'errors':>7}{'gunicorn':>9}{'postgres':>9}{'client':>8}{'busy':>6}"
    )
    print(f"{'':87}{'CPU ms a request':^26}")
    for block in [*blocks, *paced]:
        errors = sum(block.errors.values())
        print(
            f"{block.label:24}{block.done:>6}{block.seconds:>7.2f}{block.rate:>8.0f}"
            + "".join(f"{block.p(p):>8.1f}" for p in (50, 90, 99))
            + f"{max(block.latencies, default=float('nan')):>8.1f}{errors:>7}"
            f"{block.server_cpu * 1000 / max(block.done, 1):>9.2f}"
            f"{block.database_cpu * 1000 / max(block.done, 1):>9.2f}"
            f"{block.client_cpu * 1000 / max(block.done, 1):>8.2f}"
            f"{block.machine_busy:>6.0%}"
        )
        for sample in block.error_samples:
            print(f"    {sample}")
    totals = {}
    for kind in ("webhook", "baseline"):
        mine = [b for b in blocks if b.kind == kind]
        done = sum(b.done for b in mine)
        seconds = sum(b.seconds for b in mine)
        latencies = [ms for b in mine for ms in b.latencies]
        errors = sum(sum(b.errors.values()) for b in mine)
        server_cpu = sum(b.server_cpu for b in mine) * 1000 / max(done, 1)
        database_cpu = sum(b.database_cpu for b in mine) * 1000 / max(done, 1)
        totals[kind] = (done / seconds, latencies, errors, server_cpu, database_cpu)
        print(
            f"{kind} in all: {done} requests in {seconds:.2f} s, {done / seconds:.0f} req/s, "
            f"p50 {common.percentile(latencies, 50):.1f} ms, "
            f"p99 {common.percentile(latencies, 99):.1f} ms, {errors} errors; CPU a request: "
            f"gunicorn {server_cpu:.2f} ms, PostgreSQL backends {database_cpu:.2f} ms"
        )
    ratio = totals["webhook"][0] / totals["baseline"][0]
    per_round = [
        w.rate / b.rate
        for w, b in zip(
            [b for b in blocks if b.kind == "webhook"],
            [b for b in blocks if b.kind == "baseline"],
            strict=True,
        )
    ]
    print(
        f"ratio webhook / baseline throughput: {ratio:.0%} "
        f"(per round: {', '.join(f'{r:.0%}' for r in per_round)}); "
        "CPU a request, webhook / baseline: "
        f"gunicorn {totals['webhook'][3] / totals['baseline'][3]:.1f}x, "
        f"PostgreSQL {totals['webhook'][4] / totals['baseline'][4]:.1f}x"
    )
    p99 = common.percentile(totals["webhook"][1], 99)
    errors = totals["webhook"][2] + totals["baseline"][2]
    errors += sum(sum(b.errors.values()) for b in paced)
    complete = all(b.done == b.count for b in [*blocks, *paced])
    print(
        f"goal: webhook throughput >= {GOAL_RATIO:.0%} of the baseline's: "
        + _verdict(ratio >= GOAL_RATIO)
    )
    print(
        f"goal: webhook p99 < {GOAL_P99_MS} ms with {args.clients} clients: "
        f"{_verdict(p99 < GOAL_P99_MS)} ({p99:.1f} ms; by Little's law the mean wait of a closed "
        f"loop is clients / throughput = {args.clients / totals['webhook'][0] * 1000:.0f} ms)"
    )
    if paced:
        print(
            "not a goal, for comparison: p99 at "
            + ", ".join(f"{b.label}: {b.p(99):.1f} ms" for b in paced)
        )
    print(
        f"goal: no errors: {_verdict(not errors and complete)} "
        f"({errors} errors{'' if complete else ', some blocks hit the time limit'})"
    )
    return bool(errors) or not complete


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _check(factory: RequestFactory, broker: redis.Redis) -> bool:
    """Every message stored exactly once; one open conversation per customer."""
    from django.db import connection

    from campaigns.models import Interaction, InteractionEvent
    from sms_channel.models import Message

    sent = factory.webhook_sids
    stored = Message.objects.filter(provider_sid__in=sent).count()
    inbound = Message.objects.filter(direction=Message.Direction.INBOUND).count()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT provider_sid FROM sms_channel_message"
            " GROUP BY provider_sid HAVING count(*) > 1) twice"
        )
        (twice,) = cursor.fetchone()
        cursor.execute("SELECT count(*), count(DISTINCT sid) FROM bench_insert")
        baseline_rows, baseline_distinct = cursor.fetchone()
    unattached = Message.objects.filter(interaction__isnull=True).count()
    conversations = Interaction.objects.count()
    open_customers = (
        Interaction.objects.filter(status=Interaction.Status.QUEUED)
        .values("customer_number")
        .distinct()
        .count()
    )
    queued_events = InteractionEvent.objects.filter(to_status=Interaction.Status.QUEUED).count()
    # Every queue's list (and its priority lists); kombu's own keys start with "_".
    published = sum(
        broker.llen(key)
        for key in broker.scan_iter()
        if not key.startswith(b"_") and broker.type(key) == b"list"
    )
    expected_customers = len(factory.webhook_customers)
    print(
        f"stored: {stored} of {len(sent)} webhook messages by MessageSid ({inbound} inbound "
        f"messages in all, {twice} SIDs stored twice, {unattached} without a conversation); "
        f"{conversations} conversations for {expected_customers} customers ({open_customers} "
        f"customers with one queued), {queued_events} queued events, {published} routing "
        f"tasks published; baseline: {baseline_rows} rows, {baseline_distinct} distinct, "
        f"of {len(factory.baseline_sids)} sent"
    )
    ok = (
        stored == inbound == len(sent)
        and not twice
        and not unattached
        and conversations == open_customers == queued_events == published == expected_customers
        and baseline_rows == baseline_distinct == len(factory.baseline_sids)
    )
    print(f"check: {'every message stored exactly once' if ok else 'FAILED'}")
    return ok


if __name__ == "__main__":
    main()
