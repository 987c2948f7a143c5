"""The message log as the terminal and the browser phone read it: every message in and out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy import select

from textback.storage.tables import messages


def recent_messages(engine: Engine, *, contact: str | None = None, limit: int = 50) -> list[Any]:
    """The latest ``limit`` messages (of one contact number, if given), oldest first."""
    query = select(messages).order_by(messages.c.id.desc()).limit(limit)
    if contact:
        query = query.where((messages.c.from_number == contact) | (messages.c.to_number == contact))
    with engine.connect() as connection:
        rows = list(connection.execute(query))
    rows.reverse()
    return rows
