"""The task queue the outbox's workers read: huey, on the storage TEXTBACK_QUEUE_URL names.

- ``sqlite:///path/queue.db`` (the default, ``instance/queue.db``): nothing to install; one
  server's web process, CLI and ``textback worker`` share the file.
- ``redis://host:6379/0``: several servers share one queue.
- ``postgresql://…``: huey's own PostgreSQL storage (psycopg 3, tables ``textback_queue_*``).

A ``?name=…`` in the URL names the queue (default ``textback``): two installations sharing one
Redis keep apart by name. The queue only says *when to look*: what to send, and whether it was
sent, is in textback's database, so a lost task is found again by the outbox's sweep.
"""

from __future__ import annotations

import functools
import importlib
import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from huey import Huey
from huey import PostgresHuey
from huey import RedisHuey
from huey import SqliteHuey
from huey.consumer import Consumer
from huey.storage import SqliteStorage

from textback.errors import ConfigError

DEFAULT_NAME = "textback"
# huey's consumer polls an empty queue less and less often, by default up to every 10 s: a
# reply queued by the admin or a slow handler, or a broadcast come due, would wait that long.
# A poll of a SQLite or PostgreSQL queue is one small query; on Redis the poll blocks anyway.
POLL_AT_LEAST_EVERY = 1.0


def make_queue(url: str) -> Huey:
    """A huey instance on the storage ``url`` names; ConfigError for anything else."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    name = dict(query).get("name") or DEFAULT_NAME
    rest = urlencode([(key, value) for key, value in query if key != "name"])
    plain = urlunsplit(parts._replace(query=rest))
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        path = parts.path[1:]  # as SQLAlchemy reads it: sqlite:///relative, sqlite:////absolute
        if not path:
            raise ConfigError(f"TEXTBACK_QUEUE_URL={url!r}: give a file, like sqlite:///queue.db")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name=name, filename=path, results=False, storage_class=QueueFile)
    if scheme in ("redis", "rediss", "unix"):
        _client_installed("redis", scheme, extra="redis")
        return RedisHuey(name=name, url=plain, results=False)
    if scheme in ("postgresql", "postgres"):
        _client_installed("psycopg", scheme, extra="postgres")
        dsn = urlunsplit(parts._replace(scheme="postgresql", query=rest))
        return PostgresHuey(name=name, dsn=dsn, table_prefix="textback_queue", results=False)
    raise ConfigError(
        f"TEXTBACK_QUEUE_URL={url!r}: use sqlite:///path/queue.db, redis://host:6379/0 "
        "or postgresql://user@host/db"
    )


def _client_installed(module: str, scheme: str, *, extra: str) -> None:
    """ConfigError, in one line, when the storage's client library is missing (huey would
    raise its own error, with a traceback, at the first task)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"TEXTBACK_QUEUE_URL={scheme}://…: a queue there needs the {module} package: "
            f"pip install 'textback[{extra}]'"
        ) from exc


class QueueFile(SqliteStorage):  # type: ignore[misc]
    """huey's SQLite storage with ``synchronous=NORMAL``, as textback's own SQLite database.

    huey leaves SQLite's default (FULL), an fsync of the WAL at every task queued: on the
    webhook's path (a slow handler's job) that fsync is paid per message, under huey's one
    connection lock. The queue only says when to look (a task lost by a power cut is found
    again by the sweeps), and WAL with NORMAL is never corrupted by a crash.
    """

    def _create_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_connection()
        connection.execute("pragma synchronous=NORMAL")
        return connection


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """huey's consumer run beside another server in one process (``textback run``): its
    threads only, so the host keeps its own Ctrl-C and signal handling."""

    def _set_signal_handlers(self) -> None:
        """The host process handles signals."""


@functools.lru_cache(maxsize=8)
def _probe(url: str) -> Huey:
    return make_queue(url)


def queue_report(url: str) -> tuple[str | None, str]:
    """For ``/readyz``: (a problem, or None; a line naming the storage and its backlog)."""
    scheme = urlsplit(url).scheme.split("+", 1)[0] or "sqlite"
    try:
        waiting = _probe(url).pending_count()
    except Exception as exc:  # any storage's error: the driver's first line is the reason
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return reason, f"queue ({scheme}): does not answer: {reason}"
    return None, f"queue ({scheme}): ok, {waiting} task(s) waiting"
