"""Admin logins kept in the database, so logging out (or changing the password) ends them.

Flask's session cookie only carries a random token; the database keeps its SHA-256 and whether
it is still good. A login lasts at most ``MAX_AGE``. No Flask here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import cast

from sqlalchemy import Engine
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from textback.storage.models import AdminSession

admin_sessions = cast(Table, AdminSession.__table__)

MAX_AGE = timedelta(hours=12)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start(engine: Engine, password_key: str, now: datetime | None = None) -> str:
    """A new login's token, for the session cookie; logins older than MAX_AGE are swept.

    ``password_key`` (``Settings.admin_password_key``) stands for the configured password:
    a login only holds while it is the same.
    """
    stamp = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    with engine.begin() as connection:
        connection.execute(
            delete(admin_sessions).where(admin_sessions.c.created_at < stamp - MAX_AGE)
        )
        connection.execute(
            admin_sessions.insert().values(
                token_hash=_digest(token),
                password_key=password_key,
                created_at=stamp,
                ended_at=None,
            )
        )
    return token


def is_valid(engine: Engine, token: str, password_key: str, now: datetime | None = None) -> bool:
    """Whether ``token`` is a login that has not ended, expired or outlived its password."""
    stamp = now or datetime.now(UTC)
    with engine.connect() as connection:
        row = connection.execute(
            select(admin_sessions.c.password_key, admin_sessions.c.created_at).where(
                and_(
                    admin_sessions.c.token_hash == _digest(token),
                    admin_sessions.c.ended_at.is_(None),
                )
            )
        ).first()
    if row is None:
        return False
    created: datetime = row.created_at
    same_password = hmac.compare_digest(row.password_key, password_key)
    return same_password and stamp - created < MAX_AGE


def end(engine: Engine, token: str, now: datetime | None = None) -> None:
    """Log ``token`` out for good."""
    stamp = now or datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            update(admin_sessions)
            .where(admin_sessions.c.token_hash == _digest(token))
            .values(ended_at=stamp)
        )
