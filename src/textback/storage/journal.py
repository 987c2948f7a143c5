"""The outage journal: webhooks kept on local disk while the database cannot be reached.

An entry is appended (one JSON line) and flushed to disk with fsync *before* the webhook is
answered, so a webhook Twilio got a 200 for is never lost, even if the machine then crashes.
Every worker of a server appends to the same file under an exclusive ``flock``, so lines never
interleave. When the database is back, one process takes the whole file at once (renamed under
the same lock, so no append is split between two files) and replays it; the taken file is
deleted only after every entry in it was committed. A replay that dies half-way is picked up
again by the next one: entries are replayed through the exactly-once path (by MessageSid), so
doing one twice changes nothing. One replay at a time: ``replaying()`` holds a second lock for the
whole replay, so the workers of a server never replay the same file at once.

A line torn by a crash in the middle of a write (the answer was then never sent) is skipped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

VERSION = 1
JOURNAL = "journal.jsonl"
TAKEN_SUFFIX = ".replaying"
REJECTED = "journal-rejected.jsonl"  # entries a replay could not store (a bug): kept for a person


@dataclass(frozen=True, slots=True)
class Entry:
    """One webhook that arrived while the database was down."""

    kind: str  # "message" or "status"
    form: tuple[tuple[str, str], ...]
    received_at: datetime
    public_base: str | None = None
    answered: bool = False  # the webhook's own answer already carried the reply (carrier words)
    answer: str = ""  # the TwiML the webhook was answered with (a message)
    reply_to: str | None = None  # the inbound MessageSid a status callback names (?for=)

    def line(self) -> bytes:
        record = {
            "v": VERSION,
            "kind": self.kind,
            "form": [list(pair) for pair in self.form],
            "received_at": self.received_at.isoformat(),
            "public_base": self.public_base,
            "answered": self.answered,
            "answer": self.answer,
            "reply_to": self.reply_to,
        }
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()

    @classmethod
    def parse(cls, line: bytes) -> Entry:
        record = json.loads(line)
        if record.get("v") != VERSION:
            raise ValueError(f"unknown journal entry version {record.get('v')!r}")
        return cls(
            kind=str(record["kind"]),
            form=tuple((str(key), str(value)) for key, value in record["form"]),
            received_at=datetime.fromisoformat(record["received_at"]),
            public_base=record.get("public_base"),
            answered=bool(record.get("answered", False)),
            answer=str(record.get("answer") or ""),
            reply_to=record.get("reply_to"),
        )

    def form_value(self, key: str) -> str:
        """The first value of ``key`` in the form, or ""."""
        return next((value for name, value in self.form if name == key), "")


class Journal:
    """The journal of one instance folder (shared by the workers of one server)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / JOURNAL

    @contextmanager
    def _locked(self) -> Iterator[int]:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "journal.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    @contextmanager
    def replaying(self) -> Iterator[bool]:
        """Whether this caller may replay now: True while it holds the replay lock, False when
        another replay (another worker, another thread) holds it. Never waits."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "journal.replay-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def append(self, entry: Entry) -> None:
        """Write ``entry`` and wait until it is on disk (fsync); only then may we answer."""
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                data = entry.line()
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            finally:
                os.close(fd)

    def waiting(self) -> int:
        """How many entries wait to be replayed (the journal and any file taken but not done)."""
        count = 0
        for path in self._files():
            try:
                with path.open("rb") as lines:
                    count += sum(1 for line in lines if line.endswith(b"\n"))
            except FileNotFoundError:  # replayed and removed by another process meanwhile
                continue
        return count

    def taken_files(self) -> list[Path]:
        """The files a replay took and has not finished (it runs, or it died)."""
        return sorted(self.folder.glob(f"{JOURNAL}.*{TAKEN_SUFFIX}"))

    def _files(self) -> list[Path]:
        taken = self.taken_files()
        return [*taken, self.path] if self.path.exists() else taken

    def take(self) -> list[Path]:
        """Take every waiting entry for replay: files left by an earlier replay first, then the
        journal itself, renamed away under the lock so new appends start a new file."""
        with self._locked():
            taken = self.taken_files()
            if self.path.exists() and self.path.stat().st_size:
                target = self.path.with_name(
                    f"{JOURNAL}.{time.time_ns():020d}.{os.getpid()}{TAKEN_SUFFIX}"
                )
                os.rename(self.path, target)
                taken.append(target)
        return taken

    @staticmethod
    def entries(path: Path) -> Iterator[Entry]:
        """The entries of a taken file, in the order they were written; torn lines skipped."""
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.endswith(b"\n"):
                    log.warning("%s: line %d was cut short by a crash; skipped", path.name, number)
                    continue
                try:
                    yield Entry.parse(line)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("%s: line %d cannot be read (%s); skipped", path.name, number, exc)

    @staticmethod
    def done(path: Path) -> None:
        """Every entry of ``path`` is committed: remove it."""
        path.unlink(missing_ok=True)

    def reject(self, entry: Entry) -> None:
        """Keep ``entry``, which a replay could not store, in the rejected file (on disk)."""
        with self._locked():
            fd = os.open(self.folder / REJECTED, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, entry.line())
                os.fsync(fd)
            finally:
                os.close(fd)

    def rejected(self) -> int:
        """How many entries the replays could not store (see ``reject``)."""
        try:
            with (self.folder / REJECTED).open("rb") as lines:
                return sum(1 for line in lines if line.endswith(b"\n"))
        except FileNotFoundError:
            return 0


def now() -> datetime:
    return datetime.now(UTC)
