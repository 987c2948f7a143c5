"""What is done to a contact outside a message: opting out or back in, ending a conversation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import and_
from sqlalchemy import select

from textback.storage.runs import end_open_runs
from textback.storage.tables import contacts
from textback.storage.tables import insert_for


def contact_id_of(connection: Connection, our_number: str, number: str) -> int | None:
    """The id of the contact ``number`` texting ``our_number``, None if they never have."""
    found = connection.execute(
        select(contacts.c.id).where(
            and_(contacts.c.our_number == our_number, contacts.c.number == number)
        )
    ).scalar()
    return None if found is None else int(found)


def end_flow(engine: Engine, our_number: str, number: str, status: str, stamp: datetime) -> bool:
    """End the contact's open conversation with ``status``; returns whether there was one."""
    with engine.begin() as connection:
        contact_id = contact_id_of(connection, our_number, number)
        if contact_id is None:
            return False
        return end_open_runs(connection, contact_id, status, stamp)


def set_opted_out(
    engine: Engine, our_number: str, number: str, opted_out: bool, stamp: datetime
) -> None:
    """Opt a contact out or back in; opting out ends their open conversation as "stopped"."""
    changes = {"opted_out": opted_out, "opted_out_at": stamp if opted_out else None}
    statement = insert_for(engine)(contacts).values(
        our_number=our_number, number=number, first_seen=stamp, **changes
    )
    with engine.begin() as connection:
        contact_id = connection.execute(
            statement.on_conflict_do_update(
                index_elements=["our_number", "number"], set_=changes
            ).returning(contacts.c.id)
        ).scalar_one()
        if opted_out:
            end_open_runs(connection, contact_id, "stopped", stamp)


@dataclass(frozen=True)
class OptOut:
    """A contact's standing opt-out from one of our numbers (``at`` may be unknown)."""

    our_number: str
    number: str
    at: datetime | None


def opt_out_of(engine: Engine, our_number: str | None, number: str) -> OptOut | None:
    """The opt-out that forbids messaging ``number`` from ``our_number`` (from any of our
    numbers when None), the latest if several; None while they may be messaged."""
    query = (
        select(contacts.c.our_number, contacts.c.opted_out_at)
        .where(contacts.c.number == number, contacts.c.opted_out.is_(True))
        .order_by(contacts.c.opted_out_at.desc())
        .limit(1)
    )
    if our_number is not None:
        query = query.where(contacts.c.our_number == our_number)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return None if row is None else OptOut(row.our_number, number, row.opted_out_at)
