"""The production set-up: queues and routes, the Procfile and systemd units,
`make run-prod`, static files from gunicorn, and the sign-in limit."""

import datetime
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse

from bots.tasks import run_bot_step_task
from campaigns.tasks import route_campaign_task
from contactcenter.celery import app
from contactcenter.login_limits import client_ip
from sms_channel.tasks import send_sms_task
from tests.factories import PASSWORD, AgentFactory, SupervisorFactory

ROOT = Path(settings.BASE_DIR)
ROUTED_QUEUES = {"routing", "sms", "bots"}
WORKER_FLAGS = ["--prefetch-multiplier=1", "--time-limit=60", "--soft-time-limit=50"]
DATABASE_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"


def read_procfile(name: str) -> dict[str, list[str]]:
    lines = (ROOT / name).read_text().splitlines()
    return {
        process: shlex.split(command)
        for process, command in (line.split(":", 1) for line in lines if line.strip())
    }


def queue_of(argv: list[str]) -> str:
    return argv[argv.index("-Q") + 1]


# Queues and routes --------------------------------------------------------


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("campaigns.tasks.route_campaign_task", "routing"),
        ("campaigns.tasks.route_all_campaigns_task", "routing"),
        ("campaigns.tasks.sweep_queue_timeouts_task", "routing"),
        ("campaigns.tasks.sweep_transfer_timeouts_task", "routing"),
        ("sms_channel.tasks.send_sms_task", "sms"),
        ("sms_channel.tasks.sweep_stale_sms_task", "sms"),
        ("bots.tasks.run_bot_step_task", "bots"),
        ("bots.tasks.sweep_bot_waits_task", "bots"),
    ],
)
def test_each_task_is_routed_to_its_queue(task_name, queue):
    route = app.amqp.router.route({}, task_name)

    assert route["queue"].name == queue
    assert route["queue"].routing_key == queue


def test_every_task_of_ours_has_a_dedicated_queue():
    ours = sorted(name for name in app.tasks if not name.startswith("celery."))

    assert ours, "no tasks registered"
    for name in ours:
        assert app.amqp.router.route({}, name)["queue"].name in ROUTED_QUEUES, name


def test_every_periodic_task_is_routed_away_from_the_default_queue():
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert app.amqp.router.route({}, entry["task"])["queue"].name in ROUTED_QUEUES


def test_queues_have_distinct_bindings():
    bindings = [(q.exchange.name, q.routing_key) for q in app.amqp.queues.values()]

    assert len(set(bindings)) == len(bindings)
    assert set(app.amqp.queues) == {*ROUTED_QUEUES, "celery"}


def _drain(queue) -> list[str]:
    names = []
    while (message := queue.get(no_ack=True)) is not None:
        names.append(message.headers["task"])
    return names


def test_published_tasks_reach_only_their_queue_on_a_broker():
    """Publish for real, to kombu's in-memory broker, as a worker would see it."""
    app.conf.task_always_eager = False
    with app.connection_for_write("memory://") as connection:
        queues = {name: q(connection.default_channel) for name, q in app.amqp.queues.items()}
        for queue in queues.values():
            queue.declare()

        route_campaign_task.apply_async((1,), connection=connection)
        send_sms_task.apply_async((2,), connection=connection)
        run_bot_step_task.apply_async((3, 0), connection=connection)

        landed = {name: _drain(queue) for name, queue in queues.items()}

    assert landed == {
        "routing": ["campaigns.tasks.route_campaign_task"],
        "sms": ["sms_channel.tasks.send_sms_task"],
        "bots": ["bots.tasks.run_bot_step_task"],
        "celery": [],
    }


def test_tasks_are_acknowledged_after_they_run_and_redelivered_if_a_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.beat_scheduler == DATABASE_SCHEDULER


def test_sending_an_sms_is_cut_off_inside_its_lease():
    from sms_channel.services import SEND_LEASE

    assert send_sms_task.soft_time_limit < send_sms_task.time_limit
    assert send_sms_task.time_limit < SEND_LEASE.total_seconds()


# The Procfile, the dev Procfile and the systemd units --------------------


def test_procfile_runs_gunicorn_a_worker_per_queue_and_one_beat():
    processes = read_procfile("Procfile")

    web = processes.pop("web")
    assert web[:2] == ["gunicorn", "contactcenter.wsgi"]
    assert web[web.index("--workers") + 1] == "${WEB_CONCURRENCY:-3}"

    beats = {name: argv for name, argv in processes.items() if "beat" in argv}
    assert list(beats) == ["beat"]
    assert beats["beat"][beats["beat"].index("--scheduler") + 1] == DATABASE_SCHEDULER
    del processes["beat"]

    assert {queue_of(argv) for argv in processes.values()} == ROUTED_QUEUES
    for name, argv in processes.items():
        assert argv[:4] == ["celery", "-A", "contactcenter", "worker"], name
        assert name == f"worker_{queue_of(argv)}"
        assert argv[argv.index("-n") + 1] == f"{queue_of(argv)}@%h"
        for flag in WORKER_FLAGS:
            assert flag in argv, (name, flag)


def test_the_development_worker_consumes_every_queue():
    worker = read_procfile("Procfile.dev")["worker"]

    assert set(queue_of(worker).split(",")) == set(app.amqp.queues)


def _exec_start(unit: str) -> list[str]:
    text = (ROOT / "deploy" / "systemd" / unit).read_text()
    (line,) = re.findall(r"^ExecStart=(.*)$", text, flags=re.MULTILINE)
    return shlex.split(line)


def test_systemd_units_run_the_procfile_commands():
    procfile = read_procfile("Procfile")

    web = _exec_start("contactcenter-web.service")
    assert web[0].endswith("/.venv/bin/gunicorn")
    # systemd expands ${VAR} without defaults; the unit sets them with Environment=.
    assert web[1:] == [re.sub(r"\$\{(\w+):-[^}]*\}", r"${\1}", arg) for arg in procfile["web"][1:]]

    worker = _exec_start("contactcenter-worker@.service")
    assert worker[0].endswith("/.venv/bin/celery")
    assert queue_of(worker) == "%i"
    assert worker[worker.index("-n") + 1] == "%i@%H"
    for flag in WORKER_FLAGS:
        assert flag in worker

    beat = _exec_start("contactcenter-beat.service")
    assert beat[beat.index("--scheduler") + 1] == DATABASE_SCHEDULER


# make run-prod -------------------------------------------------------------


def run_prod(*make_args: str, **env: str) -> subprocess.CompletedProcess:
    # Without a parent make's flags: a -j would let the guard race the install.
    dropped = {"DATABASE_URL", "CELERY_BROKER_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        ["make", "--no-print-directory", *make_args, "run-prod"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}, "DATABASE_URL is not set"),
        ({"DATABASE_URL": "postgres://cc@127.0.0.1/cc"}, "CELERY_BROKER_URL is not set"),
        (
            {"DATABASE_URL": "postgres://cc@127.0.0.1/cc", "CELERY_BROKER_URL": "filesystem://"},
            "CELERY_BROKER_URL is the file-system broker",
        ),
    ],
)
def test_run_prod_refuses_the_embedded_defaults(env, message):
    result = run_prod(**env)

    assert result.returncode != 0
    assert message in result.stderr
    assert "migrate" not in result.stdout


def test_run_prod_migrates_collects_static_files_then_starts_the_procfile():
    result = run_prod(
        "--dry-run",
        DATABASE_URL="postgres://cc@127.0.0.1/cc",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )

    assert result.returncode == 0, result.stderr
    steps = [
        line
        for line in result.stdout.splitlines()
        if "manage.py migrate" in line or "collectstatic" in line or "honcho" in line
    ]
    assert len(steps) == 3
    assert "manage.py migrate --no-input" in steps[0]
    assert "manage.py collectstatic --no-input" in steps[1]
    # The production Procfile, without a local .env overriding the environment.
    assert "honcho start -f Procfile -e /dev/null" in steps[2]


# Static files --------------------------------------------------------------


def test_static_files_are_served_by_the_app_itself_without_debug(client, settings, tmp_path):
    assert not settings.DEBUG
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--no-input", verbosity=0)

    css = client.get("/static/css/app.css")
    assert css.status_code == 200
    assert b"".join(css.streaming_content) == (ROOT / "static/css/app.css").read_bytes()
    assert "max-age" in css["Cache-Control"]

    assert client.get("/static/admin/css/base.css").status_code == 200
    swagger = client.get(
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        HTTP_ACCEPT_ENCODING="gzip",
    )
    assert swagger.status_code == 200
    assert swagger["Content-Encoding"] == "gzip"
    assert client.get("/static/nothing-here.css").status_code == 404


# The sign-in limit ---------------------------------------------------------


LOGIN_PAGES = ["login", "admin:login"]


def sign_in(client, url_name: str, username: str, password: str, **extra):
    return client.post(reverse(url_name), {"username": username, "password": password}, **extra)


def signed_in(client) -> bool:
    return SESSION_KEY in client.session


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", LOGIN_PAGES)
def test_the_sixth_attempt_is_refused_even_with_the_right_password(client, url_name):
    user = SupervisorFactory()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, url_name, user.username, "wrong").status_code == 200

    fifth = sign_in(client, url_name, user.username, "wrong")
    sixth = sign_in(client, url_name, user.username, PASSWORD)

    assert fifth.status_code == 429
    assert sixth.status_code == 429
    assert not signed_in(client)
    page = sixth.content.decode()
    assert "Signing in is paused" in page
    assert "for 15 minutes" in page


@pytest.mark.django_db
def test_an_overlong_username_is_counted_like_any_other(client):
    # Longer than axes' column: the sign-in forms do not check the length.
    junk = "0" * 300
    responses = [
        sign_in(client, "login", junk, "wrong").status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]

    assert responses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]


@pytest.mark.django_db
def test_a_success_clears_the_failures(client):
    user = AgentFactory()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "login", user.username, "wrong")
    assert sign_in(client, "login", user.username, PASSWORD).status_code == 302
    client.logout()

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "login", user.username, "wrong").status_code == 200
    assert sign_in(client, "login", user.username, PASSWORD).status_code == 302
    assert signed_in(client)


@pytest.mark.django_db
def test_the_pause_ends_after_the_cool_off(client):
    from axes.models import AccessAttempt

    user = AgentFactory()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "login", user.username, "wrong")
    assert sign_in(client, "login", user.username, PASSWORD).status_code == 429

    AccessAttempt.objects.update(
        attempt_time=datetime.datetime.now(datetime.UTC)
        - settings.AXES_COOLOFF_TIME
        - datetime.timedelta(seconds=1)
    )

    assert sign_in(client, "login", user.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_pause_holds_one_username_at_one_address(client):
    locked, colleague = AgentFactory(), AgentFactory()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "login", locked.username, "wrong")

    assert sign_in(client, "login", colleague.username, PASSWORD).status_code == 302
    client.logout()
    other_address = {"REMOTE_ADDR": "192.0.2.7"}
    assert sign_in(client, "login", locked.username, PASSWORD, **other_address).status_code == 302


@pytest.mark.django_db
def test_behind_a_proxy_failures_count_per_forwarded_client(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    user = AgentFactory()
    via_proxy = {"REMOTE_ADDR": "127.0.0.1"}
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(
            client, "login", user.username, "wrong", HTTP_X_FORWARDED_FOR="192.0.2.1", **via_proxy
        )

    refused = sign_in(
        client, "login", user.username, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.1", **via_proxy
    )
    # Another client behind the same proxy, even one forging the first hop.
    allowed = sign_in(
        client,
        "login",
        user.username,
        PASSWORD,
        HTTP_X_FORWARDED_FOR="192.0.2.1, 198.51.100.2",
        **via_proxy,
    )

    assert refused.status_code == 429
    assert allowed.status_code == 302


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "192.0.2.1", "203.0.113.9"),
        (1, "", "203.0.113.9"),
        (1, "192.0.2.1", "192.0.2.1"),
        (1, "10.9.9.9, 192.0.2.1", "192.0.2.1"),
        (2, "10.9.9.9, 192.0.2.1, 198.51.100.2", "192.0.2.1"),
        (3, "192.0.2.1", "192.0.2.1"),
        (1, "2001:db8::1", "2001:db8::1"),
        (1, "not-an-address", "203.0.113.9"),
        (1, "192.0.2.1:443", "203.0.113.9"),
    ],
)
def test_client_address_is_read_through_the_trusted_proxies(
    settings, proxies, forwarded_for, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get(
        "/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=forwarded_for
    )

    assert client_ip(request) == expected


# The example environment file -------------------------------------------


def read_env_example() -> dict[str, str]:
    lines = (ROOT / "deploy" / "contactcenter.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_example_env_file_and_the_deployment_guide_name_every_variable():
    read_by_settings = set(
        re.findall(r'env\.\w+\("([A-Z_]+)"', (ROOT / "contactcenter/settings.py").read_text())
    )
    read_by_processes = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "Procfile").read_text()))
    guide = (ROOT / "docs" / "DEPLOYMENT.md").read_text()

    assert read_by_settings
    assert set(read_env_example()) == read_by_settings | read_by_processes
    for name in read_by_settings | read_by_processes:
        assert f"`{name}`" in guide, name


def test_the_example_env_file_with_real_secrets_passes_the_deploy_checks():
    from cryptography.fernet import Fernet

    env = {
        **read_env_example(),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "PATH": os.environ["PATH"],
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
