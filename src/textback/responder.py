"""Decide the answer to one message: carrier commands first, then the bot. No I/O here.

The store loads what is known about the contact, calls ``decide``, and commits what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bot import Bot
from .conversation import Conversation
from .message import END
from .message import Inbound
from .message import Reply
from .optout import Command
from .rules import RuleSet

_TWILIO_OPT_OUT_TYPES = {"STOP": Command.STOP, "START": Command.START, "HELP": Command.HELP}


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer and what it changes: opt-out status and the contact's conversation.

    ``conversation`` is the conversation after this message, or None when it ended (or there
    was none and none started).
    """

    reply: Reply
    source: str
    conversation: Conversation | None
    opt_out: bool | None = None


def carrier_command(msg: Inbound, rules: RuleSet) -> tuple[Command | None, bool]:
    """The carrier command a message is, and whether Twilio's Advanced Opt-Out answered it."""
    twilio_type = msg.params.get("OptOutType", "").upper()
    if twilio_type in _TWILIO_OPT_OUT_TYPES:
        return _TWILIO_OPT_OUT_TYPES[twilio_type], True
    return rules.optout.command(msg.body), False


def decide(
    msg: Inbound,
    *,
    opted_out: bool,
    conversation: Conversation | None,
    bot: Bot,
    rules: RuleSet,
) -> Decision:
    """The answer to ``msg`` from a contact in the given state."""
    command, twilio_answered = carrier_command(msg, rules)
    if command is not None:
        text = "" if twilio_answered else rules.optout.reply_for(command)
        source = f"optout {command.value}" + (" (answered by Twilio)" if twilio_answered else "")
        if command is Command.STOP:
            return Decision(Reply(text), source, None, opt_out=True)
        return Decision(
            Reply(text), source, conversation, opt_out=False if command is Command.START else None
        )
    if opted_out:
        return Decision(Reply(""), "opted out", conversation)
    current = conversation if conversation is not None else Conversation()
    outcome = bot.dispatch(msg, conversation=current, rules=rules.routes, default=rules.default)
    reply = outcome.reply
    after: Conversation | None = current
    if reply.state is END:
        after = None
    elif isinstance(reply.state, str):
        after = Conversation(reply.state, current.values)
    elif conversation is None and not current.values:
        after = None
    if reply.state is not None:
        reply = Reply(reply.text, reply.media)
    return Decision(reply, outcome.source, after)
