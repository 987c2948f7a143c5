"""SQLite's write lock: one write transaction at a time, across threads and forked workers."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from textback.storage.engine import SQLiteWriteLock
from textback.storage.engine import make_engine
from textback.storage.engine import write_lock


def test_postgres_and_memory_need_no_lock(tmp_path: Path) -> None:
    assert not isinstance(write_lock(make_engine("sqlite://")), SQLiteWriteLock)
    lock = write_lock(make_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    assert isinstance(lock, SQLiteWriteLock)
    assert lock.path == f"{tmp_path / 'x.db'}.write-lock"


def test_threads_take_turns(tmp_path: Path) -> None:
    lock = SQLiteWriteLock(str(tmp_path / "db.write-lock"))
    inside = 0
    most = 0

    def write() -> None:
        nonlocal inside, most
        for _ in range(50):
            with lock:
                inside += 1
                most = max(most, inside)
                time.sleep(0.0005)
                inside -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


def _take_after_a_while(lock: SQLiteWriteLock, result: multiprocessing.SimpleQueue[float]) -> None:
    time.sleep(0.2)
    started = time.monotonic()
    with lock:
        result.put(time.monotonic() - started)


def test_a_forked_worker_waits_for_the_parent(tmp_path: Path) -> None:
    lock = SQLiteWriteLock(str(tmp_path / "db.write-lock"))
    with lock:  # the lock file is opened before the fork: the child must not share it
        pass
    context = multiprocessing.get_context("fork")
    result: multiprocessing.SimpleQueue[float] = context.SimpleQueue()
    child = context.Process(target=_take_after_a_while, args=(lock, result))
    child.start()
    with lock:
        time.sleep(0.6)
    child.join(10)
    assert result.get() >= 0.2
