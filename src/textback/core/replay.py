"""What another rules file or bot would have answered: stored messages decided again. No I/O.

``textback replay`` loads the stored history (queries.history) and calls :func:`replay`. Each
contact's messages are decided again in the order they came, from the first one stored, with
the state the new rules themselves produce (opt-outs, conversations and their expiry), so a
changed flow is judged on the conversation it would really have had. Only the messages inside
the reported window are compared; the earlier ones just build the state.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from textback.core.bot import Bot
from textback.core.conversation import Conversation
from textback.core.message import Inbound
from textback.core.optout import Carrier
from textback.core.profile import ContactProfile
from textback.core.responder import TAKEN_OVER
from textback.core.responder import TWILIO_ANSWERS
from textback.core.responder import Decision
from textback.core.responder import decide
from textback.core.ruleset import RuleSet
from textback.errors import cause_of


@dataclass(frozen=True, slots=True)
class Exchange:
    """One stored inbound message and what it was answered at the time."""

    msg: Inbound
    received_at: datetime
    text: str
    media: tuple[str, ...]
    source: str


class Change(enum.Enum):
    """How the new answer differs from the stored one."""

    REPLY = "other reply"
    ANSWERED = "now answered"
    SILENCED = "now silent"
    SOURCE = "same reply, other source"
    ERROR = "handler error"


@dataclass(frozen=True, slots=True)
class Difference:
    """A message the new rules answer differently."""

    old: Exchange
    change: Change
    text: str
    media: tuple[str, ...]
    source: str


@dataclass(slots=True)
class _ContactState:
    opted_out: bool = False
    conversation: Conversation | None = None
    expires_at: datetime | None = None

    def open_conversation(self, at: datetime) -> Conversation | None:
        if self.conversation is not None and self.expires_at is not None and at >= self.expires_at:
            self.conversation = None  # expired before this message, as the store would find it
        return self.conversation.copy() if self.conversation is not None else None

    def apply(self, decision: Decision, at: datetime) -> None:
        if decision.opt_out is not None:
            self.opted_out = decision.opt_out
        if decision.conversation is None:
            self.conversation, self.expires_at = None, None
            return
        self.conversation = decision.conversation
        if decision.expire_after is not None:
            self.expires_at = at + decision.expire_after


def _change(old: Exchange, text: str, media: tuple[str, ...], source: str) -> Change | None:
    if (old.text, old.media) == (text, media):
        return None if old.source == source else Change.SOURCE
    if not old.text and not old.media:
        return Change.ANSWERED
    if not text and not media:
        return Change.SILENCED
    return Change.REPLY


def _contact(exchange: Exchange) -> tuple[str, str]:
    return exchange.msg.to, exchange.msg.from_


def replay(
    history: Iterable[Exchange],
    *,
    bot: Bot,
    rules: RuleSet,
    report: Callable[[Exchange], bool] = lambda exchange: True,
    carrier: Carrier = TWILIO_ANSWERS,
    profiles: Mapping[str, ContactProfile] | None = None,
) -> Iterator[tuple[Exchange, Difference | None]]:
    """Decide every exchange again; yield each reported one with its difference (None: same).

    ``carrier`` is who answers carrier commands, as the server was set up
    (TEXTBACK_CARRIER_REPLIES): otherwise every STOP would differ. ``profiles`` are the
    contacts' profiles by number (as they are now: what a flow saved to them is there from the
    first message), for rules and handlers that name the contact; None: not loaded.

    ``history`` must be ordered by contact (our number, their number), then by time. A handler
    that raises is reported as a ``Change.ERROR`` carrying the exception, and the contact's
    state is left as it was.
    """
    for _, exchanges in groupby(history, key=_contact):
        state = _ContactState()
        contact: ContactProfile | None = None
        for old in exchanges:
            if profiles is not None and contact is None:
                contact = profiles.get(old.msg.from_) or ContactProfile(old.msg.from_)
            conversation = state.open_conversation(old.received_at)
            try:
                decision = decide(
                    old.msg,
                    opted_out=state.opted_out,
                    conversation=conversation,
                    bot=bot,
                    rules=rules,
                    carrier=carrier,
                    # A person answered it then: the new rules would have stayed silent too.
                    taken_over=old.source == TAKEN_OVER,
                    contact=contact,
                )
            except Exception as exc:  # user code: report it, go on with the next message
                if report(old):
                    # A HandlerError names the handler; what it raised is its cause.
                    cause = cause_of(exc)
                    error = f"{type(cause).__name__}: {cause}"
                    yield old, Difference(old, Change.ERROR, "", (), error)
                continue
            state.apply(decision, old.received_at)
            if contact is not None and decision.contact_changes:
                contact = contact.changed(decision.contact_changes)
            if not report(old):
                continue
            reply = decision.reply
            text, media = reply.text, tuple(reply.media)
            change = _change(old, text, media, decision.source)
            yield (
                old,
                (None if change is None else Difference(old, change, text, media, decision.source)),
            )
