"""A person takes a contact over from the bot, answers them, and hands them back.

While ``contacts.taken_over_at`` is set, the bot only handles the contact's carrier commands
(STOP, START, HELP); everything else is stored with the source "taken over", gets no reply, and
waits for the person (core/responder.decide). The hot path (inbound.py) reads the flag with the
contact row it locks anyway, and sets ``waiting_since`` on the first message that waits. Being
database state, a take-over holds at once on every worker and every server sharing the
database.

- Taking over starts with nothing waiting: what came before was the bot's to answer.
- A reply from the person (the admin's send form) leaves waiting only what came after the last
  message they saw when they wrote it, so a message that arrived while they typed still waits.
- Handing back clears all three columns and ends the open flow run, if any, as "cancelled":
  the conversation with the person has moved on, and the contact's next message should not be
  taken as the answer to a question the flow asked before. The answers saved so far are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_
from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from textback.core.responder import TAKEN_OVER
from textback.storage.models import INBOUND
from textback.storage.profiles import profiles
from textback.storage.runs import end_open_runs
from textback.storage.store import Store
from textback.storage.tables import contacts
from textback.storage.tables import messages

HAND_BACK_STATUS = "cancelled"  # what an open flow run ends with when the bot gets it back


@dataclass(frozen=True)
class TakenOver:
    """A contact a person has taken over; ``waiting_since`` is None when nothing waits."""

    contact_id: int
    our_number: str
    number: str
    opted_out: bool
    at: datetime
    by: str
    waiting_since: datetime | None
    name: str = ""  # from the contact's profile, "" for none


@dataclass(frozen=True)
class HandedBack:
    """What handing a contact back did: whether it was taken over, and whether a flow ended."""

    was_taken_over: bool
    flow_ended: bool


class Takeovers:
    """Taking contacts over and handing them back, on one store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def take_over(self, contact_id: int, *, by: str) -> bool:
        """Pause the bot for the contact; False if they were taken over already (or unknown)."""
        statement = (
            update(contacts)
            .where(and_(contacts.c.id == contact_id, contacts.c.taken_over_at.is_(None)))
            .values(taken_over_at=self.store.clock(), taken_over_by=by[:100], waiting_since=None)
        )
        with self.store.write_lock, self.engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def hand_back(self, contact_id: int) -> HandedBack:
        """Resume the bot for the contact, ending their open flow run (see the module's text)."""
        stamp = self.store.clock()
        statement = (
            update(contacts)
            .where(and_(contacts.c.id == contact_id, contacts.c.taken_over_at.is_not(None)))
            .values(taken_over_at=None, taken_over_by=None, waiting_since=None)
        )
        with self.store.write_lock, self.engine.begin() as connection:
            if connection.execute(statement).rowcount != 1:
                return HandedBack(was_taken_over=False, flow_ended=False)
            ended = end_open_runs(connection, contact_id, HAND_BACK_STATUS, stamp)
        return HandedBack(was_taken_over=True, flow_ended=ended)

    def replied(self, contact_id: int, *, seen: int | None) -> None:
        """The person answered the contact, having seen their messages up to id ``seen`` (all,
        when None): what is still waiting is only what came after."""
        still: Any = None
        if seen is not None:
            # Only messages since this take-over wait: an earlier one's are older than it.
            still = (
                select(func.min(messages.c.created_at))
                .where(
                    messages.c.contact_id == contact_id,
                    messages.c.id > seen,
                    messages.c.direction == INBOUND,
                    messages.c.source == TAKEN_OVER,
                    messages.c.created_at >= contacts.c.taken_over_at,
                )
                .scalar_subquery()
            )
        statement = (
            update(contacts)
            .where(and_(contacts.c.id == contact_id, contacts.c.waiting_since.is_not(None)))
            .values(waiting_since=still)
        )
        with self.store.write_lock, self.engine.begin() as connection:
            connection.execute(statement)

    def of(self, contact_id: int) -> TakenOver | None:
        """The contact's take-over, None while the bot answers them."""
        found = self.listed(contact_ids=[contact_id])
        return found[0] if found else None

    def listed(self, *, contact_ids: list[int] | None = None, limit: int = 200) -> list[TakenOver]:
        """Taken-over contacts, those waiting longest first, then the others by take-over time.

        An opted-out contact cannot be answered, so they are listed last, as not waiting.
        """
        waits = and_(contacts.c.waiting_since.is_not(None), contacts.c.opted_out.is_(False))
        query = (
            select(contacts, profiles.c.name)
            .outerjoin(profiles, profiles.c.number == contacts.c.number)
            .where(contacts.c.taken_over_at.is_not(None))
            .order_by(
                waits.desc(),
                case((waits, contacts.c.waiting_since), else_=contacts.c.taken_over_at),
                contacts.c.id,
            )
            .limit(limit)
        )
        if contact_ids is not None:
            query = query.where(contacts.c.id.in_(contact_ids))
        with self.engine.connect() as connection:
            rows = list(connection.execute(query))
        return [
            TakenOver(
                contact_id=row.id,
                our_number=row.our_number,
                number=row.number,
                opted_out=bool(row.opted_out),
                at=row.taken_over_at,
                by=row.taken_over_by or "",
                waiting_since=None if row.opted_out else row.waiting_since,
                name=row.name or "",
            )
            for row in rows
        ]

    def contacts_of(self, number: str, our_number: str | None = None) -> list[tuple[int, str]]:
        """(contact id, our number) for each of our numbers ``number`` has texted."""
        query = select(contacts.c.id, contacts.c.our_number).where(contacts.c.number == number)
        if our_number is not None:
            query = query.where(contacts.c.our_number == our_number)
        with self.engine.connect() as connection:
            return [(row.id, row.our_number) for row in connection.execute(query)]
