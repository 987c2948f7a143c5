"""Admin logins and the lockout with real `textback serve` processes of several workers each,
on SQLite and PostgreSQL: what one worker decides, every worker and every server agrees on.

Each request goes on a new connection (``Connection: close``), so the kernel hands it to any
worker, and the session cookie is sent by hand (it is Secure; the servers speak plain HTTP).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.served import free_port
from textback.storage.admin_sessions import admin_sessions
from textback.storage.engine import make_engine
from textback.testing import TEST_TOKEN

from .conftest import POSTGRES_URL

PASSWORD = "a plain-text passphrase"
WORKERS = 4
TEXTBACK = [sys.executable, "-m", "textback.cli"]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'textback.db'}"
        return
    yield from _postgres_database()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new PostgreSQL database, for tests of several servers sharing one."""
    yield from _postgres_database()


def _postgres_database() -> Iterator[str]:
    admin_url = make_url(POSTGRES_URL)
    name = f"textback_workers_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {admin_url.render_as_string()}: {exc}")
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (a server's workers), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@dataclass
class Server:
    """One `textback serve --workers 4` process on a free loopback port."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_ready(self) -> None:
        """Until the login page answers and every worker has been started."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"textback serve exited:\n{self.output()}"
            try:
                answered = requests.get(f"{self.url}/admin/login", timeout=10).status_code == 200
            except requests.RequestException:  # not listening yet, or still loading
                answered = False
            if answered and len(descendants(self.process.pid)) >= WORKERS:
                return
            time.sleep(0.2)
        raise AssertionError(f"textback serve did not get ready:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        if self.process.returncode is None:
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own group: its workers
                self.process.wait()


ServerStarter = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServerStarter]:
    """``serve(database_url, password, instance=..., secret_key=...)`` starts a ready server."""
    servers: list[Server] = []

    def start(
        database_url: str,
        password: str = PASSWORD,
        *,
        instance: str = "instance",
        secret_key: str = "",
    ) -> Server:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "TWILIO_AUTH_TOKEN": TEST_TOKEN,
            "DATABASE_URL": database_url,
            "TEXTBACK_INSTANCE": str(tmp_path / instance),
            "TEXTBACK_ADMIN_PASSWORD": password,
        }
        if secret_key:
            environ["TEXTBACK_SECRET_KEY"] = secret_key
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*TEXTBACK, "serve", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"],
                cwd=tmp_path,
                env=environ,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:  # all at once: each takes a while to stop its workers
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in servers:
        server.stop()


def get(server: Server, path: str, cookie: str | None) -> requests.Response:
    headers = {"Connection": "close"}
    if cookie:
        headers["Cookie"] = f"session={cookie}"
    return requests.get(server.url + path, headers=headers, allow_redirects=False, timeout=30)


def attempt(server: Server, password: str) -> requests.Response:
    """One login attempt as a browser makes it: the form, then its POST."""
    form = get(server, "/admin/login", None)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    return requests.post(
        f"{server.url}/admin/login",
        data={"csrf_token": token.group(1), "password": password},
        headers={"Connection": "close", "Cookie": f"session={form.cookies['session']}"},
        allow_redirects=False,
        timeout=30,
    )


def log_in(server: Server, password: str = PASSWORD) -> str:
    """A logged-in session cookie."""
    response = attempt(server, password)
    assert response.status_code == 302, response.text
    return response.cookies["session"]


def statuses(server: Server, cookie: str, loads: int = 24) -> list[int]:
    return [get(server, "/admin", cookie).status_code for _ in range(loads)]


def test_a_login_holds_on_every_worker(serve: ServerStarter, fresh_database: str) -> None:
    server = serve(fresh_database)
    cookie = log_in(server)
    assert statuses(server, cookie) == [200] * 24
    with ThreadPoolExecutor(WORKERS) as pool:  # logins at the same time, on every worker
        cookies = list(pool.map(lambda _: log_in(server), range(60)))
    assert [get(server, "/admin", each).status_code for each in cookies] == [200] * 60
    engine = make_engine(fresh_database)
    with engine.connect() as connection:
        keys = connection.execute(select(admin_sessions.c.password_key).distinct()).all()
    engine.dispose()
    assert len(keys) == 1


def test_a_login_outlives_a_restart_but_not_a_new_password(
    serve: ServerStarter, fresh_database: str
) -> None:
    first = serve(fresh_database)
    cookie = log_in(first)
    first.stop()
    same = serve(fresh_database)
    assert statuses(same, cookie, 8) == [200] * 8
    same.stop()
    changed = serve(fresh_database, "another passphrase")
    assert statuses(changed, cookie, 8) == [302] * 8
    assert statuses(changed, log_in(changed, "another passphrase"), 8) == [200] * 8


def test_five_failures_lock_out_every_worker(serve: ServerStarter, fresh_database: str) -> None:
    server = serve(fresh_database)
    assert [attempt(server, "wrong").status_code for _ in range(5)] == [401] * 5
    refused = [attempt(server, PASSWORD) for _ in range(12)]
    assert [response.status_code for response in refused] == [429] * 12
    assert all(0 < int(response.headers["Retry-After"]) <= 900 for response in refused)


def test_two_servers_share_logins_and_the_lockout(serve: ServerStarter, postgres_url: str) -> None:
    key = secrets.token_hex(32)
    first = serve(postgres_url, instance="first", secret_key=key)
    second = serve(postgres_url, instance="second", secret_key=key)
    stranger = serve(postgres_url, instance="stranger", secret_key=secrets.token_hex(32))
    cookie = log_in(first)
    assert statuses(second, cookie, 12) == [200] * 12
    # A server with another secret key cannot verify the cookie: it asks for the login.
    answers = [get(stranger, "/admin", cookie) for _ in range(8)]
    assert [answer.status_code for answer in answers] == [302] * 8
    assert all("/admin/login" in answer.headers["Location"] for answer in answers)
    assert [attempt(first, "wrong").status_code for _ in range(3)] == [401] * 3
    assert [attempt(second, "wrong").status_code for _ in range(2)] == [401] * 2
    for server in (first, second, stranger, first, second):
        assert attempt(server, PASSWORD).status_code == 429
    assert statuses(first, cookie, 4) == [200] * 4  # a login made before still holds
