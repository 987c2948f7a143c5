"""Decide the answer to one message: carrier commands first, then the bot. No I/O here.

The store loads what is known about the contact, calls ``decide``, and commits what it returns.
The order: carrier commands (STOP, HELP, and START from an opted-out contact; from anyone else
START/YES/UNSTOP are ordinary messages) → silence for an opted-out contact → silence for a
contact a person has taken over (their message waits for that person) → the leave
word of an open conversation → a flow trigger restarting or switching flows → the open flow's
step (or the Python state's handler) → Python handlers → flow triggers → the rules file's rules
→ the default. docs/conversations.md explains it for users.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from datetime import timedelta

from textback.core import flows
from textback.core.body_length import cut_to_fit
from textback.core.bot import Bot
from textback.core.bot import Outcome
from textback.core.bot import Route
from textback.core.conversation import Conversation
from textback.core.flows import LEAVE
from textback.core.flows import Flow
from textback.core.flows import Timer
from textback.core.matchers import Keyword
from textback.core.message import END
from textback.core.message import Inbound
from textback.core.message import Reply
from textback.core.optout import Carrier
from textback.core.optout import Command
from textback.core.profile import ContactProfile
from textback.core.ruleset import RuleSet
from textback.errors import failed_in

_TWILIO_OPT_OUT_TYPES = {"STOP": Command.STOP, "START": Command.START, "HELP": Command.HELP}
TWILIO_ANSWERS = Carrier()  # the default: Twilio's own opt-out handling answers
TAKEN_OVER = "taken over"  # the source of a message left for the person who took over


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer and what it changes: opt-out status and the contact's conversation.

    ``conversation`` is the open conversation after this message, or None when there is none.
    ``ended`` is the status the conversation open before this message ended with ("completed",
    "stopped", "left", "ended", "expired"), None when it goes on (or there was none); a new
    conversation may then start in the same message. ``ended_values`` are the ended run's final
    values (None: as stored). ``expire_after`` is the idle time after which ``conversation`` is
    forgotten. ``waits_for_person`` is true for a message the bot left unanswered because a
    person took the contact over: it waits for their reply. ``contact_changes`` are the
    contact's values a flow's answer changed (``save_to``; names as ContactProfile.value takes
    them: ``name``, ``fields.city``). ``timers`` replace the open run's timers (a flow
    question's reminder and expiry message); None leaves them as they are. A run that ends
    loses its timers.

    ``deferred`` names the slow handler that answers in a worker (its source, like ``handler
    report``); ``reply`` is then its acknowledgement. The store records the owed job with the
    message, and the service queues it after the commit.
    """

    reply: Reply
    source: str
    conversation: Conversation | None
    opt_out: bool | None = None
    ended: str | None = None
    ended_values: dict[str, str] | None = None
    expire_after: timedelta | None = None
    waits_for_person: bool = False
    contact_changes: dict[str, str] | None = None
    deferred: str | None = None
    timers: tuple[Timer, ...] | None = None


def cut_to_limit(decision: Decision) -> Decision | None:
    """The decision with its reply cut to Twilio's limit (Twilio would refuse it whole), or
    None when it fits; the caller logs the cut."""
    reply = decision.reply
    fitted = cut_to_fit(reply.text)
    if fitted == reply.text:
        return None
    return replace(decision, reply=Reply(fitted, reply.media, state=reply.state))


def failed(
    error: Exception, *, conversation: Conversation | None, bot: Bot, rules: RuleSet
) -> Decision:
    """The Decision when answering failed (a handler raised, or returned no reply).

    The contact gets the error reply (the rules file's ``[default] error_reply``, else the
    Bot's ``error_reply``; none when both are empty); the opt-out status and the conversation
    stay as they were, so they can try again. The source names what failed
    (``error: handler order``).
    """
    what = failed_in(error)
    return Decision(Reply(rules.error_reply or bot.error_reply), f"error: {what}", conversation)


def carrier_command(
    msg: Inbound, rules: RuleSet, *, opted_out: bool
) -> tuple[Command | None, bool]:
    """The carrier command a message is, and whether Twilio's Advanced Opt-Out answered it.

    An opt-in word is a command only from a contact who is opted out: from anyone else "yes"
    is an answer to a flow's question or a rule's keyword. Twilio's ``OptOutType`` is always
    one (Twilio has answered it already).
    """
    twilio_type = msg.params.get("OptOutType", "").upper()
    if twilio_type in _TWILIO_OPT_OUT_TYPES:
        return _TWILIO_OPT_OUT_TYPES[twilio_type], True
    command = rules.optout.command(msg.body)
    if command is Command.START and not opted_out:
        return None, False
    return command, False


def decide(
    msg: Inbound,
    *,
    opted_out: bool,
    conversation: Conversation | None,
    bot: Bot,
    rules: RuleSet,
    carrier: Carrier = TWILIO_ANSWERS,
    taken_over: bool = False,
    contact: ContactProfile | None = None,
) -> Decision:
    """The answer to ``msg`` from a contact in the given state (an open, unexpired conversation).

    ``carrier`` says whether Twilio answers carrier commands on this number; when it does, or
    when the webhook carries ``OptOutType``, the command is recorded and answered with nothing.
    ``taken_over``: a person answers this contact (the admin's "Take over"); only carrier
    commands are still handled, anything else gets no reply and waits for them, the open
    conversation untouched.
    ``contact`` is the sender's profile, loaded when the rules or handlers use it.
    """
    command, twilio_answered = carrier_command(msg, rules, opted_out=opted_out)
    if command is not None:
        if twilio_answered or carrier.twilio_answers:
            text = ""
        else:
            text = rules.optout.reply_for(
                command, sender_name=carrier.sender_name, our_number=msg.to
            )
        source = f"optout {command.value}" + (" (answered by Twilio)" if twilio_answered else "")
        if command is Command.STOP:
            ended = "stopped" if conversation is not None else None
            return Decision(Reply(text), source, None, opt_out=True, ended=ended)
        return Decision(
            Reply(text), source, conversation, opt_out=False if command is Command.START else None
        )
    if opted_out:
        return Decision(Reply(""), "opted out", conversation)
    if taken_over:
        return Decision(Reply(""), TAKEN_OVER, conversation, waits_for_person=True)
    if conversation is None:
        near = rules.optout.near_miss(msg.body)
        if near is None:
            return _dispatch(msg, bot, rules, Conversation(), contact, existed=False)
        # A misspelt STOP or HELP never reaches a forgiving keyword, and is never taken as
        # the command: unless something answers it exactly, the contact gets the HELP text,
        # which names the exact words.
        exact = replace(rules, routes=tuple(_unforgiving(route) for route in rules.routes))
        if _answered_exactly(msg, bot, exact):
            return _dispatch(msg, bot, exact, Conversation(), contact, existed=False)
        text = rules.optout.reply_for(
            Command.HELP, sender_name=carrier.sender_name, our_number=msg.to
        )
        return Decision(Reply(text), f"optout near miss of {near.value}", None)
    flow = rules.flow(conversation.flow) if conversation.flow else None
    if conversation.flow and (flow is None or flow.step_of(conversation) is None):
        # The rules file changed under this run: forget it, as if it had expired.
        return _dispatch(msg, bot, rules, Conversation(), contact, existed=False, ended="expired")
    settings = flow.settings if flow is not None else rules.conversations
    if settings.leave.match(msg.body) is not None:
        reply = Reply(flows.fill(settings.leave_reply, msg, {}, contact))
        return Decision(reply, "leave", None, ended="left")
    if flow is None:
        return _python_conversation(msg, bot, rules, conversation.copy(), contact)
    other = _triggered(msg, rules)
    if other is not None:
        return _start(other, msg, contact, ended="left")
    if settings.rule_keywords == LEAVE and _keyword_answers(msg, bot, rules):
        return _dispatch(msg, bot, rules, Conversation(), contact, existed=False, ended="left")
    step = flows.answer(flow, conversation, msg, contact)
    changes = step.contact_changes or None
    if step.completed:
        return Decision(
            step.reply,
            step.source,
            None,
            ended="completed",
            ended_values=step.values,
            contact_changes=changes,
        )
    return Decision(
        step.reply,
        step.source,
        step.conversation,
        expire_after=settings.expire_after,
        contact_changes=changes,
        timers=step.timers,
    )


def _unforgiving(route: Route) -> Route:
    """The route with a forgiving keyword made exact (its own words still answer)."""
    matcher = route.matcher
    if isinstance(matcher, Keyword) and matcher.fuzzy:
        return replace(route, matcher=Keyword(matcher.words))
    return route


def _answered_exactly(msg: Inbound, bot: Bot, rules: RuleSet) -> bool:
    """Whether a handler, a flow trigger or a rule (not a forgiving one) matches ``msg``."""
    routes = (*bot.routes, *rules.routes)
    matched = any(r.matcher is not None and r.matcher.match(msg.body) for r in routes)
    return matched or _triggered(msg, rules) is not None


def _triggered(msg: Inbound, rules: RuleSet) -> Flow | None:
    return next((flow for flow in rules.flows if flow.trigger.match(msg.body)), None)


def _keyword_answers(msg: Inbound, bot: Bot, rules: RuleSet) -> bool:
    """Whether a keyword handler or keyword rule would answer ``msg``."""
    matchers = [route.matcher for route in (*bot.routes, *rules.routes)]
    return any(isinstance(m, Keyword) and m.match(msg.body) is not None for m in matchers)


def _start(
    flow: Flow, msg: Inbound, contact: ContactProfile | None, *, ended: str | None
) -> Decision:
    begun = flows.start(flow, msg, contact)
    return Decision(
        begun.reply,
        begun.source,
        begun.conversation,
        ended=ended,
        expire_after=flow.settings.expire_after,
        timers=begun.timers,
    )


def _python_conversation(
    msg: Inbound,
    bot: Bot,
    rules: RuleSet,
    current: Conversation,
    contact: ContactProfile | None,
) -> Decision:
    if current.state is None:  # values kept by handlers, no state: handlers and rules as usual
        return _dispatch(msg, bot, rules, current, contact, existed=True)
    outcome = bot.dispatch_state(msg, current, contact=contact)
    if outcome is None:  # no handler for this state (any more): end it, answer as usual
        return _dispatch(msg, bot, rules, Conversation(), contact, existed=False, ended="ended")
    return _after(outcome, current, rules, existed=True, ended=None)


def _dispatch(
    msg: Inbound,
    bot: Bot,
    rules: RuleSet,
    current: Conversation,
    contact: ContactProfile | None,
    *,
    existed: bool,
    ended: str | None = None,
) -> Decision:
    """Handlers, then flow triggers, then rules and the default, with no state handler."""
    outcome = bot.dispatch_handlers(msg, current, contact=contact)
    if outcome is None:
        flow = _triggered(msg, rules)
        if flow is not None:
            return _start(flow, msg, contact, ended="left" if existed else ended)
        outcome = bot.dispatch_rules(
            msg, current, rules=rules.routes, default=rules.default, contact=contact
        )
    return _after(outcome, current, rules, existed=existed, ended=ended)


def slow_decision(
    outcome: Outcome, conversation: Conversation, rules: RuleSet, *, existed: bool
) -> Decision:
    """What a slow handler's answer (``Bot.run_slow``) changes, decided as an inline answer
    is: ``conversation`` is the one the handler was given (it may have written its values),
    ``existed`` whether it was an open conversation. The returned state is applied the same
    way (a str enters that state, END ends it)."""
    answered = Outcome(outcome.reply, outcome.source)
    return _after(answered, conversation, rules, existed=existed, ended=None)


def changes_conversation(decision: Decision, before: Conversation | None) -> bool:
    """Whether storing ``decision`` would change the conversation that was ``before``."""
    if decision.ended is not None:
        return True
    after = decision.conversation
    if after is None or before is None:
        return (after is None) != (before is None)
    return (after.state, after.values, after.flow) != (before.state, before.values, before.flow)


def _after(
    outcome: Outcome, current: Conversation, rules: RuleSet, *, existed: bool, ended: str | None
) -> Decision:
    """The Decision for a handler's or rule's answer: the state it returned is applied.

    A deferred answer (a slow handler's acknowledgement) changes nothing here: the conversation
    goes on as it was, and the worker applies what the handler returns.
    """
    reply, source = outcome.reply, outcome.source
    if outcome.deferred:
        going_on = current if existed or current.values else None
        return Decision(
            reply,
            source,
            going_on,
            ended=ended,
            expire_after=rules.conversations.expire_after,
            deferred=source,
        )
    state = reply.state
    if state is not None:
        reply = Reply(reply.text, reply.media)
    if state is END:
        if existed:
            return Decision(reply, source, None, ended="ended", ended_values=current.values)
        return Decision(reply, source, None, ended=ended)
    after: Conversation | None = None
    if isinstance(state, str):
        after = Conversation(state, current.values)
    elif existed or current.values:
        after = current
    expire_after = rules.conversations.expire_after
    return Decision(reply, source, after, ended=ended, expire_after=expire_after)
