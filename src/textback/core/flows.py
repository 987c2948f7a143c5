"""Rules-file flows at run time: start a flow, take an answer, move to the next step. No I/O here.

A file flow's run is a ``Conversation`` whose ``flow`` is the flow's name and whose ``state`` is
``"<flow name>:<step number>"`` (1-based): the step whose question the contact was last asked.
The store keeps it in ``flow_runs``; ``responder.decide`` calls these functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta

from textback.core.conversation import Conversation
from textback.core.matchers import Keyword
from textback.core.message import Inbound
from textback.core.message import Reply
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
    """One question of a flow and what makes an answer to it acceptable."""

    ask: Template
    save: str
    media: tuple[Template, ...] = ()
    expect: re.Pattern[str] | None = None
    retry: Template | None = None


@dataclass(frozen=True)
class Flow:
    """A ``[[flow]]`` of the rules file, validated; ``settings`` holds its own or the defaults."""

    name: str
    trigger: Keyword
    steps: tuple[Step, ...]
    done: Template
    done_media: tuple[Template, ...] = ()
    settings: ConversationSettings = field(default_factory=ConversationSettings)

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
    """A flow's answer: the reply, the run after it (None when completed), and the values."""

    reply: Reply
    source: str
    conversation: Conversation | None
    values: dict[str, str]
    completed: bool = False


def fill(template: Template, msg: Inbound, values: Mapping[str, str]) -> str:
    """A template filled with saved values and the message's ``{from}``, ``{to}``, ``{body}``."""
    return template.fill({**values, "from": msg.from_, "to": msg.to, "body": msg.body})


def _ask(flow: Flow, number: int, msg: Inbound, values: Mapping[str, str], *, retry: bool) -> Reply:
    step = flow.steps[number - 1]
    text = step.retry if retry and step.retry is not None else step.ask
    return Reply(fill(text, msg, values), [fill(m, msg, values) for m in step.media])


def start(flow: Flow, msg: Inbound) -> FlowOutcome:
    """A new run of ``flow``: ask its first question."""
    return FlowOutcome(
        _ask(flow, 1, msg, {}, retry=False),
        f"flow {flow.name} step 1",
        Conversation(flow.state(1), {}, flow=flow.name),
        {},
    )


def answer(flow: Flow, conversation: Conversation, msg: Inbound) -> FlowOutcome:
    """Take ``msg`` as the answer to the step ``conversation`` waits on.

    An empty answer, or one the step's ``expect`` doesn't find, gets the step's ``retry`` text
    (or its question again) and the run stays on that step.
    """
    number = flow.step_of(conversation)
    assert number is not None, "responder.decide checks the step first"
    step = flow.steps[number - 1]
    values = dict(conversation.values)
    text = msg.body.strip()
    if not text or (step.expect is not None and not step.expect.search(text)):
        return FlowOutcome(
            _ask(flow, number, msg, values, retry=True),
            f"flow {flow.name} step {number} retry",
            conversation,
            values,
        )
    values[step.save] = text
    if number < len(flow.steps):
        return FlowOutcome(
            _ask(flow, number + 1, msg, values, retry=False),
            f"flow {flow.name} step {number + 1}",
            Conversation(flow.state(number + 1), values, flow=flow.name),
            values,
        )
    reply = Reply(fill(flow.done, msg, values), [fill(m, msg, values) for m in flow.done_media])
    return FlowOutcome(reply, f"flow {flow.name} done", None, values, completed=True)
