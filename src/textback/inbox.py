"""What the admin view reads: conversations, one thread, a contact's flows, and their search.

Plain queries over an Engine; no Flask. The conversation list orders contacts by their latest
message, found per contact through the ``(contact_id, id)`` index, and pages with a keyset
cursor (the latest message id of the last row shown), so page 50 costs what page 1 costs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import Engine
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from .models import FlowAnswer
from .store import contacts
from .store import flow_runs
from .store import messages
from .store import now

PAGE_SIZE = 50
THREAD_SIZE = 100
RUNS_SHOWN = 10
NUMBER_QUERY = re.compile(r"[\d\s()+.-]+")
flow_answers = cast(Table, FlowAnswer.__table__)


def as_utc(stamp: datetime | None) -> datetime | None:
    """A stored time as UTC (SQLite gives it back without a zone; it was stored as UTC)."""
    if stamp is None:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's own wildcards taken literally (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Search:
    """A search box entry: digits search contact numbers, anything else message text."""

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
    """One contact with one of our numbers, and their latest message."""

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
        matching = select(messages.c.contact_id).where(
            # lower() LIKE: one pass over the messages, and cheaper than ILIKE on PostgreSQL
            func.lower(messages.c.body).like(like_pattern(search.strip().lower()), escape="\\")
        )
        inner = inner.where(contacts.c.id.in_(matching))
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
        )
        .join(messages, messages.c.id == listed.c.last_id)
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
            last_at=as_utc(row.created_at),
            open_flow=flows.get(row.id),
        )
        for row in found[:limit]
    ]
    older = rows[-1].last_id if len(found) > limit else None
    return ConversationPage(rows, older)


def open_run_condition(stamp: datetime) -> Any:
    """The shared contract's open run: not ended, and not expired."""
    return and_(
        flow_runs.c.ended_at.is_(None),
        or_(flow_runs.c.expires_at.is_(None), flow_runs.c.expires_at > stamp),
    )


def open_flows(connection: Any, contact_ids: list[int]) -> dict[int, str]:
    """The open run's name (its flow, or the Python state) per contact."""
    if not contact_ids:
        return {}
    rows = connection.execute(
        select(flow_runs.c.contact_id, flow_runs.c.flow, flow_runs.c.state)
        .where(and_(flow_runs.c.contact_id.in_(contact_ids), open_run_condition(now())))
        .order_by(flow_runs.c.id)
    )
    return {row.contact_id: row.flow or row.state or "(conversation)" for row in rows}


@dataclass(frozen=True)
class ContactInfo:
    """One contact, as the thread page heads it."""

    id: int
    our_number: str
    number: str
    opted_out: bool
    opted_out_at: datetime | None
    first_seen: datetime | None
    last_seen: datetime | None


def contact(engine: Engine, contact_id: int) -> ContactInfo | None:
    """The contact with this id, or None."""
    with engine.connect() as connection:
        row = connection.execute(select(contacts).where(contacts.c.id == contact_id)).first()
    if row is None:
        return None
    return ContactInfo(
        id=row.id,
        our_number=row.our_number,
        number=row.number,
        opted_out=bool(row.opted_out),
        opted_out_at=as_utc(row.opted_out_at),
        first_seen=as_utc(row.first_seen),
        last_seen=as_utc(row.last_seen),
    )


@dataclass(frozen=True)
class ThreadMessage:
    """One bubble: a message in or out, with its pictures, delivery status and answerer."""

    id: int
    direction: str
    body: str
    media: list[tuple[str, str]]
    status: str
    error_code: str | None
    source: str | None
    created_at: datetime | None

    @property
    def inbound(self) -> bool:
        return self.direction == "inbound"


@dataclass(frozen=True)
class Thread:
    """A contact's latest messages, oldest first; ``older`` pages further back."""

    messages: list[ThreadMessage]
    older: int | None


def thread(
    engine: Engine, contact_id: int, *, before: int | None = None, limit: int = THREAD_SIZE
) -> Thread:
    """The contact's messages (the latest ``limit`` before ``before``), oldest first."""
    query = (
        select(messages)
        .where(messages.c.contact_id == contact_id)
        .order_by(messages.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(messages.c.id < before)
    with engine.connect() as connection:
        found = list(connection.execute(query))
    shown = [
        ThreadMessage(
            id=row.id,
            direction=row.direction,
            body=row.body or "",
            media=[
                (str(item.get("url", "")), str(item.get("content_type", "")))
                for item in row.media or []
                if isinstance(item, dict)
            ],
            status=row.status,
            error_code=row.error_code,
            source=row.source,
            created_at=as_utc(row.created_at),
        )
        for row in found[:limit]
    ]
    older = shown[-1].id if len(found) > limit else None
    shown.reverse()
    return Thread(shown, older)


@dataclass(frozen=True)
class FlowRunView:
    """A flow run of the contact, with its saved values and answers."""

    id: int
    flow: str
    state: str | None
    status: str
    is_open: bool
    started_at: datetime | None
    ended_at: datetime | None
    expires_at: datetime | None
    values: dict[str, Any]
    answers: list[tuple[str, str, datetime | None]]


def flow_runs_of(engine: Engine, contact_id: int, *, limit: int = RUNS_SHOWN) -> list[FlowRunView]:
    """The contact's latest runs, newest first, each with its answers in order."""
    stamp = now()
    with engine.connect() as connection:
        runs = list(
            connection.execute(
                select(flow_runs)
                .where(flow_runs.c.contact_id == contact_id)
                .order_by(flow_runs.c.id.desc())
                .limit(limit)
            )
        )
        answers: dict[int, list[tuple[str, str, datetime | None]]] = {}
        if runs:
            for row in connection.execute(
                select(flow_answers)
                .where(flow_answers.c.run_id.in_([run.id for run in runs]))
                .order_by(flow_answers.c.id)
            ):
                answers.setdefault(row.run_id, []).append(
                    (row.key, row.value, as_utc(row.answered_at))
                )
    views = []
    for run in runs:
        expires = as_utc(run.expires_at)
        is_open = run.ended_at is None and (expires is None or expires > stamp)
        views.append(
            FlowRunView(
                id=run.id,
                flow=run.flow,
                state=run.state,
                status="open" if is_open else ("expired" if run.status == "open" else run.status),
                is_open=is_open,
                started_at=as_utc(run.started_at),
                ended_at=as_utc(run.ended_at),
                expires_at=expires,
                values=dict(run._mapping["values"] or {}),
                answers=answers.get(run.id, []),
            )
        )
    return views
