"""One contact as the admin view shows them: who they are, their messages, their flow runs.

Plain queries over an Engine; no Flask. Threads page back by message id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import select

from textback.storage.models import INBOUND
from textback.storage.models import now
from textback.storage.runs import flow_answers
from textback.storage.runs import flow_runs
from textback.storage.tables import contacts
from textback.storage.tables import messages

THREAD_SIZE = 100
RUNS_SHOWN = 10


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
    """The contact with this id, or None; last seen is when their latest message came."""
    last_seen = (
        select(messages.c.created_at)
        .where(messages.c.contact_id == contacts.c.id, messages.c.direction == INBOUND)
        .order_by(messages.c.contact_id.desc(), messages.c.id.desc())
        .limit(1)
        .correlate(contacts)
        .scalar_subquery()
        .label("last_seen")
    )
    with engine.connect() as connection:
        row = connection.execute(
            select(contacts, last_seen).where(contacts.c.id == contact_id)
        ).first()
    if row is None:
        return None
    return ContactInfo(
        id=row.id,
        our_number=row.our_number,
        number=row.number,
        opted_out=bool(row.opted_out),
        opted_out_at=row.opted_out_at,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
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
            created_at=row.created_at,
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
                answers.setdefault(row.run_id, []).append((row.key, row.value, row.answered_at))
    views = []
    for run in runs:
        expires = run.expires_at
        is_open = run.ended_at is None and (expires is None or expires > stamp)
        views.append(
            FlowRunView(
                id=run.id,
                flow=run.flow,
                state=run.state,
                status="open" if is_open else ("expired" if run.status == "open" else run.status),
                is_open=is_open,
                started_at=run.started_at,
                ended_at=run.ended_at,
                expires_at=expires,
                values=dict(run._mapping["values"] or {}),
                answers=answers.get(run.id, []),
            )
        )
    return views
