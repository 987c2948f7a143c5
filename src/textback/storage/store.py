"""The database side of textback for one engine: one object the service, web and CLI hold.

Each job lives in its own module; Store gives them the engine, the write lock and the clock:

- inbound.py: the hot path, a message claimed once with the reply decided for it;
- delivery.py: messages sent through the REST API and delivery status callbacks;
- contact_actions.py: opting a contact out or in, ending their conversation;
- refusals.py: refused webhooks counted per hour;
- message_log.py: the log of messages in and out;
- tables.py: the tables as Core objects (models.py is the schema itself); they, and ``now``,
  can still be imported from here.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from textback.core.message import Inbound
from textback.storage import contact_actions
from textback.storage import delivery
from textback.storage import message_log
from textback.storage import refusals
from textback.storage.contact_actions import OptOut
from textback.storage.engine import write_lock
from textback.storage.inbound import Arrival
from textback.storage.inbound import Decider
from textback.storage.inbound import InboundRecorder
from textback.storage.models import now
from textback.storage.tables import contacts
from textback.storage.tables import insert_for
from textback.storage.tables import messages
from textback.storage.tables import reject_counts
from textback.storage.tables import status_events

__all__ = ["OptOut", "Store", "contacts", "messages", "now", "reject_counts", "status_events"]


class Store:
    """The database side of answering messages, for one engine."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = now) -> None:
        self.engine = engine
        self.clock = clock  # tests move time by replacing it; conversations expire by it
        self.dialect = engine.dialect.name
        # The dialect's INSERT … ON CONFLICT and SQLite's one-writer lock, for every module
        # that writes this database (the outbox too).
        self.insert = insert_for(engine)
        self.write_lock = write_lock(engine)
        self._inbound = InboundRecorder(engine, self.insert, self.write_lock)

    def record_inbound(
        self, msg: Inbound, decide: Decider, *, with_profile: bool = False
    ) -> tuple[str, bool]:
        """Store ``msg`` and the reply ``decide`` gives; returns (TwiML, whether it was new).

        A MessageSid seen before is not decided again: its stored TwiML is returned as it was.
        ``with_profile``: ``decide`` gets the sender's profile too (see inbound.py).
        """
        return self._inbound.record(msg, decide, self.clock(), with_profile=with_profile)

    def record_inbound_many(
        self, messages: Sequence[tuple[Inbound, Decider]], *, with_profile: bool = False
    ) -> list[tuple[str, bool] | Exception]:
        """Several messages, each as ``record_inbound`` would store it, in one transaction
        (a group commit, see inbound.py); for each, its result or the exception that kept it
        from being stored."""
        arrivals = [Arrival(msg, decide, self.clock()) for msg, decide in messages]
        return self._inbound.record_many(arrivals, with_profile=with_profile)

    def end_flow(self, our_number: str, number: str, status: str = "cancelled") -> bool:
        """End the contact's open conversation with ``status``; returns whether there was one."""
        return contact_actions.end_flow(self.engine, our_number, number, status, self.clock())

    def set_opted_out(self, our_number: str, number: str, opted_out: bool) -> None:
        """Opt a contact out or back in (admin action, or Twilio error 21610).

        Opting out ends the contact's open conversation as "stopped", as a STOP does.
        """
        contact_actions.set_opted_out(self.engine, our_number, number, opted_out, self.clock())

    def opt_out_of(self, our_number: str | None, number: str) -> OptOut | None:
        """The opt-out that forbids messaging ``number`` from ``our_number`` (any of ours when
        None); None while they may be messaged. See contact_actions.opt_out_of."""
        return contact_actions.opt_out_of(self.engine, our_number, number)

    def record_status(self, params: dict[str, Any], reply_to: str | None) -> bool:
        """Keep a status callback once per (MessageSid, status); see delivery.record_status."""
        return delivery.record_status(self.engine, params, reply_to, now())

    def record_reject(self, reason: str) -> None:
        """Count a refused webhook in this hour's bucket; nothing of the request is kept."""
        refusals.record_reject(self.engine, reason)

    def record_outbound(
        self,
        *,
        sid: str | None,
        from_: str,
        to: str,
        body: str,
        media: Iterable[str],
        status: str,
        source: str,
        account_sid: str = "",
    ) -> None:
        """Keep a message sent through the REST API."""
        delivery.record_outbound(
            self.engine,
            sid=sid,
            from_=from_,
            to=to,
            body=body,
            media=media,
            status=status,
            source=source,
            account_sid=account_sid,
            stamp=now(),
        )

    def recent_messages(self, *, contact: str | None = None, limit: int = 50) -> list[Any]:
        """The latest ``limit`` messages (of one contact number, if given), oldest first."""
        return message_log.recent_messages(self.engine, contact=contact, limit=limit)
