"""Gauges read when Prometheus scrapes: the outbox's rows by state, from the database."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from textback.storage import outbox as states
from textback.storage.models import OutboxEntry

Gauge = tuple[str, str, str, dict[str, float]]

# Every state, so a state with no rows is a 0 on the graph rather than a gap.
STATES = (
    states.QUEUED,
    states.SCHEDULED,
    states.SENDING,
    states.SENT,
    states.DELIVERED,
    states.UNDELIVERED,
    states.FAILED,
    states.CANCELLED,
    states.REVIEW,
)


def outbox_gauges(engine: Engine) -> Iterator[Gauge]:
    """The outbox's depth by state; nothing (rather than an error page) if the database is down."""
    table = OutboxEntry.__table__
    query = select(table.c.state, func.count()).group_by(table.c.state)
    try:
        with engine.connect() as connection:
            found = {str(state): float(n) for state, n in connection.execute(query)}
    except SQLAlchemyError:
        return
    counts = {state: found.get(state, 0.0) for state in STATES} | found
    yield ("textback_outbox", "Outbox messages by state (queued … review).", "state", counts)
