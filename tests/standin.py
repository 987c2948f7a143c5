"""A small stand-in for Twilio's Messages API, for what Prism cannot do: remember what was sent
(so a lookup can find it), count every request, answer 429/5xx or hang on demand.

It serves ``POST`` and ``GET /2010-04-01/Accounts/<AC>/Messages.json`` the way Twilio does
(JSON bodies, RFC 2822 dates, newest first), in a thread of the test process; worker processes
reach it through ``TWILIO_API_BASE_URL``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest


@dataclass
class Fault:
    """What to answer instead of creating the message: an HTTP status and Twilio error code,
    or ``hang`` seconds of silence (a timeout); ``create`` makes the message all the same (a
    5xx or a timeout after Twilio took it)."""

    status: int = 500
    code: int | None = None
    hang: float = 0.0
    create: bool = False


@dataclass
class Sent:
    sid: str
    form: dict[str, str]
    at: float  # time.time() when the request arrived


@dataclass
class StandIn:
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    posts: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    lists: int = 0
    faults: list[Fault] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[str]:
        return [item.form.get("Body", "") for item in self.sent]

    def message(self, item: Sent) -> dict[str, Any]:
        form = item.form
        return {
            "sid": item.sid,
            "account_sid": "AC" + "a" * 32,
            "to": form.get("To"),
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form.get("Body", ""),
            "status": "queued",
            "direction": "outbound-api",
            "date_created": format_datetime(datetime.fromtimestamp(item.at, UTC), usegmt=True),
            "date_sent": None,
        }


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            # A worker killed while it waited: what a real API would see too.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            if len(data) < length:  # the sender died mid-request: nothing is created
                self.close_connection = True
                return
            form = {k: v[0] for k, v in parse_qs(data.decode()).items()}
            arrived = time.time()
            with standin.lock:
                standin.posts.append((arrived, form))
                fault = standin.faults.pop(0) if standin.faults else None
                item = Sent("SM" + secrets.token_hex(16), form, arrived)
                if fault is None or fault.create:
                    standin.sent.append(item)
            if standin.delay:
                time.sleep(standin.delay)
            if fault is not None:
                if fault.hang:
                    time.sleep(fault.hang)
                    self.close_connection = True
                    return
                self.answer(
                    fault.status,
                    {"code": fault.code, "message": "stand-in fault", "status": fault.status},
                )
                return
            self.answer(201, standin.message(item))

        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            with standin.lock:
                standin.lists += 1
                found = [
                    standin.message(item)
                    for item in reversed(standin.sent)
                    if item.form.get("To") == query.get("To")
                    and ("From" not in query or item.form.get("From") == query["From"])
                ]
            self.answer(
                200,
                {
                    "messages": found,
                    "next_page_uri": None,
                    "page": 0,
                    "page_size": len(found),
                    "uri": self.path,
                    "first_page_uri": self.path,
                    "previous_page_uri": None,
                    "end": max(0, len(found) - 1),
                    "start": 0,
                },
            )

    return Handler


class QuietServer(ThreadingHTTPServer):
    """Clients killed mid-request are expected here, not errors to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture(name="standin")
def standin_api() -> Iterator[StandIn]:
    """A stand-in Twilio Messages API on a free loopback port."""
    fake = StandIn()
    server = QuietServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
