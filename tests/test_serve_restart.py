"""``textback serve``'s graceful restart (SIGHUP) and stop (SIGTERM), on real processes."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.served import Served
from tests.served import textback_serve

RULES = """
[[rule]]
keyword = "hello"
reply = "{reply}"
"""


def write_rules(folder: Path, reply: str) -> None:
    (folder / "textback.toml").write_text(RULES.format(reply=reply))


@contextmanager
def traffic(served: Served) -> Iterator[Counter[object]]:
    """Signed webhooks one after another, each on a new connection, while the block runs."""
    outcomes: Counter[object] = Counter()
    done = threading.Event()

    def send() -> None:
        while not done.is_set():
            try:
                outcomes[served.post_webhook(timeout=30)[0]] += 1
            except OSError as exc:  # a refused or reset connection: a dropped request
                outcomes[type(exc).__name__] += 1

    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield outcomes
    finally:
        done.set()
        sender.join(60)


def test_sighup_replaces_the_workers_without_dropping_requests(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'serve.db'}"
    write_rules(tmp_path, "Version one")
    with textback_serve(tmp_path, database_url=database, workers=1) as served:
        (old_worker,) = served.worker_pids()
        assert b"Version one" in served.post_webhook()[1]
        held = served.hold_webhook()  # in flight in the old worker
        write_rules(tmp_path, "Version two")
        with traffic(served) as outcomes:
            served.signal(signal.SIGHUP)
            served.wait_for("Stopping worker-1")  # the old worker was told to stop...
            status, body = held.finish()  # ...and still answers the request it had
            assert status == 200
            assert b"Version one" in body
            served.wait_for("Stopped old worker-1")
        assert set(outcomes) == {200}, outcomes
        assert served.alive()
        assert old_worker not in served.worker_pids()
        assert b"Version two" in served.post_webhook()[1]  # new workers read the rules again


def test_sighup_with_a_broken_rules_file_keeps_the_running_workers(tmp_path: Path) -> None:
    write_rules(tmp_path, "Still here")
    with textback_serve(tmp_path, database_url=f"sqlite:///{tmp_path / 'serve.db'}") as served:
        workers = sorted(served.worker_pids())
        (tmp_path / "textback.toml").write_text('[[rule]]\nkeyword = "hello"\nrepyl = "x"\n')
        served.signal(signal.SIGHUP)
        served.wait_for("SIGHUP ignored, the workers keep running: ")
        assert "unknown key 'repyl'" in served.output()
        assert sorted(served.worker_pids()) == workers
        assert b"Still here" in served.post_webhook()[1]


def test_sigterm_finishes_the_requests_in_flight_then_exits(tmp_path: Path) -> None:
    with textback_serve(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'serve.db'}", workers=1
    ) as served:
        held = served.hold_webhook()
        served.signal(signal.SIGTERM)
        served.wait_for("Stopping worker-1")
        status, body = held.finish()
        assert status == 200
        assert b"<Response>" in body
        assert served.process.wait(timeout=30) == 0
        assert "Traceback" not in served.output()
