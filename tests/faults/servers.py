"""Throwaway servers and processes for the fault tests.

A private Redis, a private PostgreSQL cluster, Celery workers and beat, and
gunicorn: each on a free loopback port, each with its own log file, each
stopped by the fixture that started it. The fault tests stop, kill and
restart these, never the machine's own services.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

import redis
from django.conf import settings

from tests.fake_twilio import FakeTwilio, make_handler

# The newest installed server (Debian's layout: /usr/lib/postgresql/<major>/bin).
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda path: int(path.parent.name.split(".")[0]),
    default=None,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, interval=0.1):
    """Poll `predicate` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class ManagedProcess:
    """A subprocess with a log file, stopped politely, or killed."""

    def __init__(self, name: str, args: list[str], *, env: dict, log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "ManagedProcess":
        self._close_log()
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(
            self.args,
            cwd=settings.BASE_DIR,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout: float = 60) -> None:
        def seen() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited:\n{self.log_text()[-3000:]}")
            return text in self.log_text()

        wait_for(seen, timeout=timeout, what=f"{self.name} to log {text!r}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine or the OOM killer takes it."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self._close_log()

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def celery_worker(name: str, *, env: dict, log_dir: Path) -> ManagedProcess:
    """A worker that runs each task in its own main process, so SIGKILL hits the task."""
    return ManagedProcess(
        name,
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
            "--without-heartbeat",
            f"--hostname={name}@faults",
            "--loglevel=INFO",
        ],
        env=env,
        log_dir=log_dir,
    )


def celery_beat(*, env: dict, log_dir: Path) -> ManagedProcess:
    """Beat with the project's database scheduler (django-celery-beat)."""
    return ManagedProcess(
        "beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "contactcenter",
            "beat",
            "--loglevel=INFO",
            f"--pidfile={log_dir / 'beat.pid'}",
            f"--schedule={log_dir / 'beat-schedule'}",
        ],
        env=env,
        log_dir=log_dir,
    )


class PrivateRedis:
    """redis-server without persistence: a restart loses every queued message."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / f"redis-{self.port}.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, timeout=15, what=f"redis on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=15)
        self.process = None


class PrivatePostgres:
    """A PostgreSQL cluster of our own, in a temporary directory, on a free port.

    Run as the `postgres` OS user when we are root (initdb refuses root).
    """

    def __init__(self) -> None:
        if PG_BIN is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.dir, user="postgres", group="postgres")

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def dsn(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.dir} -c max_connections=40"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log_path), "-w",
            "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: no checkpoint, connections cut, as when the server dies."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# Twilio, failing on a script ---------------------------------------------------

# Steps a scripted message's POSTs go through, one per POST; then it is accepted.
ACCEPT_THEN_500 = "accept_then_500"  # Twilio stored it, then answered 500
ACCEPT_THEN_HANG = "accept_then_hang"  # stored it, then no answer within our timeout


class ScriptedTwilio(FakeTwilio):
    """tests/fake_twilio.py's fake, failing per message (by body) and in outages.

    `script(body, steps)`: each POST of that body takes the next step, a
    (status, code) error or one of the accept-then-fail steps above, then
    succeeds. `outage(seconds, status, code)`: every unscripted POST fails for
    that long. What is left falls back to the base fake's `fail_next` queue.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self.scripts: dict[str, list] = {}
        self.outages: list[tuple[float, float, int, int]] = []
        self.hang_seconds = 0.0
        super().__init__()

    def script(self, body: str, steps: list) -> None:
        with self._lock:
            self.scripts[body] = list(steps)

    def outage(self, *, starts_in: float, lasts: float, status: int, code: int) -> None:
        start = time.monotonic() + starts_in
        with self._lock:
            self.outages.append((start, start + lasts, status, code))

    def posts_for(self, body: str) -> int:
        return sum(1 for r in self.created if r.form.get("Body") == body)

    def accepted_for(self, body: str) -> list[dict]:
        return [m for m in self.sent if m["body"] == body]

    def _pop_failure(self):
        self._local.after_accept = None
        body = self._local.record.form.get("Body", "")
        with self._lock:
            steps = self.scripts.get(body)
            step = steps.pop(0) if steps else None
            if steps is None:
                now = time.monotonic()
                for start, end, status, code in self.outages:
                    if start <= now < end:
                        return status, code, f"scripted outage {status}"
        if step in (ACCEPT_THEN_500, ACCEPT_THEN_HANG):
            self._local.after_accept = step
            return None
        if step is not None:
            status, code = step
            return status, code, f"scripted error {code}"
        return super()._pop_failure()

    # The base handler reads this right after storing an accepted message:
    # the one point between accepting and answering, where these steps act.
    @property
    def store_then_fail_status(self) -> int | None:
        step = getattr(self._local, "after_accept", None)
        if step == ACCEPT_THEN_HANG:
            time.sleep(self.hang_seconds)
            return None
        return 500 if step == ACCEPT_THEN_500 else None

    @store_then_fail_status.setter
    def store_then_fail_status(self, value) -> None:
        if value is not None:
            raise ValueError("script accept-then-fail per message with ScriptedTwilio.script")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up on a hanging answer leaves a broken pipe: expected.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def start_scripted_twilio() -> tuple[ScriptedTwilio, ThreadingHTTPServer]:
    """Serve a ScriptedTwilio on a free loopback port, in a daemon thread."""
    fake = ScriptedTwilio()

    class Handler(make_handler(fake)):
        def _record(self, method):
            record = super()._record(method)
            fake._local.record = record  # for _pop_failure, in this request's thread
            return record

    server = _QuietServer(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server
