"""The admin overview's numbers: messages per hour, rules hit, opt-outs, failures, rejects.

Hours are counted in SQL (``strftime`` on SQLite, ``date_trunc`` on PostgreSQL) over the
``created_at`` index, so a week of traffic comes back as at most 336 rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import and_
from sqlalchemy import func
from sqlalchemy import select

from textback.storage.models import INBOUND
from textback.storage.models import OUTBOUND
from textback.storage.models import now
from textback.storage.tables import contacts
from textback.storage.tables import messages
from textback.storage.tables import reject_counts

FAILED_STATUSES = ("failed", "undelivered")
TOP_SOURCES = 10
LATEST = 10


@dataclass(frozen=True)
class HourCount:
    """Messages in and out during one hour (UTC), starting at ``hour``."""

    hour: datetime
    inbound: int
    outbound: int


@dataclass(frozen=True)
class OptOut:
    """A contact who opted out, and when."""

    contact_id: int
    number: str
    our_number: str
    at: datetime | None


@dataclass(frozen=True)
class Failure:
    """A message that could not be delivered."""

    contact_id: int | None
    to_number: str
    status: str
    error_code: str | None
    at: datetime | None


@dataclass(frozen=True)
class Overview:
    """What the overview page shows."""

    generated_at: datetime
    last_day: list[HourCount]
    last_week: list[HourCount]
    top_sources: list[tuple[str, int]]
    opted_out: int
    latest_opt_outs: list[OptOut]
    failed: int
    latest_failures: list[Failure]
    rejects: list[tuple[str, int]]

    @property
    def day_totals(self) -> tuple[int, int]:
        return sum(h.inbound for h in self.last_day), sum(h.outbound for h in self.last_day)

    @property
    def week_totals(self) -> tuple[int, int]:
        return sum(h.inbound for h in self.last_week), sum(h.outbound for h in self.last_week)


def hour_of(engine: Engine, column: Any) -> Any:
    """A SQL expression for the UTC hour a stored time falls in."""
    if engine.dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column))
    return func.strftime("%Y-%m-%d %H:00:00", column)


def parse_hour(value: Any) -> datetime:
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def hourly(engine: Engine, *, hours: int, until: datetime) -> list[HourCount]:
    """Inbound and outbound counts for each of the ``hours`` hours up to ``until``, zeros kept."""
    end = until.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    bucket = hour_of(engine, messages.c.created_at).label("hour")
    query = (
        select(bucket, messages.c.direction, func.count().label("n"))
        .where(messages.c.created_at >= start)
        .group_by(bucket, messages.c.direction)
    )
    counts: dict[tuple[datetime, str], int] = {}
    with engine.connect() as connection:
        for row in connection.execute(query):
            counts[(parse_hour(row.hour), row.direction)] = int(row.n)
    slots = [start + timedelta(hours=index) for index in range(hours)]
    return [
        HourCount(slot, counts.get((slot, INBOUND), 0), counts.get((slot, OUTBOUND), 0))
        for slot in slots
    ]


def overview(engine: Engine, *, at: datetime | None = None) -> Overview:
    """The overview as of ``at`` (now by default)."""
    stamp = at or now()
    week_ago = stamp - timedelta(days=7)
    with engine.connect() as connection:
        sources = [
            (str(row.source or "(none)"), int(row.n))
            for row in connection.execute(
                select(messages.c.source, func.count().label("n"))
                .where(and_(messages.c.direction == INBOUND, messages.c.created_at >= week_ago))
                .group_by(messages.c.source)
                .order_by(func.count().desc(), messages.c.source)
                .limit(TOP_SOURCES)
            )
        ]
        opted_out = connection.execute(
            select(func.count()).select_from(contacts).where(contacts.c.opted_out.is_(True))
        ).scalar_one()
        latest_opt_outs = [
            OptOut(row.id, row.number, row.our_number, row.opted_out_at)
            for row in connection.execute(
                select(contacts)
                .where(contacts.c.opted_out.is_(True))
                .order_by(contacts.c.opted_out_at.desc(), contacts.c.id.desc())
                .limit(LATEST)
            )
        ]
        failed_rows = and_(messages.c.direction == OUTBOUND, messages.c.status.in_(FAILED_STATUSES))
        failed = connection.execute(
            select(func.count()).select_from(messages).where(failed_rows)
        ).scalar_one()
        latest_failures = [
            Failure(row.contact_id, row.to_number, row.status, row.error_code, row.created_at)
            for row in connection.execute(
                select(
                    messages.c.contact_id,
                    messages.c.to_number,
                    messages.c.status,
                    messages.c.error_code,
                    messages.c.created_at,
                )
                .where(failed_rows)
                .order_by(messages.c.id.desc())
                .limit(LATEST)
            )
        ]
        rejects = [
            (str(row.reason), int(row.n or 0))
            for row in connection.execute(
                select(reject_counts.c.reason, func.sum(reject_counts.c.count).label("n"))
                .where(reject_counts.c.hour >= week_ago)
                .group_by(reject_counts.c.reason)
                .order_by(reject_counts.c.reason)
            )
        ]
    return Overview(
        generated_at=stamp,
        last_day=hourly(engine, hours=24, until=stamp),
        last_week=hourly(engine, hours=24 * 7, until=stamp),
        top_sources=sources,
        opted_out=int(opted_out),
        latest_opt_outs=latest_opt_outs,
        failed=int(failed),
        latest_failures=latest_failures,
        rejects=rejects,
    )
