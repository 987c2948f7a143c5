"""A `limits` storage kept in textback's database, so a rate limit holds across processes.

limits (the library under flask-limiter) counts hits in a storage; its in-memory one is per
process, and every worker of ``textback serve`` would keep its own count. This one keeps the
fixed-window counters in the ``login_failures`` table of the database every worker and server
already shares. Each increment is one upsert (``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING``), atomic on SQLite and PostgreSQL, so parallel attempts never lose a count. No
Flask here.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import cast

from limits.storage import Storage
from sqlalchemy import Engine
from sqlalchemy import Table
from sqlalchemy import case
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from textback.storage.models import LoginFailure
from textback.storage.tables import insert_for

login_failures = cast(Table, LoginFailure.__table__)


class DatabaseStorage(Storage):
    """Fixed-window counters in the ``login_failures`` table, for limits' fixed-window
    strategy (``FixedWindowRateLimiter(DatabaseStorage(engine))``); no moving window."""

    STORAGE_SCHEME = None  # made with an engine, never from a URI

    def __init__(self, engine: Engine, *, wrap_exceptions: bool = False) -> None:
        super().__init__(None, wrap_exceptions=wrap_exceptions)
        self.engine = engine

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` (negative to give back) to ``key``'s count, which starts a new window
        of ``expiry`` seconds when there is none; returns the count (never below 0)."""
        now = datetime.now(UTC)
        table = login_failures
        start = max(amount, 0)
        insert = self._insert().values(
            key=key, count=start, expires_at=now + timedelta(seconds=expiry)
        )
        expired = table.c.expires_at <= now
        added = table.c.count + amount
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((expired, start), (added < 0, 0), else_=added),
                "expires_at": case((expired, insert.excluded.expires_at), else_=table.c.expires_at),
            },
        ).returning(table.c.count)
        with self.engine.begin() as connection:
            count = int(connection.execute(statement).scalar_one())
        if amount > 0 and count == amount:
            self._sweep(now)  # a new window began: the rare moment to drop stale ones
        return count

    def _insert(self) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT (both SQLite and PostgreSQL do)."""
        return insert_for(self.engine)(login_failures)

    def _sweep(self, now: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(login_failures).where(login_failures.c.expires_at <= now))

    def get(self, key: str) -> int:
        """``key``'s count in its current window (0 when it has none)."""
        with self.engine.connect() as connection:
            count = connection.execute(
                select(login_failures.c.count).where(
                    login_failures.c.key == key,
                    login_failures.c.expires_at > datetime.now(UTC),
                )
            ).scalar()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        """When ``key``'s window ends, as a Unix time (now when it has none)."""
        now = datetime.now(UTC)
        with self.engine.connect() as connection:
            expires: datetime | None = connection.execute(
                select(login_failures.c.expires_at).where(login_failures.c.key == key)
            ).scalar()
        return max(expires or now, now).timestamp()

    def check(self) -> bool:
        """Whether the database answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        """Forget every count; returns how many there were."""
        with self.engine.begin() as connection:
            return connection.execute(delete(login_failures)).rowcount

    def clear(self, key: str) -> None:
        """Forget ``key``'s count."""
        with self.engine.begin() as connection:
            connection.execute(delete(login_failures).where(login_failures.c.key == key))
