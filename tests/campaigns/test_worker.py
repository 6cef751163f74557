"""A real Celery worker, in its own process, routes an enqueued conversation.

No eager mode: the service's on-commit hook publishes `route_campaign_task`
to Redis, a worker subprocess consumes it against the same test database,
and the test watches the row change.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import kombu.pools
import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import AGENTS_GROUP, SUPERVISORS_GROUP, AgentProfile, Interaction
from campaigns.services import interaction_enqueue_new
from contactcenter.celery import app
from tests.factories import AgentFactory, MemberFactory, SmsChannelFactory

BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")


def _redis_up() -> bool:
    try:
        return redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: the worker process must see the test database",
    ),
    pytest.mark.skipif(not _redis_up(), reason=f"needs Redis at {BROKER_URL}"),
    pytest.mark.django_db(transaction=True),
]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _reset_broker_connections() -> None:
    """Drop pooled broker connections so the next publish uses the current settings."""
    # kombu keeps its pools globally, keyed by connection: closing only the
    # app's would leave a closed pool for the next test to trip over.
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def worker(tmp_path: Path):
    """A worker process on a private Redis database, and this process publishing to it."""
    redis.Redis.from_url(BROKER_URL).flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "DEBUG": "false",
    }
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "contactcenter",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    app.conf.broker_url = BROKER_URL
    app.conf.broker_transport_options = {}
    app.conf.task_always_eager = False
    _reset_broker_connections()
    try:
        yield process, log_path
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        _reset_broker_connections()
        app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved
        if process.returncode not in (0, -15):
            print(log_path.read_text())


def test_a_worker_process_routes_an_enqueued_conversation(worker):
    process, log_path = worker
    for name in (AGENTS_GROUP, SUPERVISORS_GROUP):
        Group.objects.get_or_create(name=name)
    channel = SmsChannelFactory(strategy="linear", service_level_seconds=60)
    agent = AgentFactory()
    AgentProfile.objects.update_or_create(
        user=agent, defaults={"status": "available", "last_seen_at": timezone.now()}
    )
    MemberFactory(campaign=channel.campaign, agent=agent)

    with transaction.atomic():
        interaction = interaction_enqueue_new(
            campaign=channel.campaign,
            channel_kind="sms",
            customer_number="+14155550100",
            max_queue_seconds=0,
            now=timezone.now(),
        )

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        interaction.refresh_from_db()
        if interaction.status != Interaction.Status.QUEUED:
            break
        assert process.poll() is None, "the worker exited"
        time.sleep(0.2)
    assert interaction.status == Interaction.Status.ASSIGNED
    assert interaction.agent == agent
    assert interaction.queue_outcome == Interaction.QueueOutcome.ATTENDED
    assert interaction.events.filter(to_status="assigned", reason="routed (linear)").count() == 1
    # The worker, not this process, did it.
    assert "campaigns.tasks.route_campaign_task" in log_path.read_text()
