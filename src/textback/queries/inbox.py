"""What the admin view lists: conversations, their search, and which have an open flow.

Plain queries over an Engine; no Flask. The conversation list orders contacts by their latest
message, found per contact through the ``(contact_id, id)`` index, and pages with a keyset
cursor (the latest message id of the last row shown), so page 50 costs what page 1 costs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import and_
from sqlalchemy import func
from sqlalchemy import select

from textback.storage.models import now
from textback.storage.profiles import profiles
from textback.storage.runs import flow_runs
from textback.storage.runs import is_open
from textback.storage.tables import contacts
from textback.storage.tables import messages

PAGE_SIZE = 50
NUMBER_QUERY = re.compile(r"[\d\s()+.-]+")


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's own wildcards taken literally (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Search:
    """A search box entry: digits search contact numbers, anything else message text and
    contacts' names."""

    text: str

    @property
    def digits(self) -> str | None:
        """The number fragment searched for, when the entry looks like a phone number."""
        stripped = self.text.strip()
        if not stripped or not NUMBER_QUERY.fullmatch(stripped):
            return None
        return "".join(ch for ch in stripped if ch.isdigit() or ch == "+") or None


@dataclass(frozen=True)
class ConversationRow:
    """One contact with one of our numbers, their name ("" for none), and their latest message."""

    contact_id: int
    our_number: str
    number: str
    opted_out: bool
    last_id: int
    last_body: str
    last_direction: str
    last_media: int
    last_at: datetime | None
    open_flow: str | None
    name: str = ""


@dataclass(frozen=True)
class ConversationPage:
    """A page of conversations; ``older`` is the cursor of the next page, if any."""

    rows: list[ConversationRow]
    older: int | None


def conversations(
    engine: Engine, *, search: str = "", before: int | None = None, limit: int = PAGE_SIZE
) -> ConversationPage:
    """Conversations, latest activity first; ``before`` continues after a previous page."""
    last_id = (
        select(func.max(messages.c.id))
        .where(messages.c.contact_id == contacts.c.id)
        .correlate(contacts)
        .scalar_subquery()
        .label("last_id")
    )
    inner = select(
        contacts.c.id, contacts.c.our_number, contacts.c.number, contacts.c.opted_out, last_id
    )
    wanted = Search(search)
    if wanted.digits:
        inner = inner.where(contacts.c.number.like(like_pattern(wanted.digits), escape="\\"))
    elif search.strip():
        pattern = like_pattern(search.strip().lower())
        matching = select(messages.c.contact_id).where(
            # lower() LIKE: one pass over the messages, and cheaper than ILIKE on PostgreSQL
            func.lower(messages.c.body).like(pattern, escape="\\")
        )
        named = select(profiles.c.number).where(
            func.lower(profiles.c.name).like(pattern, escape="\\")
        )
        inner = inner.where(contacts.c.id.in_(matching) | contacts.c.number.in_(named))
    ranked = inner.subquery()
    # Page first (a probe of the index per contact), then fetch just those latest messages.
    paged = select(ranked).where(ranked.c.last_id.is_not(None))
    if before is not None:
        paged = paged.where(ranked.c.last_id < before)
    listed = paged.order_by(ranked.c.last_id.desc()).limit(limit + 1).subquery()
    query = (
        select(
            listed,
            messages.c.body,
            messages.c.direction,
            messages.c.media,
            messages.c.created_at,
            profiles.c.name,
        )
        .join(messages, messages.c.id == listed.c.last_id)
        .outerjoin(profiles, profiles.c.number == listed.c.number)
        .order_by(listed.c.last_id.desc())
    )
    with engine.connect() as connection:
        found = list(connection.execute(query))
        flows = open_flows(connection, [row.id for row in found[:limit]])
    rows = [
        ConversationRow(
            contact_id=row.id,
            our_number=row.our_number,
            number=row.number,
            opted_out=bool(row.opted_out),
            last_id=row.last_id,
            last_body=row.body or "",
            last_direction=row.direction,
            last_media=len(row.media or []),
            last_at=row.created_at,
            open_flow=flows.get(row.id),
            name=row.name or "",
        )
        for row in found[:limit]
    ]
    older = rows[-1].last_id if len(found) > limit else None
    return ConversationPage(rows, older)


def open_flows(connection: Any, contact_ids: list[int]) -> dict[int, str]:
    """The open run's name (its flow, or the Python state) per contact."""
    if not contact_ids:
        return {}
    rows = connection.execute(
        select(flow_runs.c.contact_id, flow_runs.c.flow, flow_runs.c.state)
        .where(and_(flow_runs.c.contact_id.in_(contact_ids), is_open(now())))
        .order_by(flow_runs.c.id)
    )
    return {row.contact_id: row.flow or row.state or "(conversation)" for row in rows}
