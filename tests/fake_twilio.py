"""A local stand-in for Twilio's REST API, served over real HTTP on loopback.

Tests point TWILIO_API_BASE_URL at it, script failures with `fail_next`, and
assert on `requests` (the exact form fields the SDK sent).
"""

import base64
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class RecordedRequest:
    method: str
    path: str
    form: dict[str, str]
    query: dict[str, str]
    account_sid: str


@dataclass
class FakeTwilio:
    requests: list[RecordedRequest] = field(default_factory=list)
    sent: list[dict] = field(default_factory=list)
    _failures: list[tuple[int, int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # When set, the fake stores a sent message but answers this HTTP status,
    # like Twilio accepting a message and then failing to say so.
    store_then_fail_status: int | None = None
    base_url: str = ""
    _counter: itertools.count = field(default_factory=itertools.count)

    @property
    def created(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def fail_next(self, times: int, *, status: int, code: int, message: str = "") -> None:
        with self._lock:
            self._failures.extend([(status, code, message or f"error {code}")] * times)

    def _pop_failure(self):
        with self._lock:
            return self._failures.pop(0) if self._failures else None


def make_handler(fake: FakeTwilio):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _record(self, method: str) -> RecordedRequest:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            url = urlparse(self.path)
            auth = self.headers.get("Authorization", "")
            user = base64.b64decode(auth.split(" ", 1)[1]).decode().split(":")[0] if auth else ""
            record = RecordedRequest(
                method=method,
                path=url.path,
                form={k: v[-1] for k, v in parse_qs(raw).items()},
                query={k: v[-1] for k, v in parse_qs(url.query).items()},
                account_sid=user,
            )
            with fake._lock:
                fake.requests.append(record)
            return record

        def _json(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            record = self._record("POST")
            failure = fake._pop_failure()
            if failure:
                status, code, message = failure
                self._json(status, {"code": code, "message": message, "status": status})
                return
            message = {
                "sid": f"SM{uuid.uuid4().hex}",
                "account_sid": record.account_sid,
                "to": record.form.get("To"),
                "from": record.form.get("From"),
                "messaging_service_sid": record.form.get("MessagingServiceSid"),
                "body": record.form.get("Body"),
                "status": "accepted" if record.form.get("MessagingServiceSid") else "queued",
                "direction": "outbound-api",
                "num_segments": "1",
            }
            with fake._lock:
                fake.sent.append(message)
            if fake.store_then_fail_status:
                self._json(fake.store_then_fail_status, {"code": 20500, "message": "oops"})
                return
            self._json(201, message)

        def do_GET(self):
            record = self._record("GET")
            to, from_ = record.query.get("To"), record.query.get("From")
            with fake._lock:
                found = [
                    m for m in fake.sent if m["to"] == to and (from_ is None or m["from"] == from_)
                ]
            self._json(
                200,
                {
                    "messages": found,
                    "page": 0,
                    "page_size": 50,
                    "first_page_uri": record.path,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "uri": record.path,
                },
            )

    return Handler


def start_fake_twilio() -> tuple[FakeTwilio, ThreadingHTTPServer]:
    fake = FakeTwilio()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server
