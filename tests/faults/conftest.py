"""Fault tests: workers killed, PostgreSQL stopped, the provider failing, the
broker restarted; each test then checks the stored rows. See docs/RELIABILITY.md.

They start real processes and take minutes, so they run only with
RUN_FAULTS=1 (`make faults`); otherwise they are skipped. They need
PostgreSQL (DATABASE_URL) and the redis-server and PostgreSQL server binaries.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import kombu.pools
import psycopg
import pytest
from django.contrib.auth.models import Group
from django.db import connection

from campaigns.models import AGENTS_GROUP, SUPERVISORS_GROUP
from contactcenter.celery import app
from tests.faults.servers import (
    ManagedProcess,
    PrivateRedis,
    celery_beat,
    celery_worker,
    start_scripted_twilio,
)

HERE = Path(__file__).resolve().parent
MEASUREMENTS: list[tuple[str, str]] = []


def pytest_collection_modifyitems(config, items):
    if os.environ.get("RUN_FAULTS") == "1":
        return
    skip = pytest.mark.skip(reason="fault tests run with RUN_FAULTS=1 (make faults)")
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("fault measurements")
        for test, line in MEASUREMENTS:
            terminalreporter.write_line(f"{test}: {line}")


@pytest.fixture
def measure(request):
    """Note a measured figure; all are printed at the end of the run."""
    return lambda line: MEASUREMENTS.append((request.node.name, line))


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("fault tests need PostgreSQL: set DATABASE_URL (make faults does)")


def database_url() -> str:
    """The test database, for processes other than this one."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def other_backends(dsn: str | None = None) -> list[tuple[int, str, str]]:
    """(pid, wait_event_type, query) of the test database's sessions but ours."""
    with psycopg.connect(dsn or database_url(), autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, coalesce(wait_event_type, ''), left(query, 80) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND pid <> %s",
            [_our_pid()],
        ).fetchall()


def _our_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate_other_backends() -> None:
    """End sessions that SIGKILLed processes left behind, so the flush can run.

    Only sessions on this run's own test database.
    """
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
            [_our_pid()],
        )


@pytest.fixture
def groups_exist(transactional_db):
    for name in (AGENTS_GROUP, SUPERVISORS_GROUP):
        Group.objects.get_or_create(name=name)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def _reset_broker_connections() -> None:
    # kombu keeps its pools globally: drop them so publishing uses the current URL.
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def publisher(private_redis):
    """This process publishes tasks to the private Redis instead of running them eagerly."""
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    app.conf.broker_url = private_redis.url
    app.conf.broker_transport_options = {}
    app.conf.task_always_eager = False
    _reset_broker_connections()
    yield private_redis
    _reset_broker_connections()
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved


@pytest.fixture
def scripted_twilio(settings):
    fake, server = start_scripted_twilio()
    settings.TWILIO_API_BASE_URL = fake.base_url
    yield fake
    server.shutdown()
    server.server_close()


class Processes:
    """Starts Celery processes against the test database and the private Redis."""

    def __init__(self, log_dir: Path, broker_url: str) -> None:
        self.log_dir = log_dir
        self.broker_url = broker_url
        self.started: list[ManagedProcess] = []
        self.extra_env: dict[str, str] = {}
        self.crashes: list[str] = []

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": self.broker_url,
            "DEBUG": "false",
            # Agents' consoles are not open during these tests; keep them eligible.
            "AGENT_HEARTBEAT_STALE_SECONDS": "86400",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def worker(self, name: str) -> ManagedProcess:
        process = celery_worker(name, env=self.env(), log_dir=self.log_dir).start()
        self.started.append(process)
        process.wait_for_log(" ready.", timeout=90)
        return process

    def beat(self) -> ManagedProcess:
        process = celery_beat(env=self.env(), log_dir=self.log_dir).start()
        self.started.append(process)
        process.wait_for_log("beat: Starting", timeout=90)
        return process

    def supervise(self, *, restart_after: float = 5.0) -> None:
        """Restart a process that exited, as the systemd units do (Restart=on-failure,
        RestartSec=5), and note why it exited."""
        for process in self.started:
            if process.alive():
                continue
            critical = [line for line in process.log_text().splitlines() if "CRITICAL" in line]
            self.crashes.append(
                f"{process.name} exited {process.process.returncode}"
                + (f" ({critical[-1].split('] ', 1)[-1][:100]})" if critical else "")
            )
            time.sleep(restart_after)
            process.start()

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def processes(transactional_db, publisher, tmp_path) -> Iterator[Processes]:
    """Celery processes, stopped (and their leftover sessions ended) before the flush."""
    registry = Processes(tmp_path, publisher.url)
    yield registry
    registry.stop_all()
    terminate_other_backends()
    print(f"process logs in {tmp_path}")
