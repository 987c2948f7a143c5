"""Conversations in the database: load a contact's open run, save what a message changed.

A run is a row of ``flow_runs`` (see docs/conversations.md for its columns and statuses); each
new or changed value is also a row of ``flow_answers``. These functions run inside the caller's
transaction, so a reply and the conversation change are committed together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import Connection
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.sql.elements import ColumnElement

from textback.core.conversation import Conversation
from textback.core.flows import REMIND
from textback.core.responder import Decision
from textback.storage import flow_timers
from textback.storage.models import FlowAnswer
from textback.storage.models import FlowRun
from textback.storage.models import clean

flow_runs = cast(Table, FlowRun.__table__)
flow_answers = cast(Table, FlowAnswer.__table__)


# The contact's latest run that has not ended (expired or not: see conversation_of).
OPEN_RUN = (
    select(
        flow_runs.c.id,
        flow_runs.c.flow,
        flow_runs.c.state,
        flow_runs.c["values"],
        flow_runs.c.expires_at,
    )
    .where(
        and_(
            flow_runs.c.contact_id == bindparam("contact_id", type_=flow_runs.c.contact_id.type),
            flow_runs.c.ended_at.is_(None),
        )
    )
    .order_by(flow_runs.c.id.desc())
    .limit(1)
)


def conversation_of(
    connection: Connection, run: Sequence[Any] | None, stamp: datetime
) -> tuple[Conversation | None, int | None]:
    """The open conversation and run id from a row of OPEN_RUN, (None, None) if there is none.

    Expiry is lazy: a run found expired at ``stamp`` is closed as "expired" here. Its reminder
    is cancelled; its expiry message, if it has one, is still sent (flow_timers.fire).
    """
    if run is None:
        return None, None
    run_id, flow, state, values, expires_at = run
    if expires_at is not None and expires_at <= stamp:
        end_run(connection, run_id, "expired", expires_at)
        flow_timers.cancel(connection, [run_id], stamp, "the flow run expired", kinds=(REMIND,))
        return None, None
    return Conversation(state, dict(values or {}), flow), run_id


def end_run(
    connection: Connection,
    run_id: int,
    status: str,
    stamp: datetime,
    values: dict[str, str] | None = None,
) -> None:
    """Close a run with ``status`` (and its final ``values``, if given)."""
    changes: dict[str, Any] = {"status": status, "ended_at": stamp, "updated_at": stamp}
    if values is not None:
        changes["values"] = clean(values)
    connection.execute(update(flow_runs).where(flow_runs.c.id == run_id).values(**changes))


def is_open(stamp: datetime) -> ColumnElement[bool]:
    """A run that is open at ``stamp``: not ended, and not expired."""
    return and_(
        flow_runs.c.ended_at.is_(None),
        or_(flow_runs.c.expires_at.is_(None), flow_runs.c.expires_at > stamp),
    )


def end_open_runs(connection: Connection, contact_id: int, status: str, stamp: datetime) -> bool:
    """Close the contact's open (unexpired) run with ``status``, and cancel its timers;
    whether there was one."""
    ended = (
        connection.execute(
            update(flow_runs)
            .where(and_(flow_runs.c.contact_id == contact_id, is_open(stamp)))
            .values(status=status, ended_at=stamp, updated_at=stamp)
            .returning(flow_runs.c.id)
        )
        .scalars()
        .all()
    )
    flow_timers.cancel(connection, ended, stamp, f"the flow run ended ({status})")
    return bool(ended)


def save_answers(
    connection: Connection,
    run_id: int,
    before: dict[str, str],
    after: dict[str, str],
    stamp: datetime,
) -> None:
    """Each value that is new or changed becomes an answer with its time."""
    rows = [
        {"run_id": run_id, "key": clean(key), "value": clean(str(value)), "answered_at": stamp}
        for key, value in after.items()
        if before.get(key) != value
    ]
    if rows:
        connection.execute(flow_answers.insert(), rows)


def save_conversation(
    connection: Connection,
    *,
    contact_id: int,
    run_id: int | None,
    before: Conversation | None,
    decision: Decision,
    stamp: datetime,
    our_number: str = "",
    number: str = "",
) -> int | None:
    """Store what a message did to the contact's conversation (see responder.Decision); the id
    of the run open after it, if any.

    A run that ends, or whose question changes (``decision.timers`` given), has its waiting
    timers cancelled; the question's new timers are written as messages from ``our_number``
    to ``number`` (flow_timers.py).
    """
    after, ended, ended_values = decision.conversation, decision.ended, decision.ended_values
    expire_after = decision.expire_after
    old_values = before.values if before is not None else {}
    expires_at = stamp + expire_after if expire_after is not None else None
    if run_id is not None:
        if ended is not None:
            if ended_values is not None:
                save_answers(connection, run_id, old_values, ended_values, stamp)
            end_run(connection, run_id, ended, stamp, ended_values)
            flow_timers.cancel(connection, [run_id], stamp, f"the flow run ended ({ended})")
        elif after is None:  # the conversation ended without saying how
            end_run(connection, run_id, "ended", stamp)
            flow_timers.cancel(connection, [run_id], stamp, "the flow run ended (ended)")
        else:
            save_answers(connection, run_id, old_values, after.values, stamp)
            changes: dict[str, Any] = {
                "state": clean(after.state),
                "values": clean(after.values),
                "updated_at": stamp,
            }
            if expires_at is not None:  # a HELP or START mid-flow keeps the old expiry
                changes["expires_at"] = expires_at
            connection.execute(update(flow_runs).where(flow_runs.c.id == run_id).values(**changes))
            if decision.timers is not None:
                flow_timers.cancel(connection, [run_id], stamp, "the contact answered first")
                _schedule(connection, run_id, after, decision, stamp, our_number, number)
            return run_id
    if after is None:
        return None
    new_id = connection.execute(
        flow_runs.insert()
        .values(
            contact_id=contact_id,
            flow=clean(after.flow),
            state=clean(after.state),
            values=clean(after.values),
            status="open",
            started_at=stamp,
            updated_at=stamp,
            expires_at=expires_at,
        )
        .returning(flow_runs.c.id)
    ).scalar_one()
    save_answers(connection, new_id, {}, after.values, stamp)
    _schedule(connection, new_id, after, decision, stamp, our_number, number)
    return int(new_id)


def _schedule(
    connection: Connection,
    run_id: int,
    after: Conversation,
    decision: Decision,
    stamp: datetime,
    our_number: str,
    number: str,
) -> None:
    if decision.timers:
        flow_timers.schedule(
            connection,
            run_id=run_id,
            state=after.state or "",
            sender=our_number,
            to=number,
            timers=decision.timers,
            stamp=stamp,
        )
