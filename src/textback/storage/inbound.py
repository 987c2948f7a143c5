"""The inbound hot path: claim a MessageSid once, and keep the reply decided for it.

A message is recorded inside one transaction, alone (``record``) or with the others that came
in at the same moment (``record_many``: a group commit, which the answer loop uses). The
sender's contact row is read first and locked (PostgreSQL ``FOR NO KEY UPDATE``; SQLite has one
writer at a time anyway), so two messages of one contact are answered one after the other, each
seeing the conversation the other left. The inbound row is then inserted with ``ON CONFLICT DO
NOTHING`` on its unique MessageSid: a duplicate inserts nothing and gets the TwiML the first one
stored, byte for byte. The bot decides inside that transaction, so the reply, the opt-out change
and the conversation state are committed together with the claim, or not at all. A new sender's
contact row is added before the claim, and removed again if the claim finds the SID taken.

A decision deferred to a slow handler also adds its job (slow_jobs.py) in the same transaction:
the message and the work owed to it are committed together, or not at all.

Per message this writes the inbound row and the reply row (and their entries in the sid,
contact and time indexes; a reply has no SID yet, so no sid entry). The contact row is only
written for a new contact, an opt-out change, or the first message of a taken-over contact
that waits for a person (see storage/takeover.py): when a contact was last seen is the time of
their latest message, found through the contact index. Whether a person has taken the contact
over is read with the contact row itself, in the same statement.
The sender's profile (name, fields, groups) is read, with one more statement, only when
the caller asks for it: when the rules or handlers name the contact; what a flow's answer
saves to it is written in the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.sql.elements import BindParameter

from textback.core.conversation import Conversation
from textback.core.message import Inbound
from textback.core.profile import ContactProfile
from textback.core.responder import Decision
from textback.storage.health import is_unavailable
from textback.storage.models import INBOUND
from textback.storage.models import OUTBOUND
from textback.storage.models import SlowJob
from textback.storage.models import clean
from textback.storage.prepared import Prepared
from textback.storage.profiles import profile_from_row
from textback.storage.profiles import profile_of_number
from textback.storage.profiles import save_changes
from textback.storage.runs import OPEN_RUN
from textback.storage.runs import conversation_of
from textback.storage.runs import save_conversation
from textback.storage.tables import Insert
from textback.storage.tables import contacts
from textback.storage.tables import messages

log = logging.getLogger(__name__)


def params_json(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form parameters as stored: a string per key, a list for a key that was repeated; NUL
    replaced as ``clean`` does."""
    stored: dict[str, Any] = {}
    for key, value in pairs:
        if "\x00" in key:
            key = clean(key)
        if "\x00" in value:
            value = clean(value)
        if key in stored:
            previous = stored[key]
            stored[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            stored[key] = value
    return stored


class ContactState:
    """What is known about the sender when their message is answered; ``profile`` is None
    unless it was asked for (``with_profile``)."""

    __slots__ = ("contact_id", "conversation", "opted_out", "profile", "run_id", "taken_over")

    def __init__(
        self,
        contact_id: int,
        opted_out: bool,
        conversation: Conversation | None,
        run_id: int | None,
        taken_over: bool = False,
        profile: ContactProfile | None = None,
    ) -> None:
        self.contact_id = contact_id
        self.opted_out = opted_out
        self.conversation = conversation
        self.run_id = run_id
        self.taken_over = taken_over  # a person answers them (storage/takeover.py)
        self.profile = profile


class Decided:
    """What the caller decided for a message (the responder's Decision) and its TwiML."""

    __slots__ = ("decision", "twiml")

    def __init__(self, decision: Decision, twiml: str) -> None:
        self.decision = decision
        self.twiml = twiml


Decider = Callable[[Connection, ContactState], Decided]


class Arrival:
    """A message to record, what decides its reply, and when it came."""

    __slots__ = ("decide", "msg", "stamp")

    def __init__(self, msg: Inbound, decide: Decider, stamp: datetime) -> None:
        self.msg = msg
        self.decide = decide
        self.stamp = stamp


class _Converted:
    """An arrival's values for the driver (see InboundRecorder._converted)."""

    __slots__ = ("account_sid", "claim", "number", "our_number", "who_key")

    def __init__(self, our_number: str, number: str, account_sid: str, claim: list[Any]) -> None:
        self.our_number = our_number
        self.number = number
        self.account_sid = account_sid
        self.claim = claim
        self.who_key = (our_number, number)


_NOT_RECORDED = RuntimeError("not recorded")  # a placeholder every path replaces
CONTACT_ID = frozenset({"contact_id"})
slow_jobs = cast(Table, SlowJob.__table__)


def _param(table: Table, column: str, name: str | None = None) -> BindParameter[Any]:
    return bindparam(name or column, type_=table.c[column].type)


class InboundStatements:
    """The statements of recording a message, built once per store.

    Building a SQLAlchemy statement and its cache key costs more than SQLite takes to run it;
    built once with bound parameters, those that run for every message are compiled once
    (prepared.py) and then only executed.
    """

    def __init__(self, insert: Insert, dialect: str) -> None:
        stamp = _param(messages, "created_at", "stamp")
        our_number = _param(contacts, "our_number")
        number = _param(contacts, "number")
        # Whether a person has taken the contact over, and whether a message of theirs already
        # waits for that person: two booleans read with the row, no query of their own.
        taken_over = contacts.c.taken_over_at.is_not(None).label("taken_over")
        waiting = contacts.c.waiting_since.is_not(None).label("waiting")
        self.contact = (
            select(contacts.c.id, contacts.c.opted_out, taken_over, waiting)
            .where(and_(contacts.c.our_number == our_number, contacts.c.number == number))
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE: foreign keys may still point
        )
        self.new_contact = (
            insert(contacts)
            .values(
                our_number=our_number,
                number=number,
                first_seen=_param(contacts, "first_seen", "stamp"),
                opted_out=False,
            )
            .on_conflict_do_nothing(index_elements=["our_number", "number"])
            # A new contact is not taken over and has nothing waiting. (Not asked of SQLite:
            # its 3.40 was seen returning true for "taken_over_at IS NOT NULL" of the row it
            # had just inserted with NULL there.)
            .returning(contacts.c.id, contacts.c.opted_out, literal(False), literal(False))
        )
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
                contact_id=_param(messages, "contact_id"),
                created_at=stamp,
                updated_at=stamp,
            )
            .on_conflict_do_nothing(index_elements=["sid"], index_where=messages.c.sid.is_not(None))
            .returning(messages.c.id)
        )
        self.stored = select(messages.c.response_twiml).where(
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
        # Neither column is indexed: on PostgreSQL the new row version can stay on its page.
        self.answered = (
            update(messages)
            .where(messages.c.id == _param(messages, "id", "message_id"))
            .values(
                source=_param(messages, "source"),
                response_twiml=_param(messages, "response_twiml"),
            )
        )
        # A contact added for a SID another server claimed first (see InboundRecorder).
        self.forget_contact = delete(contacts).where(
            contacts.c.id == _param(contacts, "id", "contact")
        )
        self.opt_out = (
            update(contacts)
            .where(contacts.c.id == _param(contacts, "id", "contact"))
            .values(
                opted_out=_param(contacts, "opted_out"),
                opted_out_at=_param(contacts, "opted_out_at"),
            )
        )
        self.waiting = (
            update(contacts)
            .where(
                and_(
                    contacts.c.id == _param(contacts, "id", "contact"),
                    contacts.c.waiting_since.is_(None),
                )
            )
            .values(waiting_since=_param(contacts, "waiting_since", "stamp"))
        )
        self.open_run = OPEN_RUN
        self.profile = profile_of_number(dialect)
        # A slow handler owed to the message (slow_jobs.py takes it from here).
        self.slow_job = slow_jobs.insert().values(
            message_sid=_param(slow_jobs, "message_sid"),
            message_id=_param(slow_jobs, "message_id"),
            contact_id=_param(slow_jobs, "contact_id"),
            handler=_param(slow_jobs, "handler"),
            state="waiting",
            attempts=0,
            created_at=stamp,
            updated_at=stamp,
        )


class InboundRecorder:
    """Records inbound messages and their replies on one engine (see the module's text)."""

    def __init__(
        self, engine: Engine, insert: Insert, write_lock: AbstractContextManager[None]
    ) -> None:
        self.engine = engine
        self.sql = InboundStatements(insert, engine.dialect.name)
        self._prepared = {
            name: Prepared(getattr(self.sql, name), engine.dialect)
            for name in (
                "contact",
                "new_contact",
                "claim",
                "stored",
                "open_run",
                "reply",
                "answered",
                "profile",
            )
        }
        self._write_lock = write_lock

    def record(
        self, msg: Inbound, decide: Decider, stamp: datetime, *, with_profile: bool = False
    ) -> tuple[str, bool]:
        """Store ``msg`` and what ``decide`` gives; returns (TwiML, whether it was new).

        A MessageSid seen before is not decided again: its stored TwiML is returned as it was.
        With ``with_profile``, ``decide`` gets the sender's profile in ``ContactState.profile``.
        """
        result = self.record_many([Arrival(msg, decide, stamp)], with_profile=with_profile)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def record_many(
        self, arrivals: Sequence[Arrival], *, with_profile: bool = False
    ) -> list[tuple[str, bool] | Exception]:
        """Store several messages in one transaction (a group commit); for each, what
        ``record`` returns, or the exception that kept it from being stored.

        The messages are recorded one after the other in the order of their contacts (the
        order in which PostgreSQL's row locks are taken, so two servers' batches cannot
        deadlock), a contact's own messages in the order given. Each message is claimed and
        decided exactly as ``record`` would, seeing what the messages before it in the batch
        wrote. If one of them fails, the transaction is rolled back and each message is
        recorded again in its own transaction, so only the failing one fails (its neighbours'
        deciders are then called a second time; what they decided first was never committed).
        When the database cannot be reached, every message fails with that error.
        """
        # Converting the messages for the driver (the form as JSON, the times) happens before
        # the write lock (SQLite's one writer) is taken.
        converted = [self._converted(arrival) for arrival in arrivals]
        order = sorted(range(len(arrivals)), key=lambda index: converted[index].who_key)
        results: list[tuple[str, bool] | Exception] = [_NOT_RECORDED] * len(arrivals)
        if len(arrivals) > 1:
            try:
                self._record_together(arrivals, converted, order, with_profile, results)
                return results
            except Exception as exc:
                if is_unavailable(exc):
                    return [exc] * len(arrivals)
                log.warning(
                    "a batch of %d messages failed (%s); recording them one at a time",
                    len(arrivals),
                    type(exc).__name__,
                )
        for index in order:
            try:
                self._record_together(arrivals, converted, [index], with_profile, results)
            except Exception as exc:
                results[index] = exc
        return results

    def _record_together(
        self,
        arrivals: Sequence[Arrival],
        converted: Sequence[_Converted],
        indexes: Sequence[int],
        with_profile: bool,
        results: list[tuple[str, bool] | Exception],
    ) -> None:
        """Record the arrivals at ``indexes`` in one transaction, their results into ``results``."""
        with self.engine.connect() as connection, self._write_lock, connection.begin():
            for index in indexes:
                results[index] = self._record_one(
                    connection, arrivals[index], converted[index], with_profile
                )

    def _converted(self, arrival: Arrival) -> _Converted:
        """An arrival's values as the driver takes them, made outside the write lock; only the
        contact id is put in later."""
        msg, stamp = arrival.msg, arrival.stamp
        our_number, number = clean(msg.to), clean(msg.from_)
        inbound = {
            "sid": msg.sid,
            "account_sid": clean(msg.account_sid),
            "from_number": number,
            "to_number": our_number,
            "body": clean(msg.body),
            "media": [
                {"url": clean(m.url), "content_type": clean(m.content_type)} for m in msg.media
            ],
            "params": params_json(msg.form),
            "stamp": stamp,
        }
        claim = self._prepared["claim"].values(inbound, later=CONTACT_ID)
        return _Converted(our_number, number, inbound["account_sid"], claim)

    def _record_one(
        self,
        connection: Connection,
        arrival: Arrival,
        converted: _Converted,
        with_profile: bool,
    ) -> tuple[str, bool]:
        """One message in ``connection``'s transaction: claimed, decided and stored."""
        sql, run = self.sql, self._prepared
        msg, decide, stamp = arrival.msg, arrival.decide, arrival.stamp
        our_number, number = converted.our_number, converted.number
        who = {"our_number": our_number, "number": number, "stamp": stamp}
        added = False
        contact = run["contact"].first_row(connection, who)
        if contact is None:
            # A new sender. A duplicate must change nothing, not even add a contact: if the SID
            # turns out to be claimed already, the contact added here is removed again below.
            contact = run["new_contact"].first_row(connection, who)
            added = contact is not None
            if contact is None:  # another server added them a moment ago
                contact = connection.execute(sql.contact, who).one()
        contact_id, opted_out, taken_over, waiting = contact
        claimed = run["claim"].scalar(
            connection, {"contact_id": contact_id}, converted=converted.claim
        )
        if claimed is None:
            # A SID seen before (or claimed by another server a moment ago): a contact added
            # for it goes again.
            if added:
                connection.execute(sql.forget_contact, {"contact": contact_id})
            stored = run["stored"].first_row(connection, {"sid": msg.sid})
            return (stored[0] if stored is not None else None) or "", False
        if added:  # a contact added just now has no conversation yet
            conversation, run_id = None, None
        else:
            open_run = run["open_run"].first_row(connection, {"contact_id": contact_id})
            conversation, run_id = conversation_of(connection, open_run, stamp)
        profile = None
        if with_profile:
            found = run["profile"].first_row(connection, {"number": number})
            profile = profile_from_row(number, found)
        state = ContactState(
            contact_id,
            bool(opted_out),
            conversation,
            run_id,
            taken_over=bool(taken_over),
            profile=profile,
        )
        decided = decide(connection, state)
        decision, reply = decided.decision, decided.decision.reply
        if not reply.is_empty:
            run["reply"].first_row(
                connection,
                {
                    "account_sid": converted.account_sid,
                    "from_number": our_number,
                    "to_number": number,
                    "body": clean(reply.text),
                    "media": [{"url": clean(url)} for url in reply.media],
                    "source": decision.source,
                    "contact_id": contact_id,
                    "reply_to_id": claimed,
                    "stamp": stamp,
                },
            )
        run["answered"].first_row(
            connection,
            {
                "message_id": claimed,
                "source": decision.source,
                "response_twiml": decided.twiml,
            },
        )
        if decision.opt_out is not None:
            connection.execute(
                sql.opt_out,
                {
                    "contact": contact_id,
                    "opted_out": decision.opt_out,
                    "opted_out_at": stamp if decision.opt_out else None,
                },
            )
        if decision.waits_for_person and not waiting:
            connection.execute(sql.waiting, {"contact": contact_id, "stamp": stamp})
        save_conversation(
            connection,
            contact_id=contact_id,
            run_id=run_id,
            before=conversation,
            decision=decision,
            stamp=stamp,
            our_number=our_number,
            number=number,
        )
        if decision.contact_changes:
            save_changes(connection, number, decision.contact_changes, stamp)
        if decision.deferred is not None:
            connection.execute(
                sql.slow_job,
                {
                    "message_sid": msg.sid,
                    "message_id": claimed,
                    "contact_id": contact_id,
                    "handler": clean(decision.deferred),
                    "stamp": stamp,
                },
            )
        return decided.twiml, True
