"""The body limit and the body's length over a real socket: chunked, oversized, cut short.

Raw HTTP against a served app, on werkzeug's server (threaded, in this process), on granian and
on gunicorn (in subprocesses), since each server hands the body over differently: werkzeug
de-chunks in Python and raises on a short body, gunicorn hands a short body over as it is,
granian reads the body in Rust.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func
from sqlalchemy import select

from tests.served import free_port
from textback.channel.forms import inbound_form
from textback.channel.signature import sign
from textback.storage.engine import make_engine
from textback.storage.engine import upgrade
from textback.storage.models import Message
from textback.storage.models import RejectCount
from textback.testing import TEST_TOKEN

from .conftest import LiveServer


@dataclass
class Served:
    """An app on a loopback port, and its database."""

    port: int
    database_url: str

    def count(self, table: type[Message] | type[RejectCount]) -> int:
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
        finally:
            engine.dispose()


def _config(tmp_path: Path) -> dict[str, str]:
    return {
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'http.db'}",
        "TWILIO_AUTH_TOKEN": TEST_TOKEN,
    }


SERVERS = {
    "granian": [
        *("-m", "granian", "--interface", "wsgi", "--factory", "--workers", "1", "--no-ws"),
        *("--host", "127.0.0.1", "--port", "{port}", "textback.app:create_app"),
    ],
    "gunicorn": [
        *("-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:{port}"),
        "textback.app:create_app()",
    ],
}


@pytest.fixture(scope="module", params=["werkzeug", *SERVERS])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The app served by werkzeug's development server, granian or gunicorn, for this module."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    config = _config(tmp_path)
    if request.param == "werkzeug":
        from textback.app import create_app

        app = create_app(config)
        server = LiveServer(app)
        try:
            yield Served(server.server.server_port, config["DATABASE_URL"])
        finally:
            server.stop()
            app.extensions["textback"].store.engine.dispose()
        return
    engine = make_engine(config["DATABASE_URL"])
    upgrade(engine)
    engine.dispose()
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *(arg.format(port=port) for arg in SERVERS[request.param])],
            env={**os.environ, **config},
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{request.param} did not start: {log_path.read_text()}")
                time.sleep(0.1)
        yield Served(port, config["DATABASE_URL"])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post_raw(port: int, head: bytes, body: bytes, *, end: bool = False) -> int:
    """Send one request as raw bytes and return the first status of the answer.

    ``end`` shuts the sending side after the bytes, as a client that stops early does (hyper,
    granian's HTTP library, closes the connection of a client that does so for a full request).
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def send() -> None:
        try:
            sock.sendall(head + body)
            if end:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading everything: that is allowed

    sender = threading.Thread(target=send)
    sender.start()
    received = b""
    try:
        while b"\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    finally:
        sender.join(30)
        sock.close()
    assert received.startswith(b"HTTP/1."), received[:200]
    return int(received.split(b" ", 2)[1])


def signed_head(port: int, pairs: list[tuple[str, str]], framing: str) -> bytes:
    signature = sign(TEST_TOKEN, f"http://127.0.0.1:{port}/twilio", pairs)
    return (
        f"POST /twilio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {signature}\r\n{framing}\r\n"
    ).encode()


def chunked(data: bytes, size: int = 8192) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
        for i in range(0, len(data), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


CHUNKED = "Transfer-Encoding: chunked\r\n"


def test_a_chunked_form_within_the_limit_is_answered(served: Served) -> None:
    before = served.count(Message)
    pairs = inbound_form("Hello")
    status = post_raw(
        served.port,
        signed_head(served.port, pairs, CHUNKED),
        chunked(urlencode(pairs).encode(), 100),
    )
    assert status == 200
    assert served.count(Message) == before + 2  # the message and its reply


def test_a_signed_chunked_form_padded_past_the_limit_is_413(served: Served) -> None:
    """The padding (``&`` adds no parameter) leaves the signature valid: only size refuses it."""
    pairs = inbound_form("Hello")
    body = urlencode(pairs).encode() + b"&" * (1024 * 1024)
    before = served.count(Message)
    status = post_raw(served.port, signed_head(served.port, pairs, CHUNKED), chunked(body))
    assert status == 413
    assert served.count(Message) == before


def test_a_large_signed_chunked_body_is_413_not_a_bad_signature(served: Served) -> None:
    pairs = inbound_form("x" * 1_000_000)
    body = urlencode(pairs).encode()
    before = served.count(Message)
    status = post_raw(served.port, signed_head(served.port, pairs, CHUNKED), chunked(body))
    assert status == 413
    assert served.count(Message) == before
    assert served.count(RejectCount) == 0


def test_a_declared_length_over_the_limit_is_413(served: Served) -> None:
    pairs = inbound_form("x" * 70_000)
    body = urlencode(pairs).encode()
    head = signed_head(served.port, pairs, f"Content-Length: {len(body)}\r\n")
    before = served.count(Message)
    assert post_raw(served.port, head, body) == 413
    assert served.count(Message) == before


def test_a_body_shorter_than_its_length_is_refused(served: Served) -> None:
    pairs = inbound_form("Hello")
    body = urlencode(pairs).encode()
    head = signed_head(served.port, pairs, f"Content-Length: {len(body) + 40}\r\n")
    before = served.count(Message)
    assert post_raw(served.port, head, body, end=True) == 400
    assert served.count(Message) == before
