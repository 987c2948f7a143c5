"""Flow timers: a step's reminder and a flow's expiry message, as scheduled outbox rows.

When a flow asks a question, the transaction that stores the question also writes its timers:
an outbox row each (state ``scheduled``, ``send_at`` in the future, key
``flow:<run>:<step>:<kind>:<n>``) and a ``flow_timers`` row tying it to the run. Nothing is
queued: the outbox's sweep queues a scheduled row once it is due (within a minute), so the
webhook needs no queue of its own.

A message that moves the run on (an answer, a retry, leaving, STOP, a new flow) cancels the
run's waiting timers in its own transaction. A worker that takes a due timer row first calls
``fire``, which decides under the contact's row lock, the lock every webhook of that contact
takes first, so a timer and an answer are always one after the other, never interleaved:

- nothing is sent while a person has taken the contact over (storage/takeover.py);
- a reminder is sent only while its run is open, unexpired and still has the timer waiting;
- the expiry message ends the run as ``expired`` with one conditional UPDATE (still open, and
  its ``expires_at`` passed) and is sent only if that UPDATE ended it (or a late message found
  the run expired already, and started no other run). An answer that came first has moved
  ``expires_at`` on and cancelled the timer; an answer that comes after finds no open run and
  is answered as a new message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Connection
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from textback.core.flows import EXPIRE
from textback.core.flows import REMIND
from textback.core.flows import Timer
from textback.storage.models import FlowRun
from textback.storage.models import FlowTimer
from textback.storage.models import OutboxEntry
from textback.storage.models import clean
from textback.storage.tables import contacts

flow_timers = cast(Table, FlowTimer.__table__)
_runs = cast(Table, FlowRun.__table__)
_outbox = cast(Table, OutboxEntry.__table__)

WAITING = "waiting"
FIRED = "fired"
CANCELLED = "cancelled"
# The outbox's own states (storage/outbox.py, which imports the store and so cannot be imported
# from here): a timer is written scheduled, and cancelled while still waiting.
OUTBOX_SCHEDULED = "scheduled"
OUTBOX_WAITING = ("queued", "scheduled")
OUTBOX_CANCELLED = "cancelled"


def schedule(
    connection: Connection,
    *,
    run_id: int,
    state: str,
    sender: str,
    to: str,
    timers: Iterable[Timer],
    stamp: datetime,
) -> list[int]:
    """Write ``timers`` of the question ``state`` asks as scheduled outbox rows; their ids."""
    timers = list(timers)
    if not timers:
        return []
    count = connection.execute(
        select(func.count()).select_from(flow_timers).where(flow_timers.c.run_id == run_id)
    ).scalar_one()
    step = state.rpartition(":")[2]
    ids = []
    for n, timer in enumerate(timers, start=int(count) + 1):
        entry_id = connection.execute(
            _outbox.insert()
            .values(
                key=f"flow:{run_id}:{step}:{timer.kind}:{n}",
                sender=sender,
                to_number=to,
                body=clean(timer.reply.text),
                media=clean(list(timer.reply.media)),
                source=timer.source,
                state=OUTBOX_SCHEDULED,
                send_at=stamp + timer.after,
                attempts=0,
                created_at=stamp,
                updated_at=stamp,
            )
            .returning(_outbox.c.id)
        ).scalar_one()
        connection.execute(
            flow_timers.insert().values(
                outbox_id=entry_id, run_id=run_id, kind=timer.kind, state=WAITING
            )
        )
        ids.append(int(entry_id))
    return ids


def cancel(
    connection: Connection,
    run_ids: Iterable[int],
    stamp: datetime,
    reason: str,
    *,
    kinds: tuple[str, ...] = (REMIND, EXPIRE),
) -> int:
    """Cancel the waiting timers of ``run_ids`` (of ``kinds``); how many were waiting."""
    run_ids = list(run_ids)
    if not run_ids:
        return 0
    ids = list(
        connection.execute(
            select(flow_timers.c.outbox_id).where(
                flow_timers.c.run_id.in_(run_ids),
                flow_timers.c.state == WAITING,
                flow_timers.c.kind.in_(kinds),
            )
        ).scalars()
    )
    if not ids:
        return 0
    connection.execute(
        update(flow_timers).where(flow_timers.c.outbox_id.in_(ids)).values(state=CANCELLED)
    )
    connection.execute(
        update(_outbox)
        .where(_outbox.c.id.in_(ids), _outbox.c.state.in_(OUTBOX_WAITING))
        .values(state=OUTBOX_CANCELLED, reason=reason, updated_at=stamp)
    )
    return len(ids)


def waiting(connection: Connection, run_id: int) -> list[tuple[int, datetime]]:
    """The run's waiting timers: (outbox id, when it is due), in order."""
    rows = connection.execute(
        select(_outbox.c.id, _outbox.c.send_at)
        .join(flow_timers, flow_timers.c.outbox_id == _outbox.c.id)
        .where(flow_timers.c.run_id == run_id, flow_timers.c.state == WAITING)
        .order_by(_outbox.c.id)
    ).all()
    return [(int(entry_id), send_at) for entry_id, send_at in rows]


@dataclass(frozen=True)
class Fired:
    """What ``fire`` found: send the row now, send it ``later`` (not due yet), or not at all
    (``reason`` says why)."""

    send: bool
    reason: str | None = None
    later: datetime | None = None


SEND = Fired(True)


def is_timer(connection: Connection, outbox_id: int) -> bool:
    """Whether outbox row ``outbox_id`` is a flow's timer."""
    found = connection.execute(
        select(flow_timers.c.run_id).where(flow_timers.c.outbox_id == outbox_id)
    ).first()
    return found is not None


def fire(connection: Connection, outbox_id: int, stamp: datetime) -> Fired:
    """Whether the claimed outbox row ``outbox_id`` is to be sent (any row that is not a timer
    is); for a due expiry timer, the run is ended as expired here, in the caller's
    transaction."""
    run_id = connection.execute(
        select(flow_timers.c.run_id).where(flow_timers.c.outbox_id == outbox_id)
    ).scalar()
    if run_id is None:
        return SEND
    contact_id = int(
        connection.execute(select(_runs.c.contact_id).where(_runs.c.id == run_id)).scalar_one()
    )
    # The lock every webhook of this contact takes first: an answer is wholly before or after.
    taken_over_at = connection.execute(
        select(contacts.c.taken_over_at)
        .where(contacts.c.id == contact_id)
        .with_for_update(key_share=True)
    ).scalar()
    kind, state = connection.execute(
        select(flow_timers.c.kind, flow_timers.c.state).where(flow_timers.c.outbox_id == outbox_id)
    ).one()
    if state == FIRED:  # taken before, and being retried
        return SEND
    if state == CANCELLED:
        return Fired(False, "the flow moved on before it was due")
    if taken_over_at is not None:  # a person answers them now; handing back ends the run
        return _cancelled(connection, outbox_id, "a person has taken the contact over")
    run = connection.execute(
        select(_runs.c.status, _runs.c.ended_at, _runs.c.expires_at).where(_runs.c.id == run_id)
    ).one()
    if kind == REMIND:
        if run.ended_at is not None or (run.expires_at is not None and run.expires_at <= stamp):
            return _cancelled(connection, outbox_id, "the flow run ended before it was due")
    else:
        if run.ended_at is None and run.expires_at is not None and run.expires_at > stamp:
            return Fired(False, later=run.expires_at)  # a clock behind: not expired yet
        ended = connection.execute(
            update(_runs)
            .where(
                and_(_runs.c.id == run_id, _runs.c.ended_at.is_(None), _runs.c.expires_at <= stamp)
            )
            .values(status="expired", ended_at=_runs.c.expires_at, updated_at=stamp)
            .returning(_runs.c.id)
        ).first()
        if ended is None and run.status != "expired":
            return _cancelled(connection, outbox_id, "the flow run ended before it expired")
        if ended is None and _newer_run(connection, contact_id, run_id):
            # Closed by a late message that began another conversation: "closed" would confuse.
            return _cancelled(connection, outbox_id, "a newer flow run began")
        cancel(connection, [run_id], stamp, "the flow run expired", kinds=(REMIND,))
    connection.execute(
        update(flow_timers).where(flow_timers.c.outbox_id == outbox_id).values(state=FIRED)
    )
    return SEND


def _newer_run(connection: Connection, contact_id: int, run_id: int) -> bool:
    newer = connection.execute(
        select(_runs.c.id).where(_runs.c.contact_id == contact_id, _runs.c.id > run_id).limit(1)
    ).first()
    return newer is not None


def _cancelled(connection: Connection, outbox_id: int, reason: str) -> Fired:
    connection.execute(
        update(flow_timers).where(flow_timers.c.outbox_id == outbox_id).values(state=CANCELLED)
    )
    return Fired(False, reason)


# --- the first question of a flow started from our side -------------------------------------

START_KEY = re.compile(r"^flow:(\d+):start$")  # outbound/start_flow.py writes it


def start_question_void(connection: Connection, key: str | None, stamp: datetime) -> str | None:
    """For the first question of a flow started from our side (outbox key
    ``flow:<run>:start``): why it is not to be sent any more, else None (also for any other row).

    The question is written with its run but may wait (a worker down, quiet hours until the
    morning) while the run ends: the contact texted another flow's trigger, an operator ended
    it, it expired, or a person took the contact over. Sent then, it would ask for an answer
    that no run takes.
    """
    found = START_KEY.match(key or "")
    if found is None:
        return None
    run = connection.execute(
        select(_runs.c.contact_id, _runs.c.ended_at, _runs.c.expires_at).where(
            _runs.c.id == int(found.group(1))
        )
    ).first()
    if run is None or run.ended_at is not None:
        return "the flow run ended before its first question was sent"
    if run.expires_at is not None and run.expires_at <= stamp:
        return "the flow run expired before its first question was sent"
    taken_over_at = connection.execute(
        select(contacts.c.taken_over_at).where(contacts.c.id == run.contact_id)
    ).scalar()
    if taken_over_at is not None:
        return "a person has taken the contact over"
    return None
