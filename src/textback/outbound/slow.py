"""Slow handlers: the webhook answers at once, a worker runs the handler, the outbox sends.

``@bot.on("report", slow=True)`` defers the handler (core/bot.py); the webhook's transaction
stores the message with its job (storage/inbound.py), and after the commit a huey task naming
the MessageSid is queued on the outbox's queue. A worker (``textback worker``, or the one
``textback run`` embeds) takes the job, calls the handler with the arguments it would have got
inline (msg, match, conversation), and commits the reply into the outbox (keyed by the
MessageSid: sent once) with the conversation change, in one transaction. The outbox checks the
opt-out when it sends.

At-least-once for the handler, exactly-once for the send: a worker that dies while the handler
runs stops touching the job; once it is TEXTBACK_OUTBOX_STALE_AFTER seconds stale the sweep
queues it again and another worker runs the handler again. What the first run did outside
textback (an API call, an email) may then happen twice; its reply and state change cannot.
A handler that raises is logged once, the job ends ``failed``, and the contact gets the error
reply if one is configured. docs/slow-handlers.md explains it for users.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from huey import crontab

from textback.core.body_length import too_long
from textback.core.bot import Bot
from textback.core.conversation import Conversation
from textback.core.profile import ContactProfile
from textback.core.responder import Decision
from textback.core.responder import cut_to_limit
from textback.core.responder import failed
from textback.core.responder import slow_decision
from textback.core.ruleset import RuleSet
from textback.core.text import mask_number
from textback.errors import HandlerError
from textback.errors import cause_of
from textback.outbound.outbox import Outbox
from textback.storage import slow_jobs as states
from textback.storage.profiles import profile_of
from textback.storage.slow_jobs import Claimed
from textback.storage.slow_jobs import SlowJobRows

log = logging.getLogger(__name__)

SLOW_TASK = "textback.slow.run"
SLOW_SWEEP_TASK = "textback.slow.sweep"
# A handler whose worker died this often while running it is not run again: it may be what
# kills the worker (memory, a crash in an extension).
MAX_RUNS = 3

Answerers = Callable[[], tuple[Bot, RuleSet]]


class SlowHandlers:
    """Slow handlers' jobs on the outbox's queue: queued by the webhook, run by workers.

    ``answerers`` gives the bot and rules to run them with, asked for each job (so a server
    that reloads its bot runs the new one).
    """

    def __init__(self, outbox: Outbox, answerers: Answerers) -> None:
        self.outbox = outbox
        self.settings = outbox.settings
        self.rows = SlowJobRows(outbox.store)
        self.answerers = answerers
        self.task = outbox.queue.task(name=SLOW_TASK)(self.run)
        outbox.queue.periodic_task(crontab(minute="*"), name=SLOW_SWEEP_TASK)(self.sweep)

    def enqueue(self, message_sid: str) -> None:
        """Queue the job of a committed message (the webhook calls this after its commit)."""
        self.task(message_sid)

    def sweep(self) -> int:
        """Queue again the jobs whose task was lost or whose worker died; returns how many."""
        lost = self.rows.lost(self.settings.outbox_stale_after)
        for message_sid in lost:
            self.task(message_sid)
        self.rows.mark_swept(lost)
        if lost:
            log.info("slow handler sweep queued %d job(s) again", len(lost))
        return len(lost)

    def _profile(self, number: str) -> ContactProfile:
        """The sender's profile, for a slow handler that asks for ``contact``."""
        with self.outbox.store.engine.connect() as connection:
            return profile_of(connection, number) or ContactProfile(number)

    def run(self, message_sid: str) -> str | None:
        """Run the slow handler owed to ``message_sid`` if it is ours to run; returns the job's
        end state (done, failed), None when it was not ours (done, or held by a live worker)."""
        claimed = self.rows.claim(message_sid, self.settings.outbox_stale_after)
        if claimed is None:
            return None
        bot, rules = self.answerers()
        job, msg = claimed.job, claimed.message
        if job.attempts > MAX_RUNS:
            problem = f"its worker stopped {job.attempts - 1} times while running it"
            return self._failed(claimed, HandlerError(job.handler, problem), bot, rules)
        # The handler may write conversation.values: a copy, so Claimed keeps what it saw.
        conversation = (
            claimed.conversation.copy() if claimed.conversation is not None else Conversation()
        )
        every = max(0.5, self.settings.outbox_stale_after / 3)
        try:
            with Heartbeat(lambda: self.rows.touch(job), every):
                outcome = bot.run_slow(
                    job.handler, msg, conversation, contact=self._profile(msg.from_)
                )
                decision = slow_decision(
                    outcome, conversation, rules, existed=claimed.conversation is not None
                )
        except Exception as exc:  # whatever the handler does, the job ends and is logged once
            return self._failed(claimed, exc, bot, rules)
        decision = _fitted(message_sid, decision)
        finished = self.rows.finish(
            claimed, reply=decision.reply, source=decision.source, decision=decision
        )
        if finished is None:
            log.warning(
                "slow job for %s: another worker took it while it ran; its answer is "
                "left to that worker",
                message_sid,
            )
            return None
        entry_id, applied = finished
        if not applied:
            log.warning(
                "slow %s for %s: %s's conversation moved on while it ran; its state "
                "change is dropped, its reply is sent",
                job.handler,
                message_sid,
                mask_number(msg.from_),
            )
        if entry_id is not None:
            self._enqueue_reply(entry_id)
        log.info(
            "slow %s answered %s from %s%s",
            job.handler,
            message_sid,
            mask_number(msg.from_),
            f" (outbox {entry_id})" if entry_id is not None else " with no reply",
        )
        return states.DONE

    def _failed(self, claimed: Claimed, exc: Exception, bot: Bot, rules: RuleSet) -> str | None:
        job, msg = claimed.job, claimed.message
        cause = cause_of(exc)
        failure = failed(exc, conversation=None, bot=bot, rules=rules)
        # The handler's own text may quote the message: only its type is stored and logged on
        # the line, the rest is in the traceback.
        error = str(exc) if cause is exc else f"{job.handler} failed: {type(cause).__name__}"
        finished = self.rows.finish(
            claimed, reply=failure.reply, source=failure.source, error=error
        )
        if finished is None:
            return None
        log.error(
            "slow %s for %s from %s failed (%s); the message is stored, %s",
            job.handler,
            msg.sid,
            mask_number(msg.from_),
            type(cause).__name__,
            "the error reply queued" if not failure.reply.is_empty else "no reply sent",
            # textback's own HandlerErrors (the handler is gone) need no traceback.
            exc_info=None if cause is exc and isinstance(exc, HandlerError) else cause,
        )
        entry_id, _ = finished
        if entry_id is not None:
            self._enqueue_reply(entry_id)
        return states.FAILED

    def _enqueue_reply(self, entry_id: int) -> None:
        try:
            self.outbox.enqueue(entry_id)
        except Exception as exc:  # the row is committed: the outbox's sweep queues it
            log.warning("outbox %d not queued (%s); the outbox's sweep will", entry_id, exc)


def _fitted(message_sid: str, decision: Decision) -> Decision:
    """The decision with its reply cut to Twilio's limit, as an inline reply is."""
    cut = cut_to_limit(decision)
    if cut is None:
        return decision
    text = decision.reply.text
    log.warning(
        "the slow reply to %s (%s) is %s; cut", message_sid, decision.source, too_long(text)
    )
    return cut


class Heartbeat:
    """While the block runs, ``touch`` every ``every`` seconds from a thread of its own (so a
    live worker's job never looks stale, however long its handler takes)."""

    def __init__(self, touch: Callable[[], bool], every: float) -> None:
        self.touch = touch
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="slow-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stopped.set()
        self.thread.join()

    def _beat(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                if not self.touch():
                    return  # taken by another worker: nothing more to say
            except Exception as exc:  # the database hiccupped: try again at the next beat
                log.debug("slow job heartbeat failed: %s", exc)
