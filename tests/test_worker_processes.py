"""`textback worker` as real processes: killed with -9 in the middle of 200 sends and restarted,
every message is sent exactly once or held for review, none twice; and the send rate holds
across two worker processes. The stand-in API counts every request it receives."""

from __future__ import annotations

import collections
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func
from sqlalchemy import select

from textback.config import Settings
from textback.outbound.outbox import Outbox
from textback.storage import outbox as states
from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine
from textback.storage.outbox import outbox as outbox_table
from textback.storage.store import Store

from .prism import ACCOUNT
from .standin import StandIn
from .standin import standin_api  # noqa: F401

TEXTBACK = [sys.executable, "-m", "textback.cli"]
OURS = "+15559990000"
REDIS_URL = "redis://127.0.0.1:6379/0"
WAIT_SECONDS = 240


def redis_available() -> bool:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError:
        return False
    return True


@pytest.fixture(params=["sqlite-queue", "redis-queue", "postgresql-queue"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The worker's queue storage: a SQLite file, or Redis or PostgreSQL (huey's own tables)
    under a queue name of this test's own."""
    from textback.outbound.queue import make_queue

    if request.param == "sqlite-queue":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    if request.param == "postgresql-queue":
        database: str = request.getfixturevalue("postgres_database")
        url = f"{database}?name=textback-test-{secrets.token_hex(4)}"
        yield url
        queue = make_queue(url)
        queue.flush()  # this queue's own rows only
        queue.storage.close()
        return
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Redis at {REDIS_URL}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    url = f"{REDIS_URL}?name=textback-test-{secrets.token_hex(4)}"
    yield url
    queue = make_queue(url)
    queue.flush()  # this queue's own keys only
    queue.storage.close()


def environment(
    standin: StandIn, database_url: str, queue_url: str, tmp_path: Path, **extra: str
) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTBACK_", "TWILIO_"))}
    return {
        **keep,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "secret-token",
        "TWILIO_API_BASE_URL": standin.url,
        "DATABASE_URL": database_url,
        "TEXTBACK_QUEUE_URL": queue_url,
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        **extra,
    }


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `textback worker` processes; every one still running is stopped at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        with (tmp_path / f"worker-{len(started)}.log").open("w") as log:
            process = subprocess.Popen(
                [*TEXTBACK, "worker", *args], cwd=tmp_path, env=env, stderr=log, text=True
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fill(env: dict[str, str], count: int, prefix: str) -> Store:
    """``count`` messages in the outbox, queued on the workers' queue."""
    settings = Settings.load(environ=env)
    engine = make_engine(settings.database_url)
    ensure_schema(engine)
    store = Store(engine)
    outbox = Outbox(settings, store)
    for number in range(count):
        outbox.put(sender=OURS, to=f"+1555000{number:04d}", body=f"{prefix} {number}")
    outbox.queue.storage.close()
    return store


def unfinished(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).where(
                    outbox_table.c.state.in_((states.QUEUED, states.SCHEDULED, states.SENDING))
                )
            ).scalar_one()
        )


def wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def test_a_worker_killed_mid_send_sends_nothing_twice(
    standin: StandIn,
    database_url: str,
    queue_url: str,
    tmp_path: Path,
    workers: Callable[..., subprocess.Popen[str]],
) -> None:
    standin.delay = 0.05  # calls in flight when the kill lands
    env = environment(
        standin,
        database_url,
        queue_url,
        tmp_path,
        TEXTBACK_SEND_RATE="200",
        TEXTBACK_OUTBOX_STALE_AFTER="3",
    )
    store = fill(env, 200, "Crash")
    first = workers(env, "--workers", "4")
    wait_until(lambda: len(standin.posts) >= 60, "60 sends before the kill")
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = len(standin.posts)
    assert killed_at < 200, "the kill came too late to test anything"
    time.sleep(3.5)  # the dead worker's rows are stale now: the restart's sweep takes them
    workers(env, "--workers", "4")
    wait_until(lambda: unfinished(store) == 0, "every message to be sent or held")

    created = collections.Counter(item.form["Body"] for item in standin.sent)
    assert max(created.values()) == 1, [body for body, n in created.items() if n > 1]
    with store.engine.connect() as connection:
        rows = list(connection.execute(select(outbox_table)))
    assert {row.state for row in rows} <= {states.SENT, states.REVIEW}
    sids = {item.sid: item.form["Body"] for item in standin.sent}
    sent = [row for row in rows if row.state == states.SENT]
    assert all(sids.get(row.sid) == row.body for row in sent)
    assert len({row.sid for row in sent}) == len(sent)
    reviewed = {row.body for row in rows if row.state == states.REVIEW}
    assert set(created) <= {row.body for row in sent} | reviewed
    assert len(sent) + len(reviewed) == 200
    store.engine.dispose()


def test_the_send_rate_holds_across_two_worker_processes(
    standin: StandIn,
    database_url: str,
    tmp_path: Path,
    workers: Callable[..., subprocess.Popen[str]],
) -> None:
    rate, count = 5, 20
    env = environment(
        standin,
        database_url,
        f"sqlite:///{tmp_path / 'queue.db'}",
        tmp_path,
        TEXTBACK_SEND_RATE=str(rate),
    )
    store = fill(env, count, "Rate")
    logs = [workers(env, "--workers", "2"), workers(env, "--workers", "2")]
    wait_until(lambda: unfinished(store) == 0, "every message to be sent")
    times = sorted(arrived for arrived, _ in standin.posts)
    assert len(times) == count
    # Each send takes the next slot, 1/rate apart, from one row all workers share: 20 sends take
    # at least 19/rate seconds (less a little for request latencies), twice what two
    # unshared limiters would take.
    assert times[-1] - times[0] >= (count - 1) / rate - 0.5
    for process in logs:
        process.send_signal(signal.SIGINT)
        process.wait(15)
    sent_by = [(tmp_path / f"worker-{n}.log").read_text().count(" sent as SM") for n in range(2)]
    assert all(sent_by), f"both workers should have sent: {sent_by}"
    store.engine.dispose()
