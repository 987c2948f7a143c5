"""Real ``textback serve`` processes for the tests: start one on a free port, sign webhooks for
it, find and signal its workers, stop it whatever happens."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from textback.channel.forms import inbound_form
from textback.channel.forms import signed_request
from textback.testing import TEST_TOKEN

TEXTBACK = str(Path(sys.executable).parent / "textback")
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[str]) -> None:
    """Until ``url`` answers at all; fails if ``process`` exits first or 60 s pass."""
    deadline = time.monotonic() + 60  # imports alone take 10 s on a busy 2-core machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def children(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (granian's workers of a serve process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(entry.name))
    return found


class Served:
    """One ``textback serve --workers N`` on 127.0.0.1:``port``; its log in ``log``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path, workers: int):
        self.process = process
        self.port = port
        self.log = log
        self.workers = workers

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def worker_pids(self) -> list[int]:
        return children(self.process.pid)

    def wait_for(self, what: str, count: int = 1, timeout: float = START_SECONDS) -> None:
        """Wait until the log holds ``what`` at least ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.output().count(what) < count:
            if not self.alive():
                raise AssertionError(f"textback serve exited:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what!r} x{count} in the log:\n{self.output()}")
            time.sleep(0.05)

    def post_webhook(self, body: str = "hello", *, timeout: float = 10) -> tuple[int, bytes]:
        """One signed webhook on a new connection: (status, body)."""
        payload, headers = signed_request(
            TEST_TOKEN, self.public_url + "/twilio", inbound_form(body)
        )
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("POST", "/twilio", body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def hold_webhook(self) -> HeldRequest:
        """A signed webhook sent but for its last bytes: in flight until ``finish()``."""
        payload, headers = signed_request(
            TEST_TOKEN, self.public_url + "/twilio", inbound_form("hello")
        )
        return HeldRequest(self.port, payload, headers)

    def signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class HeldRequest:
    """A request whose headers and most of its body are sent: the app is reading its body."""

    def __init__(self, port: int, payload: bytes, headers: dict[str, str]) -> None:
        lines = [f"POST /twilio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
        self.rest = payload[-10:]
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall("".join(lines).encode() + payload[:-10])

    def finish(self) -> tuple[int, bytes]:
        """Send the rest of the body; the response's status and body."""
        try:
            self.sock.sendall(self.rest)
            answer = b""
            while chunk := self.sock.recv(65536):
                answer += chunk
        finally:
            self.sock.close()
        if not answer:
            raise AssertionError("the connection was closed without an answer")
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body


@contextmanager
def textback_serve(
    folder: Path, *, database_url: str, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """``textback serve`` with ``workers`` workers, answering once the block starts."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    settings = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        "TEXTBACK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TEXTBACK_INSTANCE": str(folder / "instance"),
        "TEXTBACK_SECRET_KEY": "test",
        "DATABASE_URL": database_url,
        **(env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [TEXTBACK, "serve", f"--bind=127.0.0.1:{port}", f"--workers={workers}"],
            cwd=folder,
            env=settings,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process, port, log, workers)
    try:
        served.wait_for("Started worker-", workers)
        yield served
    finally:
        served.stop()
