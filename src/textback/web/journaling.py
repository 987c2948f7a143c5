"""The webhooks during a database outage: kept in the journal, answered at once, replayed later.

When the database cannot be reached while answering a signed ``POST /twilio`` or
``POST /twilio/status``, the request is appended to the journal in the instance folder
(storage/journal.py: on disk, fsync'd, before the answer leaves) and answered without the
database, so Twilio gets its 200 within its timeout and nothing is lost:

- STOP, START and HELP as TEXTBACK_CARRIER_REPLIES says: nothing (``twilio``: Twilio answers
  them) or the confirmation texts of the rules' ``[optout]`` settings (``textback``). Whether
  the contact is opted out is not known, so an opt-in word is answered as START;
- every other message: TEXTBACK_OUTAGE_REPLY, else an empty ``<Response/>``; its real reply
  is owed and goes out through the outbox after the replay;
- a status callback: 204.

A thread of each server process that journaled something (or found entries waiting when it
started) replays the journal when the database answers ``SELECT 1`` again
(web/journal_replay.py); the replay lock lets one process at a time do it. From the first
entry until a replay finds the journal empty, a marker file in the instance folder says entries
wait (``pending``), and every process of the server keeps journaling what comes without asking
the database, its own replay thread or not: a message is then never answered ahead of the
outage's entries, so a STOP sent during the outage is recorded before anything later from that
contact is answered, whichever worker each request reached.
docs/outage.md has the whole story.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextlib import nullcontext

from textback import metrics
from textback.channel.twiml import render
from textback.channel.webhook import StatusReport
from textback.core.body_length import cut_to_fit
from textback.core.message import Inbound
from textback.core.message import Reply
from textback.core.responder import carrier_command
from textback.outbound.outbox import Outbox
from textback.service import Textback
from textback.storage.health import database_problem
from textback.storage.journal import Entry
from textback.storage.journal import Journal
from textback.storage.journal import now
from textback.web.journal_replay import MESSAGE
from textback.web.journal_replay import STATUS
from textback.web.journal_replay import JournalReplay
from textback.web.journal_replay import Replayed
from textback.web.outage import DatabaseOutage

log = logging.getLogger(__name__)

JOURNALING_KEY = "textback.journaling"  # app.extensions: the app's Journaling
RETRY_SECONDS = 1.0  # how often a process with entries waiting asks the database again


class Journaling:
    """One app's outage journal: what the webhook answers while the database is down, and the
    thread that replays the journal when it is back. Thread-safe."""

    def __init__(
        self,
        service: Textback,
        journal: Journal,
        *,
        context: Callable[[], AbstractContextManager[object]] = nullcontext,
        outbox: Callable[[], Outbox] | None = None,
        retry_seconds: float = RETRY_SECONDS,
        outage: DatabaseOutage | None = None,
    ) -> None:
        self.service = service
        self.journal = journal
        self.retry_seconds = retry_seconds
        self._make_outbox = outbox
        self._outbox: Outbox | None = None
        self.replayer = JournalReplay(service, self.outbox, context=context)
        text = cut_to_fit(service.settings.outage_reply)
        self._outage_answer = render(Reply(text) if text else None)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self.background = True  # False: only replay_once() replays (tests that replay by hand)
        # True while this process's replay thread has not stored the outage's entries.
        self._replaying = False
        self.outage = outage
        self._other_replays = False  # the replay lock was found taken by another process

    @property
    def pending(self) -> bool:
        """Whether new webhooks go to the journal too, behind the entries waiting there: while
        this process replays, and while the instance folder's marker says entries wait (another
        worker's, from the outage), so no worker answers ahead of a STOP in the journal."""
        return self._replaying or self.journal.marked()

    @classmethod
    def for_service(
        cls,
        service: Textback,
        context: Callable[[], AbstractContextManager[object]],
        outage: DatabaseOutage,
    ) -> Journaling:
        """The journal in the service's instance folder."""
        journal = Journal(service.settings.instance_path)
        return cls(service, journal, context=context, outage=outage)

    def outbox(self) -> Outbox:
        """The outbox owed replies go to (its queue connection made on first use)."""
        with self._lock:
            if self._outbox is None:
                make = self._make_outbox or (
                    lambda: Outbox(self.service.settings, self.service.store)
                )
                self._outbox = make()
            return self._outbox

    # --- while the database is down -------------------------------------------------------

    def message(self, msg: Inbound, public_base: str | None) -> str:
        """Keep ``msg`` in the journal; the TwiML to answer it with now.

        Raises OSError when the journal cannot be written (the caller then answers 503, so
        Twilio tries again: a 200 is only given for what is on disk).
        """
        service = self.service
        command, twilio_answered = carrier_command(msg, service.rules, opted_out=True)
        if command is None:
            answer = self._outage_answer
        elif twilio_answered or service.carrier.twilio_answers:
            answer = render(None)
        else:
            text = service.rules.optout.reply_for(
                command, sender_name=service.carrier.sender_name, our_number=msg.to
            )
            callback = service.status_callback_url(public_base, msg.sid)
            answer = render(Reply(text), callback)
        entry = Entry(
            MESSAGE,
            msg.form,
            now(),
            public_base=public_base,
            answered=command is not None,
            answer=answer,
        )
        self.journal.append(entry)
        metrics.JOURNALED.labels(MESSAGE).inc()
        metrics.WEBHOOKS.labels("journaled").inc()
        self.start()
        return answer

    def status(self, report: StatusReport) -> None:
        """Keep a delivery status callback in the journal (raises OSError as ``message``)."""
        entry = Entry(STATUS, tuple(report.params.items()), now(), reply_to=report.reply_to)
        self.journal.append(entry)
        metrics.JOURNALED.labels(STATUS).inc()
        self.start()

    # --- when it is back ------------------------------------------------------------------

    def waiting(self) -> int:
        """How many entries wait to be replayed (all processes of this instance folder)."""
        return self.journal.waiting()

    def start(self) -> None:
        """Make sure a thread replays the journal, now or as soon as the database answers; it
        ends when nothing waits. Cheap when one runs already."""
        with self._lock:
            if not self.background:
                return
            if self._thread is not None:
                self._wake.set()
                return
            self._thread = threading.Thread(target=self._run, name="textback-journal", daemon=True)
            self._replaying = True
            self._thread.start()

    def start_if_waiting(self) -> bool:
        """At server start: replay what a server that stopped during an outage left."""
        try:
            waiting = self.waiting()
        except OSError as exc:
            log.error("cannot read the outage journal in %s: %s", self.journal.folder, exc)
            return False
        if waiting:
            log.warning("%d journal entries wait to be replayed (from an outage)", waiting)
        if waiting or self.journal.marked():  # a marker alone: cleared by the thread
            self.start()
        return bool(waiting)

    def join(self, timeout: float) -> bool:
        """Wait until the replay thread ended (nothing waits); returns whether it did."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not (thread is not None and thread.is_alive())

    def replay_once(self) -> Replayed | None:
        """Replay if entries wait, the database answers and no other replay runs; None when
        it did not try (nothing waits, the database is still down, or another one replays)."""
        if not self.journal.waiting():
            return None
        if database_problem(self.service.store.engine) is not None:
            return None
        if self.outage is not None:
            self.outage.answered()  # logs the end of the outage (requests wait for the replay)
        with self.journal.replaying() as mine:
            if not mine:
                self._other_replays = True
                return None
            return self.replayer.run(self.journal)

    def _run(self) -> None:
        self._other_replays = False
        while True:
            try:
                replayed = self.replay_once()
            except Exception:  # the thread must go on: the entries are still on disk
                log.exception("replaying the outage journal failed; trying again")
                replayed = None
            # What came while a round replayed is in the journal again: the next round takes
            # it at once. Webhooks are answered as usual again once a round finds nothing left
            # (clear_if_empty removes the marker every worker checks), so no message is
            # answered ahead of an entry of the outage, even one another worker journaled.
            done = replayed is not None and replayed.complete
            if done or (self._other_replays and not self.journal.taken_files()):
                self._replaying = False
            with self._lock:
                try:
                    empty = self.journal.clear_if_empty()
                except OSError:
                    empty = False
                if empty:
                    self._thread = None
                    self._replaying = False
                    return
                self._wake.clear()
            if not done:  # the database is down, or another process replays: wait a little
                self._wake.wait(self.retry_seconds)
