"""Start, stop and measure the servers: gunicorn, granian and ``textback serve`` processes.

CPU time is read from /proc (utime + stime of the server's main process, its workers and, for
PostgreSQL runs, the database's backends), so the cost per request includes everything the
server side spends, not just the worker that answered.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
_CPUS = len(os.sched_getaffinity(0))
_OVERRIDE = int(os.environ.get("TEXTBACK_BENCH_WORKERS") or 0)
# Each server with the workers its own documentation recommends: gunicorn 2 x CPUs + 1 (what
# `textback serve` started on gunicorn), granian one per CPU (what `textback serve` starts).
GUNICORN_WORKERS = _OVERRIDE or min(2 * _CPUS + 1, 8)
GRANIAN_WORKERS = _OVERRIDE or _CPUS
GTHREAD_THREADS = 4
_TICK = os.sysconf("SC_CLK_TCK")

Runner = Literal["gunicorn sync", "gunicorn gthread", "granian", "textback serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def describe() -> dict[str, str]:
    """How each kind of server is run, for the results' conditions."""
    return {
        "gunicorn sync": f"{GUNICORN_WORKERS} workers",
        "gunicorn gthread": f"{GUNICORN_WORKERS} workers x {GTHREAD_THREADS} threads",
        "granian": f"granian --interface wsgi, {GRANIAN_WORKERS} workers, its defaults",
        "textback serve": f"{GRANIAN_WORKERS} workers (granian, textback's settings)",
    }


@dataclass
class Server:
    """One server on a loopback port: ``target`` (``module:callable``) under ``runner``, or
    textback itself under ``textback serve`` (configured by ``env``)."""

    name: str
    runner: Runner
    target: str = ""
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    worker_count: int | None = None  # instead of the runner's default (scale-out's pair)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/twilio"

    @property
    def workers(self) -> int:
        if self.worker_count is not None:
            return self.worker_count
        return GUNICORN_WORKERS if self.runner.startswith("gunicorn") else GRANIAN_WORKERS

    def command(self) -> list[str]:
        if self.runner == "textback serve":
            bind = f"--bind=127.0.0.1:{self.port}"
            return [str(BIN / "textback"), "serve", bind, f"--workers={self.workers}"]
        if self.runner == "granian":
            return [
                str(BIN / "granian"),
                "--interface=wsgi",
                f"--workers={self.workers}",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--backlog=2048",
                "--no-ws",
                self.target,
            ]
        threads = [f"--threads={GTHREAD_THREADS}"] if self.runner == "gunicorn gthread" else []
        return [
            str(BIN / "gunicorn"),
            f"--workers={self.workers}",
            f"--worker-class={self.runner.removeprefix('gunicorn ')}",
            *threads,
            f"--bind=127.0.0.1:{self.port}",
            "--backlog=2048",
            "--timeout=30",
            self.target,
        ]

    def start(self) -> None:
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=out,
            stderr=out,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker is up (both servers fork them after binding)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            if len(self.pids()) > self.workers and _accepts(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start within {timeout:.0f} s; see {self.log}")

    def pids(self) -> list[int]:
        if self.process is None:
            return []
        return [self.process.pid, *children(self.process.pid)]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields after "pid (comm) "


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def postgres_backends(database: str) -> list[int]:
    """The PostgreSQL backend processes connected to ``database`` (found by their title)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            found.append(int(entry.name))
    return found


def cpu_times(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each of ``pids`` that still runs."""
    times = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            times[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return times


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two samples (a process that started in between counts whole)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


@contextlib.contextmanager
def serving(servers: Sequence[Server]) -> Iterator[None]:
    """All ``servers`` started and answering for the block, stopped after it whatever happens."""
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        yield
    finally:
        for server in servers:
            server.stop()
