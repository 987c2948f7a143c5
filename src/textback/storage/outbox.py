"""The outbox's rows: adding a message to send, claiming it for one worker, and its states.

Every change of state is one conditional UPDATE, so two workers holding tasks for the same row
(a re-run sweep, a task queued twice) can never both send it: only one claim matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import cast

from sqlalchemy import Connection
from sqlalchemy import Row
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from textback.storage.models import OUTBOUND
from textback.storage.models import OutboxEntry
from textback.storage.models import SendSlot
from textback.storage.models import clean
from textback.storage.store import Store
from textback.storage.tables import contacts
from textback.storage.tables import messages

outbox = cast(Table, OutboxEntry.__table__)
send_slots = cast(Table, SendSlot.__table__)

QUEUED = "queued"
SCHEDULED = "scheduled"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
CANCELLED = "cancelled"
REVIEW = "review"
WAITING = (QUEUED, SCHEDULED)
# What `textback outbox` lists: everything still to do or needing a person.
OPEN = (QUEUED, SCHEDULED, SENDING, FAILED, REVIEW)
CANCELLABLE = (QUEUED, SCHEDULED, REVIEW, FAILED)


class OutboxRows:
    """The outbox table of one store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def now(self) -> datetime:
        return self.store.clock()

    def add(
        self,
        connection: Connection,
        *,
        sender: str,
        to: str,
        body: str,
        media: Iterable[str] = (),
        source: str = "api",
        send_at: datetime | None = None,
        key: str | None = None,
    ) -> tuple[int, bool]:
        """Add a message to send in the caller's transaction; returns (id, whether it is new).

        A ``key`` seen before adds nothing and returns the first row's id: a retried webhook or
        a re-run decision never makes a second copy.
        """
        stamp = self.now()
        if send_at is not None:  # SQLite keeps no offset: every stored time is UTC
            send_at = send_at.astimezone(UTC)
        values: dict[str, Any] = {
            "key": key,
            "sender": sender,
            "to_number": to,
            "body": clean(body),
            "media": list(media),
            "source": source,
            "state": SCHEDULED if send_at is not None and send_at > stamp else QUEUED,
            "send_at": send_at,
            "attempts": 0,
            "created_at": stamp,
            "updated_at": stamp,
        }
        statement = self.store.insert(outbox).values(**values)
        if key is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["key"])
        new_id = connection.execute(statement.returning(outbox.c.id)).scalar()
        if new_id is not None:
            return int(new_id), True
        existing = connection.execute(select(outbox.c.id).where(outbox.c.key == key)).scalar_one()
        return int(existing), False

    def get(self, entry_id: int) -> Row[Any] | None:
        with self.engine.connect() as connection:
            return connection.execute(select(outbox).where(outbox.c.id == entry_id)).first()

    def mark_enqueued(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if ids:
            self._update(outbox.c.id.in_(ids), enqueued_at=self.now(), touch=False)

    def claim(self, entry_id: int, stale_after: float) -> Row[Any] | None:
        """Take the row for sending (state ``sending``), or None when it is not ours to send:
        already taken by a live worker, done, cancelled, or not due yet.

        A row left ``sending`` for longer than ``stale_after`` seconds belonged to a worker that
        died; it is taken again (its ``unsure_since`` says whether to look it up first).
        """
        stamp = self.now()
        due = or_(outbox.c.send_at.is_(None), outbox.c.send_at <= stamp)
        takeable = or_(
            and_(outbox.c.state.in_(WAITING), due),
            and_(
                outbox.c.state == SENDING,
                outbox.c.updated_at < stamp - timedelta(seconds=stale_after),
            ),
        )
        with self.store.write_lock, self.engine.begin() as connection:
            return connection.execute(
                update(outbox)
                .where(outbox.c.id == entry_id, takeable)
                .values(state=SENDING, attempts=outbox.c.attempts + 1, updated_at=stamp)
                .returning(*outbox.c)
            ).first()

    def calling(self, entry_id: int) -> datetime:
        """Note that the API call begins: from now its outcome is unknown until recorded."""
        stamp = self.now()
        self._update(outbox.c.id == entry_id, unsure_since=stamp)
        return stamp

    def sent(self, entry: Row[Any], sid: str, status: str, account_sid: str) -> None:
        """Twilio took the message: state ``sent`` with its SID, and a row in the message log
        (where status callbacks find it)."""
        stamp = self.now()
        with self.store.write_lock, self.engine.begin() as connection:
            contact_id = connection.execute(
                select(contacts.c.id).where(
                    contacts.c.our_number == entry.sender, contacts.c.number == entry.to_number
                )
            ).scalar()
            message_id = connection.execute(
                self.store.insert(messages)
                .values(
                    sid=sid,
                    direction=OUTBOUND,
                    account_sid=account_sid,
                    from_number=entry.sender,
                    to_number=entry.to_number,
                    body=entry.body,
                    media=[{"url": url} for url in entry.media],
                    params={},
                    status=status,
                    source=entry.source,
                    contact_id=contact_id,
                    created_at=stamp,
                    updated_at=stamp,
                )
                # Twilio never reuses a SID; a mock API answering one fixed example does.
                .on_conflict_do_nothing(
                    index_elements=["sid"], index_where=messages.c.sid.is_not(None)
                )
                .returning(messages.c.id)
            ).scalar()
            connection.execute(
                update(outbox)
                .where(outbox.c.id == entry.id)
                .values(
                    state=SENT,
                    sid=sid,
                    message_id=message_id,
                    unsure_since=None,
                    error_code=None,
                    reason=None,
                    updated_at=stamp,
                )
            )

    def retry_at(
        self, entry_id: int, when: datetime, reason: str, *, unsure: bool, error_code: str | None
    ) -> None:
        """Back to waiting until ``when``; an ``unsure`` attempt keeps its ``unsure_since``."""
        values: dict[str, Any] = {
            "state": SCHEDULED,
            "send_at": when,
            "reason": reason,
            "error_code": error_code,
        }
        if not unsure:
            values["unsure_since"] = None
        self._update(outbox.c.id == entry_id, **values)

    def finish(
        self,
        entry_id: int,
        state: str,
        reason: str | None,
        error_code: str | None = None,
        *,
        settled: bool = False,
    ) -> None:
        """End the row as failed, cancelled or review, with why; ``settled``: Twilio's answer
        says for sure that nothing was sent (so the row is no longer unsure)."""
        values: dict[str, Any] = {"state": state, "reason": reason, "error_code": error_code}
        if settled:
            values["unsure_since"] = None
        self._update(outbox.c.id == entry_id, **values)

    def postpone(self, entry_id: int, when: datetime, reason: str) -> None:
        """Back to waiting until ``when``, the claim not counted as an attempt (quiet hours)."""
        self._update(
            outbox.c.id == entry_id,
            state=SCHEDULED,
            send_at=when,
            reason=reason,
            attempts=outbox.c.attempts - 1,
        )

    def release(self, entry_id: int) -> bool:
        """A person's decision to send a ``review`` or ``failed`` row (again): queued, no longer
        unsure, attempts from zero. Returns whether the row was in one of those states."""
        return self._update(
            and_(outbox.c.id == entry_id, outbox.c.state.in_((REVIEW, FAILED))),
            state=QUEUED,
            send_at=None,
            unsure_since=None,
            attempts=0,
            error_code=None,
            reason="sent again by a person",
        )

    def cancel(self, entry_id: int, reason: str) -> bool:
        """Cancel a row that is not being sent or already sent; returns whether it was."""
        return self._update(
            and_(outbox.c.id == entry_id, outbox.c.state.in_(CANCELLABLE)),
            state=CANCELLED,
            reason=reason,
        )

    def sids_taken(self, sids: Iterable[str]) -> set[str]:
        """Which of ``sids`` already belong to outbox rows (so a lookup never takes them)."""
        sids = list(sids)
        if not sids:
            return set()
        with self.engine.connect() as connection:
            return set(
                connection.execute(select(outbox.c.sid).where(outbox.c.sid.in_(sids))).scalars()
            )

    def lost(self, stale_after: float, limit: int = 500) -> list[int]:
        """Rows whose task may be lost: waiting and due, not queued for ``stale_after``
        seconds; or left ``sending`` by a worker that died."""
        stamp = self.now()
        stale = stamp - timedelta(seconds=stale_after)
        due = or_(outbox.c.send_at.is_(None), outbox.c.send_at <= stamp)
        not_queued = or_(outbox.c.enqueued_at.is_(None), outbox.c.enqueued_at < stale)
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(outbox.c.id)
                    .where(
                        or_(
                            and_(outbox.c.state.in_(WAITING), due, not_queued),
                            and_(outbox.c.state == SENDING, outbox.c.updated_at < stale),
                        )
                    )
                    .order_by(outbox.c.id)
                    .limit(limit)
                ).scalars()
            )

    def listing(self, states: Iterable[str] = OPEN, limit: int = 100) -> list[Row[Any]]:
        """Rows in ``states``, oldest first."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(outbox)
                    .where(outbox.c.state.in_(list(states)))
                    .order_by(outbox.c.id)
                    .limit(limit)
                )
            )

    def of_contact(self, our_number: str, number: str, limit: int = 10) -> list[Row[Any]]:
        """The latest rows to ``number`` from ``our_number``, newest first."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(outbox)
                    .where(outbox.c.sender == our_number, outbox.c.to_number == number)
                    .order_by(outbox.c.id.desc())
                    .limit(limit)
                )
            )

    def counts(self) -> dict[str, int]:
        """How many rows are in each state."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(outbox.c.state, func.count()).group_by(outbox.c.state)
            ).all()
        return {str(state): int(count) for state, count in rows}

    def reserve_slot(self, sender: str, interval: float, now: float) -> float:
        """Reserve the next send slot for ``sender``; returns when it starts (epoch seconds).

        One UPDATE moves the shared slot on by ``interval``, so every worker and server that
        shares the database takes turns: the n-th caller gets now + n x interval at the latest.
        """
        with self.store.write_lock, self.engine.begin() as connection:
            connection.execute(
                self.store.insert(send_slots)
                .values(sender=sender, next_at=now)
                .on_conflict_do_nothing(index_elements=["sender"])
            )
            start = case((send_slots.c.next_at > now, send_slots.c.next_at), else_=literal(now))
            reserved = connection.execute(
                update(send_slots)
                .where(send_slots.c.sender == sender)
                .values(next_at=start + interval)
                .returning(send_slots.c.next_at)
            ).scalar_one()
        return float(reserved) - interval

    def _update(self, where: Any, *, touch: bool = True, **values: Any) -> bool:
        if touch:
            values["updated_at"] = self.now()
        with self.store.write_lock, self.engine.begin() as connection:
            result = connection.execute(update(outbox).where(where).values(**values))
        return bool(result.rowcount)
