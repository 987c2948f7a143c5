"""Textback: one app's bot, rules, store and signature checker, and the answer to a message.

This is what the web layer calls; it holds no Flask objects, so it is tested without a server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import Connection

from textback import metrics
from textback.channel.signature import SignatureChecker
from textback.channel.twiml import render
from textback.config import Settings
from textback.core.body_length import body_length
from textback.core.body_length import too_long
from textback.core.bot import Bot
from textback.core.message import Inbound
from textback.core.optout import Carrier
from textback.core.responder import Decision
from textback.core.responder import cut_to_limit
from textback.core.responder import decide
from textback.core.responder import failed
from textback.core.ruleset import RuleSet
from textback.core.text import mask_number
from textback.errors import cause_of
from textback.errors import failed_in
from textback.storage.inbound import ContactState
from textback.storage.inbound import Decided
from textback.storage.store import Store

if TYPE_CHECKING:
    from textback.outbound.slow import SlowHandlers

log = logging.getLogger(__name__)


def carrier_of(settings: Settings) -> Carrier:
    """How carrier commands are answered, from TEXTBACK_CARRIER_REPLIES and TEXTBACK_SENDER_NAME."""
    return Carrier(
        twilio_answers=settings.carrier_replies == "twilio",
        sender_name=settings.sender_name,
    )


@dataclass
class Textback:
    """Everything one app needs to answer messages; lives in ``app.extensions["textback"]``."""

    settings: Settings
    bot: Bot
    rules: RuleSet
    store: Store
    checker: SignatureChecker | None

    @cached_property
    def carrier(self) -> Carrier:
        """Who answers STOP, START and HELP on this number (TEXTBACK_CARRIER_REPLIES)."""
        return carrier_of(self.settings)

    @cached_property
    def slow(self) -> SlowHandlers:
        """Slow handlers' jobs on the outbox's queue (made when a slow handler first answers;
        ``textback run``'s embedded worker runs them on the same queue). The queue (huey) and
        the twilio client load here, not at every start."""
        from textback.outbound.outbox import Outbox
        from textback.outbound.slow import SlowHandlers

        return SlowHandlers(Outbox(self.settings, self.store), lambda: (self.bot, self.rules))

    @staticmethod
    def status_callback_url(base: str | None, inbound_sid: str) -> str | None:
        """Where Twilio reports the delivery of our reply: ``base`` is this server's public
        address with its mount prefix (see web.webhook.public_base), None when unknown."""
        if not base:
            return None
        return f"{base}/twilio/status?for={quote(inbound_sid, safe='')}"

    def answer(self, msg: Inbound, public_base: str | None = None) -> str:
        """The TwiML answering ``msg``, stored with it; a repeated MessageSid gets the same.

        ``public_base`` is where Twilio reaches this server; with it, the reply asks Twilio to
        report its delivery to ``/twilio/status``. A handler that fails does not lose the
        message: it is stored with the source ``error: <handler>``, the error is logged with its
        traceback, and the contact gets the error reply (none by default).
        """
        result = self.answer_many([(msg, public_base)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def answer_many(self, batch: Sequence[tuple[Inbound, str | None]]) -> list[str | Exception]:
        """Answer several messages (each with its ``public_base``) as ``answer`` does, stored
        in one transaction (a group commit); for each, its TwiML, or the exception that kept it
        from being stored (the database's: a handler's own failure is answered, see above)."""
        answering = [
            _Answering(self, msg, self.status_callback_url(base, msg.sid)) for msg, base in batch
        ]
        started = time.perf_counter()
        try:
            results = self.store.record_inbound_many(
                [(one.msg, one.decide_and_render) for one in answering],
                with_profile=self.wants_profile,
            )
        finally:
            # Logged outside the transaction (formatting a traceback need not hold the lock).
            for one in answering:
                one.log_failures()
        seconds = time.perf_counter() - started
        answers: list[str | Exception] = []
        counts: dict[tuple[str, str], int] = {}  # (outcome, reply kind): counted once a batch
        for one, result in zip(answering, results, strict=True):
            if isinstance(result, Exception):
                answers.append(result)
            else:
                answers.append(self._answered(one, *result, seconds, counts))
        for (outcome, kind), count in counts.items():
            metrics.WEBHOOKS.labels(outcome).inc(count)
            if kind:
                metrics.REPLIES.labels(kind).inc(count)
        return answers

    def _answered(
        self,
        one: _Answering,
        twiml: str,
        new: bool,
        seconds: float,
        counts: dict[tuple[str, str], int],
    ) -> str:
        """Log a message stored (or found stored) with ``twiml`` and add it to ``counts``; the
        TwiML to send."""
        msg = one.msg
        if new and one.deferred:
            self._queue_slow(msg)
        metrics.ANSWER_SECONDS.observe(seconds)
        outcome = "answered" if new else "duplicate"
        kind = metrics.source_kind(one.source) if new and one.source else None
        counted = (outcome, kind or "")
        counts[counted] = counts.get(counted, 0) + 1
        # Fields for TEXTBACK_LOG_FORMAT=json; the number masked, never the body.
        fields = {
            "sid": msg.sid,
            "number": mask_number(msg.from_),
            "outcome": outcome,
            "source": kind,
            "duration_ms": round(seconds * 1000, 2),
        }
        if new:
            if not one.failures:
                log.info("answered %s from %s", msg.sid, fields["number"], extra=fields)
        elif not twiml:
            # The SID belongs to a message we sent (one of our numbers texting another): it is
            # in the log already, and answering it could start two bots talking to each other.
            log.warning("%s is a message this server sent; not answered again", msg.sid)
            twiml = render(None)
        else:
            log.info("replayed the stored answer to %s", msg.sid, extra=fields)
        return twiml

    def _queue_slow(self, msg: Inbound) -> None:
        """Queue the slow handler's job, committed with the message; if the queue does not
        take it, the sweep queues it later (the job is in the database)."""
        try:
            self.slow.enqueue(msg.sid)
        except Exception as exc:
            log.warning(
                "slow handler for %s not queued (%s); the sweep will queue it", msg.sid, exc
            )

    def decision_for(
        self, msg: Inbound, state: ContactState, failures: list[Exception]
    ) -> Decision:
        """The responder's decision for ``msg`` from a sender in ``state``, its reply cut to
        Twilio's limit; when a handler raises, the error reply, and the exception is added to
        ``failures`` (logged by the caller, outside the transaction). The webhook and the
        journal's replay both decide with this."""
        try:
            return self._fitted(
                msg,
                decide(
                    msg,
                    opted_out=state.opted_out,
                    conversation=state.conversation,
                    bot=self.bot,
                    rules=self.rules,
                    carrier=self.carrier,
                    taken_over=state.taken_over,
                    contact=state.profile,
                ),
            )
        except Exception as exc:  # the message is stored whatever a handler does
            failures.append(exc)
            return failed(exc, conversation=state.conversation, bot=self.bot, rules=self.rules)

    @property
    def wants_profile(self) -> bool:
        """Whether answering needs the sender's profile (a template or handler names the
        contact): it costs a statement, so it is read only then."""
        return self.rules.wants_contact or self.bot.wants_contact

    @staticmethod
    def _fitted(msg: Inbound, decision: Decision) -> Decision:
        """The decision with its reply cut to Twilio's limit: Twilio would refuse it whole."""
        cut = cut_to_limit(decision)
        if cut is None:
            return decision
        log.warning(
            "the reply to %s (%s) is %s; cut to %s characters",
            msg.sid,
            decision.source,
            too_long(decision.reply.text),
            f"{body_length(cut.reply.text):,}",
        )
        return cut


class _Answering:
    """One message being answered: what decides its reply inside the transaction, and what
    that left to log and count afterwards."""

    __slots__ = ("callback", "deferred", "failures", "msg", "service", "source")

    def __init__(self, service: Textback, msg: Inbound, callback: str | None) -> None:
        self.service = service
        self.msg = msg
        self.callback = callback
        self.failures: list[Exception] = []
        self.source: str | None = None  # the decision's source, for the replies metric
        self.deferred: str | None = None  # a slow handler owed to the message

    def decide_and_render(self, _connection: Connection, state: ContactState) -> Decided:
        """The decision for the message and its TwiML (called again, from scratch, if the
        first transaction was rolled back)."""
        service = self.service
        self.failures.clear()
        decision = service.decision_for(self.msg, state, self.failures)
        try:
            twiml = render(decision.reply, self.callback if not decision.reply.is_empty else None)
        except Exception as exc:  # the message is stored whatever a handler returned
            self.failures.append(exc)
            decision = failed(
                exc, conversation=state.conversation, bot=service.bot, rules=service.rules
            )
            twiml = render(decision.reply, self.callback if not decision.reply.is_empty else None)
        self.source = decision.source
        self.deferred = decision.deferred
        return Decided(decision, twiml)

    def log_failures(self) -> None:
        """Log each handler failure with its traceback; its message is the handler author's
        text (it may quote the message), so it is in the traceback only."""
        service = self.service
        for exc in self.failures:
            cause = cause_of(exc)
            log.error(
                "answering %s from %s failed in %s (%s); the message is stored, %s",
                self.msg.sid,
                mask_number(self.msg.from_),
                failed_in(exc),
                type(cause).__name__,
                "the error reply sent"
                if service.rules.error_reply or service.bot.error_reply
                else "no reply sent",
                exc_info=cause,
            )
