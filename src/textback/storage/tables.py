"""The tables as SQLAlchemy Core objects, and the dialect's INSERT with ``ON CONFLICT``.

The models (models.py) describe the schema; statements that run per message are written in
Core against these, which costs less than going through the ORM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import cast

from sqlalchemy import Engine
from sqlalchemy import Table

from textback.storage.models import Contact
from textback.storage.models import Message
from textback.storage.models import RejectCount
from textback.storage.models import StatusEvent

messages = cast(Table, Message.__table__)
contacts = cast(Table, Contact.__table__)
status_events = cast(Table, StatusEvent.__table__)
reject_counts = cast(Table, RejectCount.__table__)

Insert = Callable[[Table], Any]


def insert_for(engine: Engine) -> Insert:
    """The INSERT of ``engine``'s dialect, the one with ``on_conflict_do_nothing/update``
    (each dialect imported when its engine asks: a SQLite server never loads PostgreSQL's)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert
