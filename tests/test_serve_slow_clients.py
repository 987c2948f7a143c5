"""Slow or stalled clients cannot stop ``textback serve`` from answering signed webhooks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.served import Served
from tests.served import textback_serve

SLOW_CLIENTS = 20
# A webhook normally takes milliseconds; this only bounds how long a blocked one is waited for.
ANSWER_WITHIN_S = 8


class SlowClient:
    """A connection that sends a request a byte at a time, then stalls with it unfinished."""

    def __init__(self, port: int, request: bytes, *, stall_after: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.request = request
        self.stall_after = stall_after
        self.sent = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        try:
            for index in range(self.stall_after):
                if self.stop.wait(0.01):
                    return
                self.sock.sendall(self.request[index : index + 1])
        except OSError:
            pass  # the server may close a connection that sends too slowly: that is allowed
        finally:
            self.sent.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def slow_headers(port: int) -> bytes:
    # headers that never end
    return (
        f"POST /twilio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nX-Padding: "
    ).encode() + b"x" * 200


def slow_body(port: int) -> bytes:
    # complete headers, then a body far shorter than its Content-Length
    head = (
        f"POST /twilio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "X-Twilio-Signature: c2xvdw==\r\nContent-Length: 4000\r\n\r\n"
    ).encode()
    return head + b"Body=" + b"a" * 100


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with textback_serve(tmp_path, database_url=f"sqlite:///{tmp_path / 'serve.db'}") as server:
        yield server


def test_twenty_slow_clients_do_not_stop_webhooks(served: Served) -> None:
    assert served.post_webhook()[0] == 200
    clients = []
    try:
        for number in range(SLOW_CLIENTS):
            request = slow_body(served.port) if number % 2 else slow_headers(served.port)
            head_length = request.index(b"Body=") if number % 2 else len(request) - 1
            # slow-body clients finish their headers (the request reaches the app), then stall
            clients.append(SlowClient(served.port, request, stall_after=head_length + 20))
        for client in clients:
            assert client.sent.wait(30)
        for _ in range(20):
            status, body = served.post_webhook(timeout=ANSWER_WITHIN_S)
            assert status == 200, body
            assert b"Hello back to you!</Message>" in body
        assert served.alive()
    finally:
        for client in clients:
            client.close()
