"""What every benchmark shares: a throwaway PostgreSQL database, Django set-up,
bulk-made agents and percentiles.

Each benchmark owns one database whose name starts with `contactcenter_bench`;
it is dropped and recreated at the start of a run (never the application's
own database) and dropped at the end unless --keep-db is given.
"""

import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVER = "postgres://postgres@127.0.0.1:5432"
BENCH_DB_PREFIX = "contactcenter_bench"


def database_url(name: str) -> str:
    return f"{SERVER}/{name}"


def _check_name(name: str) -> None:
    # Only ever drop a benchmark's own database.
    if not name.startswith(BENCH_DB_PREFIX) or not name.replace("_", "").isalnum():
        raise ValueError(f"{name!r} is not a benchmark database name")


def recreate_database(name: str) -> None:
    """Drop `name` if it exists, create it empty and migrate it."""
    _check_name(name)
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=bench_env(name),
        check=True,
        timeout=300,
    )


def drop_database(name: str) -> None:
    _check_name(name)
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_env(name: str, **extra: str) -> dict[str, str]:
    """The environment of this benchmark's processes (Django and Celery read it)."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(name),
        # Nothing but the latency benchmark may reach a real broker.
        CELERY_BROKER_URL="memory://",
        DJANGO_SETTINGS_MODULE="contactcenter.settings",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def setup_django(env: dict[str, str]) -> None:
    """Configure Django in this process from `env` (call once, before any model import)."""
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def create_campaign(*, name: str, strategy: str):
    """A campaign with an enabled SMS channel on the simulator connector."""
    from tests.factories import CampaignFactory, SmsChannelFactory

    campaign = CampaignFactory(name=name)
    SmsChannelFactory(campaign=campaign, strategy=strategy)
    return campaign


def create_agents(*, campaign, count: int, capacity: int, prefix: str = "bench-agent") -> list:
    """`count` available agents, seen now, members of `campaign` in creation order.

    Made in bulk (no password hashing): the benchmarks need a thousand of them.
    """
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from campaigns.models import AGENTS_GROUP, AgentProfile, Member

    now = timezone.now()
    users = User.objects.bulk_create(
        [User(username=f"{prefix}-{campaign.pk}-{i}", password="!") for i in range(count)]
    )
    group = Group.objects.get(name=AGENTS_GROUP)
    User.groups.through.objects.bulk_create(
        [User.groups.through(user_id=u.pk, group_id=group.pk) for u in users]
    )
    AgentProfile.objects.bulk_create(
        [
            AgentProfile(
                user=u,
                status=AgentProfile.Status.AVAILABLE,
                status_changed_at=now,
                capacity=capacity,
                last_seen_at=now,
            )
            for u in users
        ]
    )
    Member.objects.bulk_create(
        [Member(campaign=campaign, agent=u, position=i) for i, u in enumerate(users)]
    )
    return users


def integrity(*, campaign_id: int) -> dict[str, int]:
    """What must hold after routing: one assigned event per assigned
    conversation, and no agent holding more than their capacity."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE e.n IS NULL),
                   count(*) FILTER (WHERE e.n > 1)
            FROM campaigns_interaction i
            LEFT JOIN (
                SELECT interaction_id, count(*) AS n FROM campaigns_interactionevent
                WHERE to_status = 'assigned' GROUP BY interaction_id
            ) e ON e.interaction_id = i.id
            WHERE i.campaign_id = %s AND i.status = 'assigned'
            """,
            [campaign_id],
        )
        assigned, without_event, twice = cursor.fetchone()
        cursor.execute(
            """
            SELECT count(*) FROM (
                SELECT i.agent_id FROM campaigns_interaction i
                JOIN campaigns_agentprofile p ON p.user_id = i.agent_id
                WHERE i.status IN ('assigned', 'transferring')
                GROUP BY i.agent_id, p.capacity HAVING count(*) > p.capacity
            ) over
            """
        )
        (over_capacity,) = cursor.fetchone()
    return {
        "assigned": assigned,
        "without_event": without_event,
        "twice": twice,
        "over_capacity": over_capacity,
    }


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def describe_machine() -> str:
    """One line: when, where and on which commit the figures were measured."""
    git = ["git", "-C", str(ROOT)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    source = f"commit {commit}{' + local changes' if dirty else ''}" if commit else str(ROOT)
    with psycopg.connect(database_url("postgres")) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # Other work on the machine skews every absolute figure: say how busy it was.
    load = "/".join(f"{n:.2f}" for n in os.getloadavg())
    return (
        f"{now}; {os.cpu_count()} CPUs ({platform.machine()}), load average {load}; "
        f"Python {platform.python_version()}; PostgreSQL {server}; {source}"
    )
