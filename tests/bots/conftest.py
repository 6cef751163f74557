"""A webhook receiver on 127.0.0.1 for the bot tests: a real HTTP server in a
thread that checks each call's signature and answers what the test says."""

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """What the server answers (`status`, `reply`, after `delay` seconds) and what it got."""

    base_url: str = ""
    secret: str = ""
    status: int = 200
    reply: dict = field(default_factory=dict)
    delay: float = 0.0
    calls: list[Call] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.base_url + "/hook"

    def expected_signature(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signature_ok = bool(receiver.secret) and hmac.compare_digest(
                self.headers.get("X-Bot-Signature", ""), receiver.expected_signature(body)
            )
            receiver.calls.append(Call(self.path, dict(self.headers), body, signature_ok))
            time.sleep(receiver.delay)
            status = receiver.status if signature_ok else 401
            payload = json.dumps(receiver.reply if signature_ok else {"error": "bad signature"})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload.encode())

        def log_message(self, format, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            # A client that gave up (the timeout tests) closed its socket.
            pass

    server = Server(("127.0.0.1", 0), Handler)
    receiver.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
