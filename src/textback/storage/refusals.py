"""Refused webhooks, counted per hour and reason; nothing of the request itself is kept."""

from __future__ import annotations

from sqlalchemy import Engine

from textback.storage.models import now
from textback.storage.tables import insert_for
from textback.storage.tables import reject_counts


def record_reject(engine: Engine, reason: str) -> None:
    """Count a refused webhook in this hour's bucket."""
    hour = now().replace(minute=0, second=0, microsecond=0)
    statement = insert_for(engine)(reject_counts).values(hour=hour, reason=reason, count=1)
    with engine.begin() as connection:
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["hour", "reason"],
                set_={"count": reject_counts.c.count + 1},
            )
        )
