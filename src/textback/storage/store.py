"""Idempotent writes: claim a MessageSid once, keep the answer, record delivery status.

One webhook is one transaction: the inbound row is inserted first (``ON CONFLICT DO NOTHING``
on the unique MessageSid), so a concurrent duplicate waits on the database's lock and then reads
the answer the first one committed. The bot runs inside that transaction, so its answer, the
opt-out change and the conversation state are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import BindParameter

from textback.core.conversation import Conversation
from textback.core.message import Inbound
from textback.core.responder import Decision
from textback.storage.engine import write_lock
from textback.storage.models import INBOUND
from textback.storage.models import OUTBOUND
from textback.storage.models import Contact
from textback.storage.models import Message
from textback.storage.models import OutboxEntry
from textback.storage.models import RejectCount
from textback.storage.models import StatusEvent
from textback.storage.models import clean
from textback.storage.prepared import Bound
from textback.storage.prepared import Prepared
from textback.storage.runs import OPEN_RUN
from textback.storage.runs import conversation_of
from textback.storage.runs import end_open_runs
from textback.storage.runs import save_conversation

messages = cast(Table, Message.__table__)
contacts = cast(Table, Contact.__table__)
status_events = cast(Table, StatusEvent.__table__)
reject_counts = cast(Table, RejectCount.__table__)
_outbox = cast(Table, OutboxEntry.__table__)
# A status callback that ends an outbox row's journey (the outbox keeps its own state).
_FINAL_STATUS = {"delivered": "delivered", "undelivered": "undelivered", "failed": "failed"}

# Twilio's delivery statuses in lifecycle order: a late "sent" never replaces "delivered".
_STATUS_RANK = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "receiving": 3,
    "received": 4,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
    "canceled": 4,
}


def now() -> datetime:
    return datetime.now(UTC)


def params_json(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form parameters as stored: a string per key, a list for a key that was repeated."""
    stored: dict[str, Any] = {}
    for key, value in pairs:
        if key in stored:
            previous = stored[key]
            stored[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            stored[key] = value
    return cast(dict[str, Any], clean(stored))


@dataclass(frozen=True)
class OptOut:
    """A contact's standing opt-out from one of our numbers (``at`` may be unknown)."""

    our_number: str
    number: str
    at: datetime | None


class ContactState:
    """What is known about the sender when their message is answered."""

    __slots__ = ("contact_id", "conversation", "opted_out", "run_id")

    def __init__(
        self,
        contact_id: int,
        opted_out: bool,
        conversation: Conversation | None,
        run_id: int | None,
    ) -> None:
        self.contact_id = contact_id
        self.opted_out = opted_out
        self.conversation = conversation
        self.run_id = run_id


class Answer:
    """What the caller decided for a message (the responder's Decision) and its TwiML."""

    __slots__ = ("decision", "twiml")

    def __init__(self, decision: Decision, twiml: str) -> None:
        self.decision = decision
        self.twiml = twiml


Decider = Callable[[Connection, ContactState], Answer]


def _param(table: Table, column: str, name: str | None = None) -> BindParameter[Any]:
    return bindparam(name or column, type_=table.c[column].type)


class AnswerStatements:
    """The statements of answering a message, built once per store.

    Building a SQLAlchemy statement and its cache key costs more than SQLite takes to run it;
    built once with bound parameters, each is compiled once and then only executed.
    """

    def __init__(self, insert: Callable[[Table], Any]) -> None:
        stamp = _param(messages, "created_at", "stamp")
        self.claim = (
            insert(messages)
            .values(
                sid=_param(messages, "sid"),
                direction=INBOUND,
                account_sid=_param(messages, "account_sid"),
                from_number=_param(messages, "from_number"),
                to_number=_param(messages, "to_number"),
                body=_param(messages, "body"),
                media=_param(messages, "media"),
                params=_param(messages, "params"),
                status="received",
                created_at=stamp,
                updated_at=stamp,
            )
            .on_conflict_do_nothing(index_elements=["sid"])
            .returning(messages.c.id)
        )
        self.stored_twiml = select(messages.c.response_twiml).where(
            messages.c.sid == _param(messages, "sid")
        )
        self.reply = messages.insert().values(
            sid=None,
            direction=OUTBOUND,
            account_sid=_param(messages, "account_sid"),
            from_number=_param(messages, "from_number"),
            to_number=_param(messages, "to_number"),
            body=_param(messages, "body"),
            media=_param(messages, "media"),
            params={},
            status="queued",
            source=_param(messages, "source"),
            contact_id=_param(messages, "contact_id"),
            reply_to_id=_param(messages, "reply_to_id"),
            created_at=stamp,
            updated_at=stamp,
        )
        self.answered = (
            update(messages)
            .where(messages.c.id == _param(messages, "id", "message_id"))
            .values(
                contact_id=_param(messages, "contact_id"),
                source=_param(messages, "source"),
                response_twiml=_param(messages, "response_twiml"),
            )
        )
        self.opt_out = (
            update(contacts)
            .where(contacts.c.id == _param(contacts, "id", "contact"))
            .values(
                opted_out=_param(contacts, "opted_out"),
                opted_out_at=_param(contacts, "opted_out_at"),
            )
        )
        contact_stamp = _param(contacts, "first_seen", "stamp")
        self.upsert_contact = (
            insert(contacts)
            .values(
                our_number=_param(contacts, "our_number"),
                number=_param(contacts, "number"),
                first_seen=contact_stamp,
                last_seen=contact_stamp,
                opted_out=False,
            )
            .on_conflict_do_update(
                index_elements=["our_number", "number"], set_={"last_seen": contact_stamp}
            )
            .returning(contacts.c.id, contacts.c.opted_out)
        )
        self.open_run = OPEN_RUN


class Store:
    """The database side of answering messages, for one engine."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = now) -> None:
        self.engine = engine
        self.clock = clock  # tests move time by replacing it; conversations expire by it
        self.dialect = engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self._sql = AnswerStatements(self._insert)
        self._prepared = {
            name: Prepared(getattr(self._sql, name), engine.dialect)
            for name in ("claim", "stored_twiml", "reply", "answered", "upsert_contact", "open_run")
        }
        self._write_lock = write_lock(engine)
        self.insert = self._insert  # for the other modules writing this database (outbox.py)
        self.write_lock = self._write_lock

    def answer_inbound(self, msg: Inbound, decide: Decider) -> tuple[str, bool]:
        """Store ``msg`` and the answer ``decide`` gives; returns (TwiML, whether it was new).

        A MessageSid seen before is not answered again: its stored TwiML is returned as it was.
        """
        stamp = self.clock()
        sql = self._prepared
        inbound = {
            "sid": msg.sid,
            "account_sid": clean(msg.account_sid),
            "from_number": clean(msg.from_),
            "to_number": clean(msg.to),
            "body": clean(msg.body),
            "media": [
                {"url": clean(m.url), "content_type": clean(m.content_type)} for m in msg.media
            ],
            "params": params_json(msg.form),
            "stamp": stamp,
        }
        # The write lock (SQLite's one writer) is held for the transaction only: the pool
        # checkout and return, and converting the first statements' parameters (the form as
        # JSON, the timestamps), happen outside it.
        claim = sql["claim"].bind(inbound)
        upsert_contact = sql["upsert_contact"].bind(
            {"our_number": clean(msg.to), "number": clean(msg.from_), "stamp": stamp}
        )
        with self.engine.connect() as connection, self._write_lock, connection.begin():
            claimed = claim.execute(connection)
            if claimed is None:
                twiml = sql["stored_twiml"].execute(connection, {"sid": msg.sid})
                return twiml or "", False
            state = self._contact(connection, upsert_contact, stamp)
            answer = decide(connection, state)
            decision, reply = answer.decision, answer.decision.reply
            if not reply.is_empty:
                sql["reply"].execute(
                    connection,
                    {
                        "account_sid": clean(msg.account_sid),
                        "from_number": clean(msg.to),
                        "to_number": clean(msg.from_),
                        "body": clean(reply.text),
                        "media": [{"url": clean(url)} for url in reply.media],
                        "source": decision.source,
                        "contact_id": state.contact_id,
                        "reply_to_id": claimed,
                        "stamp": stamp,
                    },
                )
            sql["answered"].execute(
                connection,
                {
                    "message_id": claimed,
                    "contact_id": state.contact_id,
                    "source": decision.source,
                    "response_twiml": answer.twiml,
                },
            )
            if decision.opt_out is not None:
                connection.execute(
                    self._sql.opt_out,
                    {
                        "contact": state.contact_id,
                        "opted_out": decision.opt_out,
                        "opted_out_at": stamp if decision.opt_out else None,
                    },
                )
            save_conversation(
                connection,
                contact_id=state.contact_id,
                run_id=state.run_id,
                before=state.conversation,
                decision=decision,
                stamp=stamp,
            )
        return answer.twiml, True

    def _contact(self, connection: Connection, upsert: Bound, stamp: datetime) -> ContactState:
        row = upsert.first_row(connection)
        assert row is not None  # an upsert always returns its row
        contact_id, opted_out = row
        run = self._prepared["open_run"].first_row(connection, {"contact_id": contact_id})
        conversation, run_id = conversation_of(connection, run, stamp)
        return ContactState(contact_id, bool(opted_out), conversation, run_id)

    def end_flow(self, our_number: str, number: str, status: str = "cancelled") -> bool:
        """End the contact's open conversation with ``status``; returns whether there was one."""
        stamp = self.clock()
        with self.engine.begin() as connection:
            contact_id = connection.execute(
                select(contacts.c.id).where(
                    and_(contacts.c.our_number == our_number, contacts.c.number == number)
                )
            ).scalar()
            if contact_id is None:
                return False
            return end_open_runs(connection, contact_id, status, stamp)

    def record_status(self, params: dict[str, Any], reply_to: str | None) -> bool:
        """Keep a status callback once per (MessageSid, status); returns whether it was new.

        The message's status moves forward only (a late ``sent`` never replaces ``delivered``).
        ``reply_to`` is the inbound MessageSid a TwiML reply answered: it names the reply row
        whose own SID Twilio only now tells us.
        """
        sid = str(params.get("MessageSid") or params.get("SmsSid") or "")
        status = str(params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        error_code = str(params.get("ErrorCode") or "") or None
        stamp = now()
        with self.engine.begin() as connection:
            new = connection.execute(
                self._insert(status_events)
                .values(
                    message_sid=sid,
                    status=status,
                    error_code=error_code,
                    params=clean(params),
                    received_at=stamp,
                )
                .on_conflict_do_nothing(index_elements=["message_sid", "status"])
                .returning(status_events.c.id)
            ).scalar()
            if new is None:
                return False
            row = connection.execute(
                select(messages.c.id, messages.c.status).where(messages.c.sid == sid)
            ).first()
            if row is None and reply_to:
                row = connection.execute(
                    select(messages.c.id, messages.c.status)
                    .where(
                        and_(
                            messages.c.sid.is_(None),
                            messages.c.direction == OUTBOUND,
                            messages.c.reply_to_id
                            == select(messages.c.id)
                            .where(messages.c.sid == reply_to)
                            .scalar_subquery(),
                        )
                    )
                    .order_by(messages.c.id)
                    .limit(1)
                ).first()
                if row is not None:
                    connection.execute(
                        update(messages).where(messages.c.id == row.id).values(sid=sid)
                    )
            if row is not None and _STATUS_RANK.get(status, 0) >= _STATUS_RANK.get(row.status, 0):
                connection.execute(
                    update(messages)
                    .where(messages.c.id == row.id)
                    .values(status=status, error_code=error_code, updated_at=stamp)
                )
            if status in _FINAL_STATUS:
                connection.execute(
                    update(_outbox)
                    .where(_outbox.c.sid == sid, _outbox.c.state == "sent")
                    .values(state=_FINAL_STATUS[status], error_code=error_code, updated_at=stamp)
                )
        return True

    def record_reject(self, reason: str) -> None:
        """Count a refused webhook in this hour's bucket; nothing of the request is kept."""
        hour = now().replace(minute=0, second=0, microsecond=0)
        statement = self._insert(reject_counts).values(hour=hour, reason=reason, count=1)
        with self.engine.begin() as connection:
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["hour", "reason"],
                    set_={"count": reject_counts.c.count + 1},
                )
            )

    def set_opted_out(self, our_number: str, number: str, opted_out: bool) -> None:
        """Opt a contact out or back in (admin action, or Twilio error 21610).

        Opting out ends the contact's open conversation as "stopped", as a STOP does.
        """
        stamp = self.clock()
        statement = self._insert(contacts).values(
            our_number=our_number,
            number=number,
            first_seen=stamp,
            last_seen=stamp,
            opted_out=opted_out,
            opted_out_at=stamp if opted_out else None,
        )
        with self.engine.begin() as connection:
            contact_id = connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["our_number", "number"],
                    set_={"opted_out": opted_out, "opted_out_at": stamp if opted_out else None},
                ).returning(contacts.c.id)
            ).scalar_one()
            if opted_out:
                end_open_runs(connection, contact_id, "stopped", stamp)

    def opt_out_of(self, our_number: str | None, number: str) -> OptOut | None:
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
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else OptOut(row.our_number, number, row.opted_out_at)

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
        stamp = now()
        with self.engine.begin() as connection:
            contact_id = connection.execute(
                select(contacts.c.id).where(
                    and_(contacts.c.our_number == from_, contacts.c.number == to)
                )
            ).scalar()
            connection.execute(
                messages.insert().values(
                    sid=sid,
                    direction=OUTBOUND,
                    account_sid=account_sid,
                    from_number=from_,
                    to_number=to,
                    body=clean(body),
                    media=[{"url": url} for url in media],
                    params={},
                    status=status,
                    source=source,
                    contact_id=contact_id,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )

    def recent_messages(self, *, contact: str | None = None, limit: int = 50) -> list[Any]:
        """The latest ``limit`` messages (of one contact number, if given), oldest first."""
        query = select(messages).order_by(messages.c.id.desc()).limit(limit)
        if contact:
            query = query.where(
                (messages.c.from_number == contact) | (messages.c.to_number == contact)
            )
        with self.engine.connect() as connection:
            rows = list(connection.execute(query))
        rows.reverse()
        return rows
