"""The outbox: messages textback sends on its own, sent by workers exactly once.

A message to send is a row in textback's database (storage/outbox.py), written in the
transaction that decided to send it; a huey task saying "send row N" is queued after the commit.
A worker claims the row with one conditional UPDATE, waits for the sender's rate slot, checks the
opt-out again, notes that the API call begins, calls Twilio and records the outcome:

- Twilio took it: ``sent`` with the SID (status callbacks move it to delivered/undelivered).
- 429 (error 20429): not sent; retried later with backoff and jitter.
- 5xx, a timeout or a broken connection: *maybe* sent. The row keeps ``unsure_since``; before any
  retry it is looked up in Twilio's message list (lookup.py). Found: ``sent``. Not found: sent
  again. Several candidates: ``review`` (never resent without a person).
- Anything else Twilio refuses (21211 invalid number, 21617 too long, 21610 opted out, which also
  marks the contact opted out, ...): ``failed`` with Twilio's error code. Never retried.

A worker that dies mid-send leaves the row ``sending``; the sweep (a periodic task) queues such
rows again once they are older than TEXTBACK_OUTBOX_STALE_AFTER, and rows whose task was lost.

A flow's timer (a reminder, an expiry message) is a row scheduled by the webhook that asked the
question, queued by the sweep once due; before sending it the worker asks the run
(storage/flow_timers.fire): a run that moved on cancels it, an expiry ends the run first.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from huey import Huey
from huey import crontab
from sqlalchemy import Row

from textback import metrics
from textback.channel.rest import OPTED_OUT
from textback.channel.rest import TwilioApiError
from textback.channel.rest import call
from textback.channel.rest import rest_client
from textback.config import Settings
from textback.core.text import mask_number
from textback.errors import ConfigError
from textback.errors import TextbackError
from textback.outbound.lookup import AmbiguousLookup
from textback.outbound.lookup import find_sent
from textback.outbound.queue import make_queue
from textback.outbound.quiet import held_reason
from textback.outbound.quiet import hold_until
from textback.storage import flow_timers
from textback.storage import outbox as rows_module
from textback.storage.outbox import OutboxRows
from textback.storage.store import Store

log = logging.getLogger(__name__)

TOO_MANY_REQUESTS = 20429
MAX_ATTEMPTS = 8
BACKOFF_BASE = 2.0  # seconds before the first retry, doubling after each
BACKOFF_CAP = 600.0
SEND_TASK = "textback.outbox.send"
SWEEP_TASK = "textback.outbox.sweep"


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt ended in: the row's new state, and the SID or the error."""

    state: str
    sid: str | None = None
    status: str | None = None
    error: TextbackError | None = None


def is_messaging_service(sender: str) -> bool:
    """Whether ``sender`` is a Messaging Service SID (MG + 32 hex) rather than a number."""
    return sender.startswith("MG") and len(sender) == 34


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential, capped, with jitter (half
    to all of the step, so workers that failed together do not retry together)."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(0, attempt - 1))
    return step * (0.5 + rng() / 2)


class Outbox:
    """Adding messages to send, queueing them, and sending them (what a worker runs)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: Huey | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.store = store
        self.rows = OutboxRows(store)
        self.queue = queue if queue is not None else make_queue(settings.queue_url)
        self.sleep = sleep
        self.rng = rng
        self.send_task = self.queue.task(name=SEND_TASK)(self.deliver)
        self.queue.periodic_task(crontab(minute="*"), name=SWEEP_TASK)(self.sweep)

    # --- adding ---------------------------------------------------------------------------

    def put(
        self,
        *,
        sender: str,
        to: str,
        body: str,
        media: list[str] | tuple[str, ...] = (),
        source: str = "api",
        send_at: datetime | None = None,
        key: str | None = None,
        enqueue: bool = True,
    ) -> tuple[int, bool]:
        """Add a message in a transaction of its own and queue it; returns (id, whether new).

        To add it in a transaction that also does other work, call ``rows.add`` with that
        connection and ``enqueue`` after the commit.
        """
        with self.store.write_lock, self.store.engine.begin() as connection:
            entry_id, new = self.rows.add(
                connection,
                sender=sender,
                to=to,
                body=body,
                media=media,
                source=source,
                send_at=send_at,
                key=key,
            )
        if new and enqueue:
            self.enqueue(entry_id, send_at)
        return entry_id, new

    def enqueue(self, entry_id: int, send_at: datetime | None = None) -> None:
        """Queue the task for a committed row (``send_at`` in the future: at that time)."""
        self.enqueue_all([(entry_id, send_at)])

    def enqueue_all(self, entries: Iterable[tuple[int, datetime | None]]) -> None:
        """Queue the tasks for committed rows, each at its ``send_at``; one write marks them."""
        stamp = self.rows.now()
        ids = []
        for entry_id, send_at in entries:
            if send_at is not None and send_at > stamp:
                self.send_task.schedule((entry_id,), eta=send_at)
            else:
                self.send_task(entry_id)
            ids.append(entry_id)
        self.rows.mark_enqueued(ids)

    def sweep(self) -> int:
        """Queue again the rows whose task was lost or whose worker died; returns how many."""
        lost = self.rows.lost(self.settings.outbox_stale_after)
        for entry_id in lost:
            self.send_task(entry_id)
        self.rows.mark_enqueued(lost)
        if lost:
            log.info("outbox sweep queued %d message(s) again", len(lost))
        return len(lost)

    # --- sending --------------------------------------------------------------------------

    def deliver(self, entry_id: int) -> Outcome | None:
        """Send row ``entry_id`` if it is ours to send; None when it is not (another worker has
        it, it is done or cancelled, or not due yet)."""
        outcome = self._deliver(entry_id)
        if outcome is not None:
            code = getattr(outcome.error, "code", None)
            result = "retry" if outcome.state == rows_module.SCHEDULED else outcome.state
            metrics.SENDS.labels(result, str(code) if code else "").inc()
        return outcome

    def _deliver(self, entry_id: int) -> Outcome | None:
        entry = self.rows.claim(entry_id, self.settings.outbox_stale_after)
        if entry is None:
            return None
        held = hold_until(
            self.settings, self.store, source=entry.source, to=entry.to_number, when=self.rows.now()
        )
        if held is not None:  # a broadcast due in the contact's quiet hours waits for their end
            self.rows.postpone(entry.id, held, held_reason(held))
            self.enqueue(entry.id, held)
            log.info("outbox %d held by quiet hours until %s", entry.id, f"{held:%H:%M UTC}")
            return None
        with self.store.engine.connect() as connection:
            void = flow_timers.start_question_void(connection, entry.key, self.rows.now())
        if void is not None:  # a flow we started whose run ended while its question waited
            self.rows.finish(entry.id, rows_module.CANCELLED, void)
            log.info("outbox %d cancelled: %s", entry.id, void)
            return Outcome(rows_module.CANCELLED)
        timed = self._fire(entry)
        if timed is not None:
            return timed
        try:
            client = rest_client(self.settings)
        except ConfigError as exc:
            return self._retry(entry, exc, unsure=entry.unsure_since is not None)
        if entry.unsure_since is not None:
            known = self._look_up(client, entry)
            if known is not None:
                return known
        # twilio builds its API modules on first use (a tenth of a second): before the slot, so
        # the request leaves when its slot begins.
        create = client.messages.create
        parameters = options(self.settings, entry)
        self._wait_for_slot(entry.sender)
        opt_out = self.store.opt_out_of(
            None if is_messaging_service(entry.sender) else entry.sender, entry.to_number
        )
        if opt_out is not None:
            when = f"{opt_out.at:%Y-%m-%d %H:%M UTC}" if opt_out.at else "an unknown time"
            reason = f"opted out at {when}"
            self.rows.finish(entry.id, rows_module.CANCELLED, reason)
            log.info("outbox %d cancelled: %s %s", entry.id, mask_number(entry.to_number), reason)
            return Outcome(rows_module.CANCELLED)
        self.rows.calling(entry.id)
        try:
            message = call(
                client,
                self.settings,
                lambda: create(**parameters),
            )
        except TwilioApiError as exc:
            return self._refused(entry, exc)
        sid, status = str(message.sid), str(message.status or "queued")
        account = str(message.account_sid or self.settings.account_sid or "")
        self.rows.sent(entry, sid, status, account)
        log.info(
            "outbox %d sent as %s to %s: %s", entry.id, sid, mask_number(entry.to_number), status
        )
        return Outcome(rows_module.SENT, sid=sid, status=status)

    def _fire(self, entry: Row[Any]) -> Outcome | None:
        """For a flow timer's row: None to send it now, else what became of it (its run moved
        on, or it is not due yet by this worker's clock). Any other row: None."""
        with self.store.engine.connect() as connection:
            if not flow_timers.is_timer(connection, entry.id):
                return None
        with self.store.write_lock, self.store.engine.begin() as connection:
            fired = flow_timers.fire(connection, entry.id, self.rows.now())
        if fired.send:
            return None
        if fired.later is not None:
            self.rows.retry_at(entry.id, fired.later, "not due yet", unsure=False, error_code=None)
            self.enqueue(entry.id, fired.later)
            return Outcome(rows_module.SCHEDULED)
        self.rows.finish(entry.id, rows_module.CANCELLED, fired.reason)
        log.info("outbox %d cancelled: %s", entry.id, fired.reason)
        return Outcome(rows_module.CANCELLED)

    def _wait_for_slot(self, sender: str) -> None:
        start = self.rows.reserve_slot(sender, 1 / self.settings.send_rate, time.time())
        delay = start - time.time()
        if delay > 0:
            self.sleep(delay)

    def _look_up(self, client: Any, entry: Row[Any]) -> Outcome | None:
        """For a row whose last call's outcome is unknown: sent (found), review (cannot tell),
        a retry (the list could not be read), or None to send it now (Twilio has no such
        message)."""
        try:
            sid = call(
                client,
                self.settings,
                lambda: find_sent(
                    client,
                    sender=entry.sender,
                    to=entry.to_number,
                    body=entry.body,
                    since=entry.unsure_since,
                    messaging_service=is_messaging_service(entry.sender),
                    taken=self.rows.sids_taken,
                ),
            )
        except AmbiguousLookup as exc:
            self.rows.finish(
                entry.id, rows_module.REVIEW, f"cannot tell whether it was sent: {exc}"
            )
            log.warning("outbox %d needs review: %s", entry.id, exc)
            return Outcome(rows_module.REVIEW, error=exc)
        except TwilioApiError as exc:
            return self._retry(entry, exc, unsure=True)
        if sid is None:
            log.info("outbox %d: not in Twilio's list, sending it now", entry.id)
            return None
        self.rows.sent(entry, sid, "sent", str(self.settings.account_sid or ""))
        log.info("outbox %d was sent before, as %s (found in Twilio's list)", entry.id, sid)
        return Outcome(rows_module.SENT, sid=sid, status="sent")

    def _refused(self, entry: Row[Any], exc: TwilioApiError) -> Outcome:
        if exc.status == 429 or exc.code == TOO_MANY_REQUESTS:
            return self._retry(entry, exc, unsure=False)
        if exc.status is None or exc.status >= 500:  # may have been sent: look it up first
            return self._retry(entry, exc, unsure=True)
        if exc.code == OPTED_OUT:
            self.store.set_opted_out(entry.sender, entry.to_number, True)
            log.info("%s has opted out (Twilio error 21610)", mask_number(entry.to_number))
        code = str(exc.code or exc.status)
        self.rows.finish(entry.id, rows_module.FAILED, str(exc), error_code=code, settled=True)
        log.info("outbox %d failed: Twilio error %s", entry.id, code)
        return Outcome(rows_module.FAILED, error=exc)

    def _retry(self, entry: Row[Any], exc: TextbackError, *, unsure: bool) -> Outcome:
        code = getattr(exc, "code", None)
        code_text = str(code) if code else None
        if entry.attempts >= MAX_ATTEMPTS:
            # A message that may have been sent is never given up as "failed": a person looks.
            state = rows_module.REVIEW if unsure else rows_module.FAILED
            self.rows.finish(
                entry.id, state, f"gave up after {entry.attempts} attempts: {exc}", code_text
            )
            log.warning("outbox %d %s after %d attempts", entry.id, state, entry.attempts)
            return Outcome(state, error=exc)
        when = self.rows.now() + timedelta(seconds=backoff(entry.attempts, self.rng))
        self.rows.retry_at(entry.id, when, str(exc), unsure=unsure, error_code=code_text)
        self.enqueue(entry.id, when)
        log.info("outbox %d will be retried at %s: %s", entry.id, f"{when:%H:%M:%S}", exc)
        return Outcome(rows_module.SCHEDULED, error=exc)


def options(settings: Settings, entry: Row[Any]) -> dict[str, Any]:
    """The Messages.create parameters for ``entry``."""
    sent: dict[str, Any] = {"to": entry.to_number}
    if is_messaging_service(entry.sender):
        sent["messaging_service_sid"] = entry.sender
    else:
        sent["from_"] = entry.sender
    if entry.body:
        sent["body"] = entry.body
    if entry.media:
        sent["media_url"] = list(entry.media)
    if settings.public_url:
        sent["status_callback"] = f"{settings.public_url}/twilio/status"
    return sent
