"""Fault 2: PostgreSQL stopped for 10 s while Twilio posts inbound webhooks.

The app runs under gunicorn (3 sync workers, as in the Procfile) against a
private PostgreSQL cluster, which the test stops with `pg_ctl -m immediate`
(no checkpoint, every connection cut: what a crash or a failover looks like
to the app) and starts again 10 s later. Six threads post signed webhooks
all along, each with its own MessageSid, and record every answer. Then the
ones that did not get a 2xx are posted again, as Twilio retries them.
"""

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

import psycopg
import pytest
import requests
from django.conf import settings

from tests.faults.servers import ManagedProcess, PrivatePostgres, PrivateRedis, free_port, wait_for
from tests.sms_channel.twilio_helpers import INBOUND_PATH, new_sid, payload, sign

pytestmark = [pytest.mark.faults]

THREADS = 6
LOAD_SECONDS = 22
DOWN_AT = 5
DOWN_FOR = 10
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'

SEED = """
from tests.factories import (
    CampaignFactory, PhoneNumberFactory, SmsChannelFactory, TwilioConnectorFactory,
)
from tests.sms_channel.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, TWILIO_NUMBER

connector = TwilioConnectorFactory(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
number = PhoneNumberFactory(connector=connector, number=TWILIO_NUMBER)
SmsChannelFactory(campaign=CampaignFactory(name="Support"), phone_number=number,
                  connector=connector, max_queue_seconds=0)
"""


@dataclass
class Post:
    sid: str
    params: dict[str, str]
    signature: str
    sent_at: float = 0.0
    status: int | None = None  # None: no HTTP answer at all
    error: str = ""
    body: bytes = b""
    seconds: float = 0.0


@dataclass
class WebStack:
    url: str
    pg: PrivatePostgres
    dsn: str
    web: ManagedProcess


@pytest.fixture
def web_stack(tmp_path):
    """gunicorn on a private PostgreSQL cluster (migrated, one Twilio channel)."""
    pg = PrivatePostgres()
    redis_server = PrivateRedis(tmp_path)
    web = None
    try:
        pg.init()
        pg.start()
        with psycopg.connect(pg.dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE faults_web")
        redis_server.start()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": pg.dsn("faults_web"),
            "CELERY_BROKER_URL": redis_server.url,
            "PUBLIC_BASE_URL": url,
            "ALLOWED_HOSTS": "127.0.0.1",
            "DEBUG": "false",
            "PYTHONUNBUFFERED": "1",
        }
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        for command in (["migrate", "--no-input"], ["shell", "-c", SEED]):
            subprocess.run(
                [*manage, *command],
                cwd=settings.BASE_DIR,
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
        web = ManagedProcess(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "contactcenter.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "3",
                "--timeout",
                "30",
                "--access-logfile",
                "-",
                "--no-control-socket",
            ],
            env=env,
            log_dir=tmp_path,
        ).start()
        web.wait_for_log("Booting worker", timeout=60)
        wait_for(
            lambda: _reachable(url),
            timeout=60,
            what="gunicorn to answer",
        )
        yield WebStack(url=url, pg=pg, dsn=pg.dsn("faults_web"), web=web)
    finally:
        if web is not None:
            web.stop()
        redis_server.kill()
        pg.destroy()
        print(f"gunicorn log in {tmp_path}")


def _reachable(url: str) -> bool:
    try:
        requests.get(url + "/", timeout=2)
    except requests.RequestException:
        return False
    return True


def _signed_post(url: str, thread: int, n: int) -> Post:
    sid = new_sid()
    params = payload(
        "twilio_inbound_sms",
        MessageSid=sid,
        # A few customers per thread: some texts open conversations, most append.
        From=f"+1415666{thread}{n % 5:03d}",
        Body=f"Message {n} from thread {thread}",
    )
    params["SmsMessageSid"] = params["SmsSid"] = sid
    return Post(sid=sid, params=params, signature=sign(url + INBOUND_PATH, params))


def _send(session: requests.Session, url: str, post: Post) -> Post:
    post.sent_at = time.monotonic()
    try:
        # Twilio's limits: 10 s to connect, 15 s in all.
        response = session.post(
            url + INBOUND_PATH,
            data=post.params,
            headers={"X-Twilio-Signature": post.signature},
            timeout=(10, 15),
        )
    except requests.RequestException as error:
        post.status, post.error = None, type(error).__name__
    else:
        post.status, post.body = response.status_code, response.content
    post.seconds = time.monotonic() - post.sent_at
    return post


def _stored(dsn: str) -> Counter:
    with psycopg.connect(dsn) as conn:
        return Counter(
            dict(
                conn.execute(
                    "SELECT provider_sid, count(*) FROM sms_channel_message "
                    "WHERE direction = 'inbound' GROUP BY provider_sid"
                ).fetchall()
            )
        )


def test_database_outage_no_2xx_without_the_message_stored_once(web_stack, measure):
    url = web_stack.url
    posts: list[Post] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + LOAD_SECONDS

    def load(thread: int) -> None:
        session = requests.Session()
        for n in range(5000):  # bounded; the clock ends it first
            if time.monotonic() > stop_at:
                return
            post = _send(session, url, _signed_post(url, thread, n))
            with lock:
                posts.append(post)
            time.sleep(0.02)

    threads = [threading.Thread(target=load, args=(t,), daemon=True) for t in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(DOWN_AT)
    web_stack.pg.stop(mode="immediate")
    down = (time.monotonic() - started, 0.0)
    time.sleep(DOWN_FOR)
    web_stack.pg.start()
    down = (down[0], time.monotonic() - started)
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 60)
    assert not any(thread.is_alive() for thread in threads)

    stored_before_retry = _stored(web_stack.dsn)
    ok = [p for p in posts if p.status is not None and 200 <= p.status < 300]
    failed = [p for p in posts if p not in ok]
    # A 2xx is a promise: the message is in the database, with empty TwiML.
    lost = [p.sid for p in ok if p.sid not in stored_before_retry]
    assert not lost, f"{len(lost)} messages answered 2xx but not stored: {lost[:5]}"
    assert all(p.status == 200 and p.body == EMPTY_TWIML for p in ok)
    # Anything else is an error Twilio can see: a 5xx or no answer, never a 4xx.
    assert all(p.status is None or p.status >= 500 for p in failed), Counter(
        p.status for p in failed
    )
    assert failed, "nothing failed: the outage did not happen"
    assert any(p.sent_at - started > down[1] for p in ok), "nothing succeeded after the restart"

    # Twilio retries what failed; every retry now succeeds.
    session = requests.Session()
    retried = [_send(session, url, Post(p.sid, p.params, p.signature)) for p in failed]
    assert [p.status for p in retried] == [200] * len(retried)

    stored = _stored(web_stack.dsn)
    assert stored == dict.fromkeys([p.sid for p in posts], 1)
    with psycopg.connect(web_stack.dsn) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM sms_channel_message "
            "WHERE direction = 'inbound' AND interaction_id IS NULL"
        ).fetchone()[0]
        open_twice = conn.execute(
            "SELECT count(*) FROM (SELECT customer_number FROM campaigns_interaction "
            "WHERE status IN ('queued', 'assigned', 'transferring') "
            "GROUP BY campaign_id, customer_number HAVING count(*) > 1) AS t"
        ).fetchone()[0]
    assert orphans == 0, "a message stored without its conversation"
    assert open_twice == 0

    stored_despite_error = sum(1 for p in failed if p.sid in stored_before_retry)
    slowest = max(p.seconds for p in posts)
    first_ok_after = min((p.sent_at for p in ok if p.sent_at > started + down[1]), default=0)
    measure(
        f"{len(posts)} webhooks; database down {down[0]:.1f}-{down[1]:.1f} s; "
        f"answers {dict(Counter(p.status or p.error for p in posts))}; "
        f"{stored_despite_error} of the failed were stored anyway (the retry found them); "
        f"slowest answer {slowest:.2f} s; first 200 {first_ok_after - started - down[1]:.2f} s "
        f"after the restart; after retries {len(stored)} stored, once each"
    )
