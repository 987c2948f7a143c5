"""Textback: one app's bot, rules, store and signature checker, and the answer to a message.

This is what the web layer calls; it holds no Flask objects, so it is tested without a server.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote

from sqlalchemy import Connection

from textback import metrics
from textback.channel.signature import SignatureChecker
from textback.channel.twiml import render
from textback.config import Settings
from textback.core.bot import Bot
from textback.core.message import Inbound
from textback.core.optout import Carrier
from textback.core.responder import decide
from textback.core.ruleset import RuleSet
from textback.core.text import mask_number
from textback.storage.inbound import ContactState
from textback.storage.inbound import Decided
from textback.storage.store import Store

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
        report its delivery to ``/twilio/status``.
        """
        callback = self.status_callback_url(public_base, msg.sid)
        sources: list[str] = []  # the decision's source, for the replies metric

        def decide_and_render(_connection: Connection, state: ContactState) -> Decided:
            decision = decide(
                msg,
                opted_out=state.opted_out,
                conversation=state.conversation,
                bot=self.bot,
                rules=self.rules,
                carrier=self.carrier,
            )
            reply = decision.reply
            sources.append(decision.source)
            return Decided(decision, render(reply, callback if not reply.is_empty else None))

        started = time.perf_counter()
        twiml, new = self.store.record_inbound(msg, decide_and_render)
        metrics.ANSWER_SECONDS.observe(time.perf_counter() - started)
        metrics.WEBHOOKS.labels("answered" if new else "duplicate").inc()
        if new and sources:
            metrics.REPLIES.labels(metrics.source_kind(sources[-1])).inc()
        if new:
            log.info("answered %s from %s", msg.sid, mask_number(msg.from_))
        elif not twiml:
            # The SID belongs to a message we sent (one of our numbers texting another): it is
            # in the log already, and answering it could start two bots talking to each other.
            log.warning("%s is a message this server sent; not answered again", msg.sid)
            twiml = render(None)
        else:
            log.info("replayed the stored answer to %s", msg.sid)
        return twiml
