"""The outage journal: appended on disk before answering, taken whole, never torn or lost."""

from __future__ import annotations

import multiprocessing
from datetime import UTC
from datetime import datetime
from pathlib import Path

from textback.storage.journal import JOURNAL
from textback.storage.journal import Entry
from textback.storage.journal import Journal


def entry(number: int) -> Entry:
    form = (("MessageSid", f"SM{number:032x}"), ("Body", f"héllo {number} 🙂"))
    return Entry("message", form, datetime(2026, 12, 1, 9, tzinfo=UTC), "https://x.example")


def _append_many(folder: str, start: int, count: int) -> None:
    journal = Journal(Path(folder))
    for number in range(start, start + count):
        journal.append(entry(number))


def test_entries_round_trip_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for number in range(3):
        journal.append(entry(number))
    assert journal.waiting() == 3
    (taken,) = journal.take()
    assert [e for e in Journal.entries(taken)] == [entry(0), entry(1), entry(2)]
    assert journal.waiting() == 3  # taken is not done: a crash now loses nothing
    Journal.done(taken)
    assert journal.waiting() == 0 and journal.take() == []


def test_appends_from_several_processes_never_interleave(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_append_many, args=(str(tmp_path), start, 150))
        for start in range(0, 600, 150)
    ]
    taken: list[Path] = []
    for worker in workers:
        worker.start()
    journal = Journal(tmp_path)
    while any(worker.is_alive() for worker in workers):
        taken += journal.take()  # taking while others append must not lose or split a line
    for worker in workers:
        worker.join()
    taken += journal.take()
    seen = [e.form[0][1] for path in dict.fromkeys(taken) for e in Journal.entries(path)]
    assert sorted(seen) == sorted(f"SM{n:032x}" for n in range(600))


def test_a_torn_last_line_is_skipped_and_a_left_over_file_is_taken_first(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(entry(1))
    (left_over,) = journal.take()  # a replay that died before finishing this file
    journal.append(entry(2))
    with (tmp_path / JOURNAL).open("ab") as file:
        file.write(entry(3).line()[:20])  # the machine died in the middle of this write
    assert journal.waiting() == 2
    taken = journal.take()
    assert taken[0] == left_over
    assert [e.form[0][1] for path in taken for e in Journal.entries(path)] == [
        f"SM{1:032x}",
        f"SM{2:032x}",
    ]


def test_the_journal_is_private(tmp_path: Path) -> None:
    Journal(tmp_path).append(entry(1))
    assert (tmp_path / JOURNAL).stat().st_mode & 0o077 == 0


def test_every_file_of_the_journal_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """The journal holds bodies and whole numbers: every file it makes is the owner's only,
    even under a umask that would let others read."""
    import os

    old = os.umask(0)
    try:
        journal = Journal(tmp_path)
        journal.append(entry(1))
        with journal.replaying():
            (taken,) = journal.take()
        journal.reject(entry(2))
        journal.append(entry(3))
    finally:
        os.umask(old)
    made = sorted(path for path in tmp_path.iterdir())
    assert {path.name for path in made} >= {
        JOURNAL,
        taken.name,
        "journal.lock",
        "journal.replay-lock",
        "journal-rejected.jsonl",
    }
    for path in made:
        assert path.stat().st_mode & 0o077 == 0, path.name
