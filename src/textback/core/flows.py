"""Rules-file flows at run time: start a flow, take an answer, move to the next step. No I/O here.

A file flow's run is a ``Conversation`` whose ``flow`` is the flow's name and whose ``state`` is
``"<flow name>:<step number>"`` (1-based): the step whose question the contact was last asked.
The store keeps it in ``flow_runs``; ``responder.decide`` calls these functions.

A step goes on to the next step in file order, to its ``next``, or, when it has branches, to the
first branch that takes the answer (a keyword, a pattern, a number range), else to ``other``;
without ``other`` an answer no branch takes is asked again. Each question asked comes with its
timers (a reminder, the expiry message): the store writes them as scheduled outbox rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta

from textback.core.conversation import Conversation
from textback.core.matchers import Keyword
from textback.core.message import Inbound
from textback.core.message import Reply
from textback.core.profile import ContactProfile
from textback.core.profile import value_problem
from textback.core.templates import Template

# What a rule keyword arriving mid-flow does (``rule_keywords`` in the rules file).
ANSWER = "answer"
LEAVE = "leave"

DEFAULT_LEAVE_WORDS = ("exit",)
DEFAULT_LEAVE_REPLY = "OK, we've stopped here. Text the same keyword again any time to start over."
DEFAULT_EXPIRE_AFTER = timedelta(hours=24)

# Where a branch, ``next`` or ``other`` may go besides a step: the end of the flow.
DONE = 0
DONE_NAME = "done"

# The kinds of timer a question comes with.
REMIND = "remind"
EXPIRE = "expire"

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class ConversationSettings:
    """The rules file's ``[conversations]`` table: how open conversations are left or forgotten."""

    leave: Keyword = field(default_factory=lambda: Keyword(DEFAULT_LEAVE_WORDS))
    leave_reply: Template = field(default_factory=lambda: Template(DEFAULT_LEAVE_REPLY, ()))
    expire_after: timedelta = DEFAULT_EXPIRE_AFTER
    rule_keywords: str = ANSWER


@dataclass(frozen=True)
class Between:
    """A number range, both ends included: takes an answer whose first number is in it
    ("4", "4 stars", "about 4.5"), as RapidPro's "has a number between" does."""

    low: float
    high: float

    def takes(self, text: str) -> bool:
        found = _NUMBER.search(text)
        return found is not None and self.low <= float(found.group()) <= self.high

    def describe(self) -> str:
        return f"between {self.low:g} and {self.high:g}"


@dataclass(frozen=True)
class Branch:
    """Where a step goes when its test takes the answer: ``goto`` is a step number or DONE.

    The test is exactly one of: ``keywords`` (the whole answer is one of them, matched like a
    rule's keyword), ``pattern`` (a regex searched in the answer, ignoring case), ``between``.
    """

    goto: int
    keywords: Keyword | None = None
    pattern: re.Pattern[str] | None = None
    between: Between | None = None

    def takes(self, text: str) -> bool:
        """Whether the (stripped, non-empty) answer ``text`` goes this way."""
        if self.keywords is not None:
            return self.keywords.match(text) is not None
        if self.pattern is not None:
            return self.pattern.search(text) is not None
        assert self.between is not None
        return self.between.takes(text)


@dataclass(frozen=True)
class Step:
    """One question of a flow, what makes an answer to it acceptable, and where it goes next.

    ``save_to`` names the contact's value the answer is also saved to (``name``,
    ``language``, ``timezone`` or ``fields.city``, as ContactProfile.value takes them); an
    answer that cannot be that value (a language that is not a code) is not accepted.

    ``next`` is the step number (or DONE) an accepted answer goes to when the step has no
    branches; with branches, the first that takes the answer decides, else ``other`` (None:
    the step is asked again, as for an answer ``expect`` refuses). ``remind_after``: the
    ``remind`` text (default: the question again) is sent once if no answer came by then.
    """

    ask: Template
    save: str
    media: tuple[Template, ...] = ()
    expect: re.Pattern[str] | None = None
    retry: Template | None = None
    save_to: str | None = None
    name: str | None = None
    next: int = DONE
    branches: tuple[Branch, ...] = ()
    other: int | None = None
    remind_after: timedelta | None = None
    remind: Template | None = None

    def goes_to(self, text: str) -> int | None:
        """The step number (or DONE) an accepted answer goes to; None: ask again."""
        if not self.branches:
            return self.next
        taken = next((branch for branch in self.branches if branch.takes(text)), None)
        return taken.goto if taken is not None else self.other

    def exits(self) -> tuple[int, ...]:
        """Every step number (or DONE) an answer to this step can lead to."""
        if not self.branches:
            return (self.next,)
        gotos = [branch.goto for branch in self.branches]
        return tuple(dict.fromkeys([*gotos, *([self.other] if self.other is not None else [])]))

    def label(self, number: int) -> str:
        """How messages name the step: ``step 2 ('rate')``."""
        return f"step {number}" + (f" ({self.name!r})" if self.name else "")

    def accepts(self, answer: str) -> bool:
        """Whether ``answer`` (stripped) answers this step."""
        if not answer or (self.expect is not None and not self.expect.search(answer)):
            return False
        return self.save_to is None or value_problem(self.save_to, answer) is None

    def templates(self) -> Iterator[Template]:
        """The step's texts: its question, its pictures, its retry and its reminder."""
        yield self.ask
        yield from self.media
        if self.retry is not None:
            yield self.retry
        if self.remind is not None:
            yield self.remind


@dataclass(frozen=True)
class Flow:
    """A ``[[flow]]`` of the rules file, validated; ``settings`` holds its own or the defaults."""

    name: str
    trigger: Keyword
    steps: tuple[Step, ...]
    done: Template
    done_media: tuple[Template, ...] = ()
    settings: ConversationSettings = field(default_factory=ConversationSettings)
    expired: Template | None = None

    def templates(self) -> Iterator[tuple[str, Template]]:
        """Every text of the flow, with where it is (``step 2``, ``done``, ``leave_reply``)."""
        for number, step in enumerate(self.steps, start=1):
            for template in step.templates():
                yield f"step {number}", template
        yield "done", self.done
        for template in self.done_media:
            yield "done", template
        if self.expired is not None:
            yield "expired", self.expired
        yield "leave_reply", self.settings.leave_reply

    def state(self, number: int) -> str:
        """The stored state of a run waiting for the answer to step ``number`` (1-based)."""
        return f"{self.name}:{number}"

    def step_of(self, conversation: Conversation) -> int | None:
        """The step number ``conversation`` waits on, or None if it no longer fits this flow."""
        prefix, _, number = (conversation.state or "").rpartition(":")
        if prefix != self.name or not number.isdigit():
            return None
        step = int(number)
        return step if 1 <= step <= len(self.steps) else None


@dataclass(frozen=True)
class Timer:
    """A message to send ``after`` the question unless the contact answers first: the step's
    reminder (REMIND) or the flow's expiry message (EXPIRE, which also ends the run)."""

    kind: str
    after: timedelta
    reply: Reply
    source: str


@dataclass(frozen=True)
class FlowOutcome:
    """A flow's answer: the reply, the run after it (None when completed), the values, what
    the answer changes in the contact's profile (``save_to``), and the timers of the question
    asked (none when completed)."""

    reply: Reply
    source: str
    conversation: Conversation | None
    values: dict[str, str]
    completed: bool = False
    contact_changes: dict[str, str] = field(default_factory=dict)
    timers: tuple[Timer, ...] = ()


def fill(
    template: Template,
    msg: Inbound,
    values: Mapping[str, str],
    contact: ContactProfile | None = None,
) -> str:
    """A template filled with saved values, the message's ``{from}``, ``{to}``, ``{body}``
    and the contact's ``{contact.…}`` (a contact not loaded is one with no profile). A saved
    name that no step on the way saved (a branch skipped it) fills in as nothing."""
    if template.uses_contact and contact is None:
        contact = ContactProfile(msg.from_)
    blanks = dict.fromkeys(template.fields, "")
    return template.fill(
        {**blanks, **values, "from": msg.from_, "to": msg.to, "body": msg.body}, contact
    )


def _reply(
    text: Template,
    media: tuple[Template, ...],
    msg: Inbound,
    values: Mapping[str, str],
    contact: ContactProfile | None,
) -> Reply:
    return Reply(fill(text, msg, values, contact), [fill(m, msg, values, contact) for m in media])


def _asked(
    flow: Flow,
    number: int,
    msg: Inbound,
    values: dict[str, str],
    contact: ContactProfile | None,
    *,
    retry: bool,
    changes: dict[str, str] | None = None,
) -> FlowOutcome:
    """The outcome of asking step ``number`` (again, with its ``retry`` text, when ``retry``),
    with the question's timers."""
    step = flow.steps[number - 1]
    text = step.retry if retry and step.retry is not None else step.ask
    timers = []
    if step.remind_after is not None:
        media = () if step.remind is not None else step.media
        remind = _reply(step.remind or step.ask, media, msg, values, contact)
        source = f"flow {flow.name} step {number} remind"
        timers.append(Timer(REMIND, step.remind_after, remind, source))
    if flow.expired is not None:
        expired = _reply(flow.expired, (), msg, values, contact)
        timers.append(
            Timer(EXPIRE, flow.settings.expire_after, expired, f"flow {flow.name} expired")
        )
    return FlowOutcome(
        _reply(text, step.media, msg, values, contact),
        f"flow {flow.name} step {number}" + (" retry" if retry else ""),
        Conversation(flow.state(number), values, flow=flow.name),
        values,
        contact_changes=changes or {},
        timers=tuple(timers),
    )


def start(flow: Flow, msg: Inbound, contact: ContactProfile | None = None) -> FlowOutcome:
    """A new run of ``flow``: ask its first question."""
    return _asked(flow, 1, msg, {}, contact, retry=False)


def answer(
    flow: Flow, conversation: Conversation, msg: Inbound, contact: ContactProfile | None = None
) -> FlowOutcome:
    """Take ``msg`` as the answer to the step ``conversation`` waits on.

    An empty answer, or one the step's ``expect`` doesn't find (or that cannot be the contact
    value its ``save_to`` names), gets the step's ``retry`` text (or its question again) and
    the run stays on that step. An answer saved to the contact is in ``contact_changes``, and
    the next question already sees it.
    """
    number = flow.step_of(conversation)
    assert number is not None, "responder.decide checks the step first"
    step = flow.steps[number - 1]
    values = dict(conversation.values)
    text = msg.body.strip()
    goto = step.goes_to(text) if text else None
    if goto is None or not step.accepts(text):
        return _asked(flow, number, msg, values, contact, retry=True)
    values[step.save] = text
    changes = {step.save_to: text} if step.save_to is not None else {}
    if changes:
        contact = (contact or ContactProfile(msg.from_)).changed(changes)
    if goto != DONE:
        return _asked(flow, goto, msg, values, contact, retry=False, changes=changes)
    reply = _reply(flow.done, flow.done_media, msg, values, contact)
    return FlowOutcome(
        reply, f"flow {flow.name} done", None, values, completed=True, contact_changes=changes
    )
