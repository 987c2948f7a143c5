"""The databases textback runs on in the benchmark: a fresh SQLite file, a fresh PostgreSQL db."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy import text
from sqlalchemy.engine import make_url

from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'textback.db'}"


def create_postgres(server_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``server_url``; returns its URL."""
    admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(server_url: str, name: str) -> None:
    admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def prepared(url: str) -> Engine:
    """An engine on ``url`` with textback's schema in place (before the servers start)."""
    engine = make_engine(url)
    ensure_schema(engine)
    return engine


class LockWaits:
    """Samples which of the database's backends wait for a lock, every 20 ms, while running."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.samples = 0
        self.waiting = 0
        self.events: Counter[str] = Counter()  # "extend", "transactionid", "tuple"...
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        query = text(
            "SELECT wait_event, count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock' GROUP BY wait_event"
        )
        with self.engine.connect() as connection:
            while not self._stop.wait(0.02):
                for event, count in connection.execute(query):
                    self.events[str(event)] += int(count)
                    self.waiting += int(count)
                self.samples += 1
                connection.commit()

    @property
    def mean_waiting(self) -> float:
        """Backends waiting for a lock, on average over the samples."""
        return self.waiting / self.samples if self.samples else 0.0
