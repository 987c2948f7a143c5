"""Is the database there? Which errors mean it is not, and a cheap question to ask it.

A database that is down, restarting, unreachable or out of connections is not a bug of ours:
the webhook answers 503 (Twilio retries) instead of 500, and ``/readyz`` reports it.
"""

from __future__ import annotations

import sqlite3
import sys

from sqlalchemy import Engine
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeout,
    # the driver's own, for statements run on its cursor (storage/prepared.py), unwrapped
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
)

MAX_REASON = 200


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be used now (down, unreachable, busy)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, _UNAVAILABLE):
        return True
    # psycopg's, looked up only if it is loaded: a SQLite server never imports it
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(
        exc, (psycopg.OperationalError, psycopg.InterfaceError)
    )


def describe(exc: BaseException) -> str:
    """One line saying what went wrong: the driver's message, without SQL or a traceback."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(original).strip().splitlines()
    first = lines[0].strip() if lines else ""
    reason = f"{type(original).__name__}: {first}" if first else type(original).__name__
    return reason[:MAX_REASON]


def database_problem(engine: Engine) -> str | None:
    """Why the database does not answer ``SELECT 1`` right now, or None when it does."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return describe(exc)
    return None
