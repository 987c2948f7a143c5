"""Broadcasts in the database: the broadcast row, each recipient's outbox row, and the counts.

A recipient's copy is an outbox row keyed ``broadcast:{id}:{number}``, so writing it again (a
creation interrupted and run again, in batches) adds nothing: the outbox's key is unique.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import Row
from sqlalchemy import Table
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from textback.storage import outbox as states
from textback.storage.models import Broadcast
from textback.storage.models import BroadcastMessage
from textback.storage.outbox import OutboxRows
from textback.storage.outbox import outbox
from textback.storage.store import Store
from textback.storage.tables import contacts

broadcasts = cast(Table, Broadcast.__table__)
broadcast_messages = cast(Table, BroadcastMessage.__table__)

CREATING = "creating"
CREATED = "queued"
SOURCE = "broadcast"  # the outbox rows' source: quiet hours hold these


@dataclass(frozen=True, slots=True)
class Copy:
    """One recipient's message: to whom, the text for them, when, or why it is skipped."""

    to: str
    body: str
    send_at: datetime | None = None
    skip: str | None = None
    note: str | None = None  # the row's reason while it waits (quiet hours)


@dataclass
class Tally:
    """A broadcast's copies by state; ``skipped`` by reason (``opted out``, ...)."""

    queued: int = 0
    sending: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    review: int = 0
    held: int = 0  # of the queued ones: waiting for quiet hours to end
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return (
            self.queued
            + self.sending
            + self.sent
            + self.delivered
            + self.failed
            + self.review
            + sum(self.skipped.values())
        )

    @property
    def done(self) -> int:
        """Copies that reached an end (sent counts: its delivery is Twilio's part)."""
        return self.total - self.queued - self.sending

    def skipped_text(self) -> str:
        return ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))


def skip_reason(reason: str | None) -> str:
    """Why a copy was skipped, without its details: ``opted out at 2026-…`` is ``opted out``."""
    if not reason:
        return "cancelled"
    return "opted out" if reason.startswith("opted out") else reason


def key_of(broadcast_id: int, number: str) -> str:
    """The outbox key of one recipient's copy."""
    return f"broadcast:{broadcast_id}:{number}"


class BroadcastRows:
    """The broadcasts of one store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine
        self.outbox = OutboxRows(store)

    def begin(
        self,
        *,
        text: str,
        groups: Sequence[str],
        sender: str,
        send_at: datetime | None,
        source: str,
        key: str | None,
    ) -> tuple[Row[Any], bool]:
        """The broadcast row, new (state ``creating``) or the one ``key`` made before."""
        stamp = self.store.clock()
        values = {
            "key": key,
            "text": text,
            "groups": list(groups),
            "sender": sender,
            "send_at": send_at.astimezone(UTC) if send_at is not None else None,
            "source": source,
            "state": CREATING,
            "recipients": 0,
            "created_at": stamp,
            "updated_at": stamp,
        }
        statement = self.store.insert(broadcasts).values(**values)
        if key is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["key"])
        with self.store.write_lock, self.engine.begin() as connection:
            new_id = connection.execute(statement.returning(broadcasts.c.id)).scalar()
            found = broadcasts.c.id == new_id if new_id is not None else broadcasts.c.key == key
            row = connection.execute(select(broadcasts).where(found)).one()
        return row, new_id is not None

    def opted_out(self, sender: str, numbers: Iterable[str], *, any_number: bool) -> set[str]:
        """Which of ``numbers`` opted out of ``sender`` (of any of our numbers: ``any_number``,
        for a Messaging Service, which may send from any of them)."""
        numbers = list(numbers)
        if not numbers:
            return set()
        query = select(contacts.c.number).where(
            contacts.c.number.in_(numbers), contacts.c.opted_out.is_(True)
        )
        if not any_number:
            query = query.where(contacts.c.our_number == sender)
        with self.engine.connect() as connection:
            return set(connection.execute(query).scalars())

    def add_copies(self, broadcast: Row[Any], copies: Iterable[Copy]) -> list[tuple[int, Any]]:
        """Write the copies in one transaction; returns (outbox id, send_at) of the new ones
        to queue. A copy written before adds nothing; a skipped one is written cancelled, with
        its reason, so the counts say who was left out and why."""
        queue: list[tuple[int, Any]] = []
        with self.store.write_lock, self.engine.begin() as connection:
            for copy in copies:
                entry_id, new = self.outbox.add(
                    connection,
                    sender=broadcast.sender,
                    to=copy.to,
                    body=copy.body,
                    source=SOURCE,
                    send_at=copy.send_at,
                    key=key_of(broadcast.id, copy.to),
                )
                if not new:
                    continue
                connection.execute(
                    broadcast_messages.insert().values(
                        broadcast_id=broadcast.id, outbox_id=entry_id
                    )
                )
                if copy.skip is not None:
                    connection.execute(
                        update(outbox)
                        .where(outbox.c.id == entry_id)
                        .values(state=states.CANCELLED, reason=copy.skip)
                    )
                else:
                    if copy.note is not None:
                        connection.execute(
                            update(outbox).where(outbox.c.id == entry_id).values(reason=copy.note)
                        )
                    queue.append((entry_id, copy.send_at))
        return queue

    def unqueued(self, broadcast_id: int) -> list[tuple[int, Any]]:
        """Copies written but never queued (a creation interrupted between the two)."""
        with self.engine.connect() as connection:
            return [
                (row.id, row.send_at)
                for row in connection.execute(
                    select(outbox.c.id, outbox.c.send_at)
                    .join(broadcast_messages, broadcast_messages.c.outbox_id == outbox.c.id)
                    .where(
                        broadcast_messages.c.broadcast_id == broadcast_id,
                        outbox.c.state.in_(states.WAITING),
                        outbox.c.enqueued_at.is_(None),
                    )
                )
            ]

    def created(self, broadcast_id: int) -> int:
        """Every copy is written: state ``queued``; returns how many recipients it has."""
        with self.store.write_lock, self.engine.begin() as connection:
            count = connection.execute(
                select(func.count()).where(broadcast_messages.c.broadcast_id == broadcast_id)
            ).scalar_one()
            connection.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id)
                .values(state=CREATED, recipients=count, updated_at=self.store.clock())
            )
        return int(count)

    def get(self, broadcast_id: int) -> Row[Any] | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(broadcasts).where(broadcasts.c.id == broadcast_id)
            ).first()

    def listing(self, limit: int = 50) -> list[Row[Any]]:
        """The latest broadcasts, newest first."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(select(broadcasts).order_by(broadcasts.c.id.desc()).limit(limit))
            )

    def tallies(self, broadcast_ids: Iterable[int]) -> dict[int, Tally]:
        """Each broadcast's copies counted by state (and skipped ones by reason)."""
        ids = list(broadcast_ids)
        found = {broadcast_id: Tally() for broadcast_id in ids}
        if not ids:
            return found
        query = (
            select(
                broadcast_messages.c.broadcast_id,
                outbox.c.state,
                func.coalesce(outbox.c.reason, ""),
                func.count(),
            )
            .join(outbox, outbox.c.id == broadcast_messages.c.outbox_id)
            .where(broadcast_messages.c.broadcast_id.in_(ids))
            .group_by(broadcast_messages.c.broadcast_id, outbox.c.state, outbox.c.reason)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        for broadcast_id, state, reason, count in rows:
            tally = found[broadcast_id]
            if state in states.WAITING:
                tally.queued += count
                if reason.startswith("quiet hours"):
                    tally.held += count
            elif state == states.SENDING:
                tally.sending += count
            elif state == states.SENT:
                tally.sent += count
            elif state == states.DELIVERED:
                tally.delivered += count
            elif state in (states.FAILED, states.UNDELIVERED):
                tally.failed += count
            elif state == states.REVIEW:
                tally.review += count
            else:
                why = skip_reason(reason)
                tally.skipped[why] = tally.skipped.get(why, 0) + count
        return found

    def tally(self, broadcast_id: int) -> Tally:
        return self.tallies([broadcast_id])[broadcast_id]


def group_sizes(store: Store) -> dict[str, int]:
    """Every group's name and how many contacts are in it, by name."""
    from textback.storage.profiles import groups
    from textback.storage.profiles import profile_groups

    with store.engine.connect() as connection:
        rows = connection.execute(
            select(groups.c.name, func.count(profile_groups.c.profile_id))
            .outerjoin(profile_groups, profile_groups.c.group_id == groups.c.id)
            .group_by(groups.c.name)
            .order_by(groups.c.name)
        ).all()
    return {str(name): int(count) for name, count in rows}


def our_numbers(store: Store) -> list[str]:
    """The numbers of ours that contacts have texted (the senders a broadcast may use)."""
    with store.engine.connect() as connection:
        return list(
            connection.execute(
                select(contacts.c.our_number).distinct().order_by(contacts.c.our_number)
            ).scalars()
        )
