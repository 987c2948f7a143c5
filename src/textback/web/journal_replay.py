"""Replaying the outage journal once the database answers again: exactly once, STOPs first.

Every entry goes through the normal path: a message is claimed by its MessageSid and decided
by the responder against the contact's state as it is *now* (storage/inbound.py), so an entry
already stored (a replay that died half-way, a webhook whose commit got through after all) is a
duplicate and changes nothing; a status callback is kept once per (MessageSid, status).

Order: the STOPs first, so nothing owed is queued for a contact who opted out during the
outage, then everything else as it came. The STOPs of a contact who also sent START (or
another opt-in word) keep their place, so their last word wins.

The webhook could not reply during the outage (only carrier commands were answered, as the
opt-out settings say). The reply owed is put in the outbox (outbound/outbox.py) in the
transaction that stores the message, keyed by its MessageSid, so a second replay never queues a
second copy; a worker sends it, and checks the opt-out again when it does. The stored TwiML is
what the webhook really answered. A file is removed only once every entry in it is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from dataclasses import replace

from sqlalchemy import Connection

from textback import metrics
from textback.core.message import Inbound
from textback.core.message import Reply
from textback.core.optout import OptOutPolicy
from textback.core.responder import carrier_command
from textback.core.text import mask_number
from textback.core.text import normalize_command
from textback.errors import cause_of
from textback.errors import failed_in
from textback.outbound.outbox import Outbox
from textback.service import Textback
from textback.storage.health import describe
from textback.storage.health import is_unavailable
from textback.storage.inbound import ContactState
from textback.storage.inbound import Decided
from textback.storage.inbound import InboundRecorder
from textback.storage.journal import Entry
from textback.storage.journal import Journal

log = logging.getLogger(__name__)

MESSAGE = "message"
STATUS = "status"
# The one parameter textback adds to a replayed message's stored form (and to the Inbound its
# handlers get): when it reached the webhook. Sources stay the responder's own, which the
# take-over and `textback replay` compare.
JOURNALED = "TextbackJournaledAt"


def outbox_key(sid: str) -> str:
    """The outbox key of the reply owed to inbound message ``sid``: one copy, ever."""
    return f"journal:{sid}"


@dataclass
class Replayed:
    """What one replay did."""

    stored: int = 0  # entries committed now
    duplicates: int = 0  # entries stored before (an earlier replay, a late commit)
    owed: int = 0  # replies put in the outbox
    rejected: int = 0  # entries that failed for another reason than the database: kept aside
    complete: bool = True  # False: the database went away again; the files wait for next time


def replay_order(entries: Iterable[Entry], optout: OptOutPolicy) -> list[Entry]:
    """The STOP messages first, then the rest in the order they came.

    The STOPs of a contact who also sent an opt-in word (START, YES, UNSTOP...) in the journal
    keep their place: for them only the order tells which word was the last.
    """
    entries = list(entries)
    opting_in = {_contact(e) for e in entries if _is(e, "START", optout.start_words)}
    first = [
        index
        for index, entry in enumerate(entries)
        if _is(entry, "STOP", optout.stop_words) and _contact(entry) not in opting_in
    ]
    chosen = set(first)
    return [entries[i] for i in first] + [e for i, e in enumerate(entries) if i not in chosen]


def _contact(entry: Entry) -> tuple[str, str]:
    return entry.form_value("To"), entry.form_value("From")


def _is(entry: Entry, opt_out_type: str, words: frozenset[str]) -> bool:
    """Whether ``entry`` is a message saying one of ``words`` (or Twilio's OptOutType says so)."""
    if entry.kind != MESSAGE:
        return False
    if entry.form_value("OptOutType").upper() == opt_out_type:
        return True
    return normalize_command(entry.form_value("Body")) in words


class JournalReplay:
    """Replays one instance folder's journal through one app's service and outbox."""

    def __init__(
        self,
        service: Textback,
        outbox: Callable[[], Outbox],
        *,
        context: Callable[[], AbstractContextManager[object]],
    ) -> None:
        self.service = service
        self.outbox = outbox
        self.context = context
        store = service.store
        # The hot path's recorder, with the time the message really came as its stamp.
        self.recorder = InboundRecorder(store.engine, store.insert, store.write_lock)
        self.paused = False  # the last replay stopped because the database went away

    def run(self, journal: Journal) -> Replayed:
        """Replay every waiting entry; the caller holds ``journal.replaying()``."""
        result = Replayed()
        taken = journal.take()
        if not taken:
            return result
        entries = [entry for path in taken for entry in Journal.entries(path)]
        ordered = replay_order(entries, self.service.rules.optout)
        log.info("replaying %d journal entries", len(ordered))
        for entry in ordered:
            try:
                outcome = self.entry(entry, result)
            except Exception as exc:
                if is_unavailable(exc):
                    # One line until a replay completes: a database that keeps failing is
                    # tried again every second.
                    log.log(
                        logging.DEBUG if self.paused else logging.WARNING,
                        "journal replay paused, the database went away again (%s); %d entries wait",
                        describe(exc),
                        journal.waiting(),
                    )
                    self.paused = True
                    result.complete = False
                    return result
                log.exception("a journal entry could not be stored; kept in the rejected file")
                journal.reject(entry)
                outcome = "rejected"
                result.rejected += 1
            metrics.REPLAYED.labels(outcome).inc()
        for path in taken:
            Journal.done(path)
        self.paused = False
        log.info(
            "journal replayed: %d stored, %d stored before, %d replies queued, %d rejected",
            result.stored,
            result.duplicates,
            result.owed,
            result.rejected,
        )
        return result

    def entry(self, entry: Entry, result: Replayed) -> str:
        """Store one entry; returns the outcome counted (stored or duplicate)."""
        if entry.kind == STATUS:
            new = self.service.store.record_status(dict(entry.form), entry.reply_to)
        elif entry.kind == MESSAGE:
            new = self.message(entry, result)
        else:
            raise ValueError(f"unknown journal entry kind {entry.kind!r}")
        if new:
            result.stored += 1
            return "stored"
        result.duplicates += 1
        return "duplicate"

    def message(self, entry: Entry, result: Replayed) -> bool:
        """Store a journaled message and put the reply it is owed in the outbox."""
        msg = Inbound.from_form((*entry.form, (JOURNALED, entry.received_at.isoformat())))
        outbox = self.outbox()
        owed: list[int] = []
        failures: list[Exception] = []
        deferred: list[str] = []  # a slow handler owed to the message, its job stored with it

        def decide_and_keep(connection: Connection, state: ContactState) -> Decided:
            decision = self.service.decision_for(msg, state, failures)
            deferred[:] = [decision.deferred] if decision.deferred else []
            command, _ = carrier_command(msg, self.service.rules, opted_out=state.opted_out)
            if entry.answered and command is not None:
                # The webhook's own answer carried the reply (or Twilio answered): kept as is.
                return Decided(decision, entry.answer)
            reply = decision.reply
            if not reply.is_empty:
                row, new = outbox.rows.add(
                    connection,
                    sender=msg.to,
                    to=msg.from_,
                    body=reply.text,
                    media=reply.media,
                    source=decision.source,
                    key=outbox_key(msg.sid),
                )
                if new:
                    owed.append(row)
            # The reply is the outbox's now: no TwiML reply row (it was never sent as one).
            return Decided(replace(decision, reply=Reply("")), entry.answer)

        with self.context():
            _, new = self.recorder.record(
                msg, decide_and_keep, entry.received_at, with_profile=self.service.wants_profile
            )
        for exc in failures:
            cause = cause_of(exc)
            log.error(
                "answering %s from %s (journal) failed in %s (%s); the message is stored",
                msg.sid,
                mask_number(msg.from_),
                failed_in(exc),
                type(cause).__name__,
                exc_info=cause,
            )
        if new and deferred:
            try:  # as the webhook does after its commit (service.Textback._queue_slow)
                self.service.slow.enqueue(msg.sid)
            except Exception as exc:  # the job is committed: the slow sweep queues it
                log.warning("slow handler for %s not queued (%s); the sweep will", msg.sid, exc)
        for row in owed:
            result.owed += 1
            try:
                outbox.enqueue(row)
            except Exception as exc:  # the row is committed: the outbox's sweep queues it
                log.warning("outbox %d not queued yet (%s); the sweep will queue it", row, exc)
        return new
