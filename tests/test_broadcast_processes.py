"""A broadcast of 500 contacts sent by two real `textback worker` processes, one of them killed
with -9 twice in the middle and restarted: every contact who did not opt out gets exactly one
API request, the opted-out ones none. The stand-in API counts every request it receives."""

from __future__ import annotations

import collections
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from textback.core.profile import ContactProfile
from textback.storage import outbox as states
from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine
from textback.storage.outbox import outbox as outbox_table
from textback.storage.profiles import save_profiles
from textback.storage.store import Store

from .standin import StandIn
from .standin import standin_api  # noqa: F401
from .test_worker_processes import OURS
from .test_worker_processes import TEXTBACK
from .test_worker_processes import environment
from .test_worker_processes import unfinished
from .test_worker_processes import wait_until
from .test_worker_processes import workers  # noqa: F401

CONTACTS = 500
STALE_AFTER = 2.0


def number(n: int) -> str:
    return f"+1555100{n:04d}"


def test_a_broadcast_reaches_each_contact_once_with_workers_killed(
    standin: StandIn,
    database_url: str,
    tmp_path: Path,
    workers: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    standin.delay = 0.02  # calls in flight when a kill lands
    env = environment(
        standin,
        database_url,
        f"sqlite:///{tmp_path / 'queue.db'}",
        tmp_path,
        # The rate is shared by all workers: 475 sends take about 12 s, so the second kill and
        # the wait for its rows to go stale (STALE_AFTER) still fall well before the end, on a
        # quiet machine too (at 250 a second the steady worker finished first in CI).
        TEXTBACK_SEND_RATE="40",
        TEXTBACK_OUTBOX_STALE_AFTER=str(STALE_AFTER),
    )
    engine = make_engine(database_url)
    ensure_schema(engine)
    store = Store(engine)
    save_profiles(
        engine,
        [
            ContactProfile(number(n), name=f"P{n}", groups=("patients",) if n % 2 else ("all",))
            for n in range(CONTACTS)
        ],
    )
    save_profiles(
        engine,
        [
            ContactProfile(number(n), name=f"P{n}", groups=("patients", "all"))
            for n in range(0, CONTACTS, 10)
        ],
    )
    opted_out = {number(n) for n in range(3, CONTACTS, 20)}
    for who in opted_out:
        store.set_opted_out(OURS, who, True)
    created = subprocess.run(
        [
            *TEXTBACK,
            "broadcast",
            "Hi {contact.name|there}, the clinic is closed tomorrow.",
            "--group",
            "patients",
            "--group",
            "all",
            "--from",
            OURS,
            "--yes",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    expected = CONTACTS - len(opted_out)
    assert f"broadcast 1: {expected} message(s) queued" in created.stdout

    steady = workers(env, "--workers", "2")
    killed = workers(env, "--workers", "2")
    for sends in (expected // 4, expected // 2):

        def reached(count: int = sends) -> bool:
            return len(standin.posts) >= count

        wait_until(reached, f"{sends} sends before a kill")
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        time.sleep(STALE_AFTER + 0.5)  # its rows are stale now: the restart's sweep takes them
        killed = workers(env, "--workers", "2")
    assert len(standin.posts) < expected, "the kills came too late to test anything"
    wait_until(lambda: unfinished(store) == 0, "every copy to be sent")
    assert steady.poll() is None

    requests = collections.Counter(form["To"] for _, form in standin.posts)
    assert not opted_out & set(requests)
    twice = sorted(to for to, count in requests.items() if count > 1)
    assert twice == []
    assert set(requests) == {number(n) for n in range(CONTACTS)} - opted_out
    with engine.connect() as connection:
        finished = collections.Counter(connection.execute(select(outbox_table.c.state)).scalars())
    assert finished == {states.SENT: expected, states.CANCELLED: len(opted_out)}
    engine.dispose()
