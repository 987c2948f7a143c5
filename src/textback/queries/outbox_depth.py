"""Gauges read when Prometheus scrapes: messages by delivery status, from the database."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from textback.storage.models import OUTBOUND
from textback.storage.tables import messages

Gauge = tuple[str, str, str, dict[str, float]]


def outbox_gauges(engine: Engine) -> Iterator[Gauge]:
    """Outbound messages by status; nothing (rather than an error page) if the database is down."""
    query = (
        select(messages.c.status, func.count())
        .where(messages.c.direction == OUTBOUND)
        .group_by(messages.c.status)
    )
    try:
        with engine.connect() as connection:
            counts = {str(status or "unknown"): float(n) for status, n in connection.execute(query)}
    except SQLAlchemyError:
        return
    yield ("textback_outbound_messages", "Outbound messages by delivery status.", "status", counts)
