"""Rules-file flows at run time: start a flow, take an answer, move to the next step. No I/O here.

A file flow's run is a ``Conversation`` whose ``flow`` is the flow's name and whose ``state`` is
``"<flow name>:<step number>"`` (1-based): the step whose question the contact was last asked.
The store keeps it in ``flow_runs``; ``responder.decide`` calls these functions.
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


@dataclass(frozen=True)
class ConversationSettings:
    """The rules file's ``[conversations]`` table: how open conversations are left or forgotten."""

    leave: Keyword = field(default_factory=lambda: Keyword(DEFAULT_LEAVE_WORDS))
    leave_reply: Template = field(default_factory=lambda: Template(DEFAULT_LEAVE_REPLY, ()))
    expire_after: timedelta = DEFAULT_EXPIRE_AFTER
    rule_keywords: str = ANSWER


@dataclass(frozen=True)
class Step:
    """One question of a flow and what makes an answer to it acceptable.

    ``save_to`` names the contact's value the answer is also saved to (``name``,
    ``language``, ``timezone`` or ``fields.city``, as ContactProfile.value takes them); an
    answer that cannot be that value (a language that is not a code) is not accepted.
    """

    ask: Template
    save: str
    media: tuple[Template, ...] = ()
    expect: re.Pattern[str] | None = None
    retry: Template | None = None
    save_to: str | None = None

    def accepts(self, answer: str) -> bool:
        """Whether ``answer`` (stripped) answers this step."""
        if not answer or (self.expect is not None and not self.expect.search(answer)):
            return False
        return self.save_to is None or value_problem(self.save_to, answer) is None

    def templates(self) -> Iterator[Template]:
        """The step's texts: its question, its pictures and its retry."""
        yield self.ask
        yield from self.media
        if self.retry is not None:
            yield self.retry


@dataclass(frozen=True)
class Flow:
    """A ``[[flow]]`` of the rules file, validated; ``settings`` holds its own or the defaults."""

    name: str
    trigger: Keyword
    steps: tuple[Step, ...]
    done: Template
    done_media: tuple[Template, ...] = ()
    settings: ConversationSettings = field(default_factory=ConversationSettings)

    def templates(self) -> Iterator[tuple[str, Template]]:
        """Every text of the flow, with where it is (``step 2``, ``done``, ``leave_reply``)."""
        for number, step in enumerate(self.steps, start=1):
            for template in step.templates():
                yield f"step {number}", template
        yield "done", self.done
        for template in self.done_media:
            yield "done", template
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
class FlowOutcome:
    """A flow's answer: the reply, the run after it (None when completed), the values, and
    what the answer changes in the contact's profile (``save_to``)."""

    reply: Reply
    source: str
    conversation: Conversation | None
    values: dict[str, str]
    completed: bool = False
    contact_changes: dict[str, str] = field(default_factory=dict)


def fill(
    template: Template,
    msg: Inbound,
    values: Mapping[str, str],
    contact: ContactProfile | None = None,
) -> str:
    """A template filled with saved values, the message's ``{from}``, ``{to}``, ``{body}``
    and the contact's ``{contact.…}`` (a contact not loaded is one with no profile)."""
    if template.uses_contact and contact is None:
        contact = ContactProfile(msg.from_)
    return template.fill({**values, "from": msg.from_, "to": msg.to, "body": msg.body}, contact)


def _ask(
    flow: Flow,
    number: int,
    msg: Inbound,
    values: Mapping[str, str],
    contact: ContactProfile | None,
    *,
    retry: bool,
) -> Reply:
    step = flow.steps[number - 1]
    text = step.retry if retry and step.retry is not None else step.ask
    return Reply(
        fill(text, msg, values, contact), [fill(m, msg, values, contact) for m in step.media]
    )


def start(flow: Flow, msg: Inbound, contact: ContactProfile | None = None) -> FlowOutcome:
    """A new run of ``flow``: ask its first question."""
    return FlowOutcome(
        _ask(flow, 1, msg, {}, contact, retry=False),
        f"flow {flow.name} step 1",
        Conversation(flow.state(1), {}, flow=flow.name),
        {},
    )


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
    if not step.accepts(text):
        return FlowOutcome(
            _ask(flow, number, msg, values, contact, retry=True),
            f"flow {flow.name} step {number} retry",
            conversation,
            values,
        )
    values[step.save] = text
    changes = {step.save_to: text} if step.save_to is not None else {}
    if changes:
        contact = (contact or ContactProfile(msg.from_)).changed(changes)
    if number < len(flow.steps):
        return FlowOutcome(
            _ask(flow, number + 1, msg, values, contact, retry=False),
            f"flow {flow.name} step {number + 1}",
            Conversation(flow.state(number + 1), values, flow=flow.name),
            values,
            contact_changes=changes,
        )
    reply = Reply(
        fill(flow.done, msg, values, contact),
        [fill(m, msg, values, contact) for m in flow.done_media],
    )
    return FlowOutcome(
        reply, f"flow {flow.name} done", None, values, completed=True, contact_changes=changes
    )
