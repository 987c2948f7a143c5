"""The rules file's ``[[flow]]`` and ``[conversations]`` tables: validate them, build Flows.

Problems are reported like the rules' own, naming the flow and the step:
``textback.toml: flow 1 ('signup'), step 2: unknown key 'expct' (did you mean 'expect'?)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ValidationError
from pydantic import field_validator

from textback.core.flows import DEFAULT_EXPIRE_AFTER
from textback.core.flows import DEFAULT_LEAVE_REPLY
from textback.core.flows import DEFAULT_LEAVE_WORDS
from textback.core.flows import ConversationSettings
from textback.core.flows import Flow
from textback.core.flows import Step
from textback.core.matchers import Keyword
from textback.core.optout import OptOutPolicy
from textback.core.profile import target
from textback.core.templates import CONTACT
from textback.core.templates import MESSAGE_FIELDS
from textback.core.templates import Template
from textback.core.templates import TemplateError
from textback.core.text import normalize_keyword
from textback.errors import RulesError
from textback.rulesfile.specs import STRICT
from textback.rulesfile.specs import check_length
from textback.rulesfile.specs import check_media
from textback.rulesfile.specs import problem

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"24h"`` or ``"7d"`` as a timedelta; ValueError otherwise."""
    found = _DURATION.match(text)
    if found is None or int(found.group(1)) == 0:
        raise ValueError(
            f"bad duration {text!r}: write a whole number above 0 and a unit, "
            "like 90s, 30m, 24h or 7d"
        )
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


class _Strict(BaseModel):
    model_config = STRICT


MAX_NAME = 100


class ConversationsSpec(_Strict):
    leave: list[str] = list(DEFAULT_LEAVE_WORDS)
    leave_reply: str = DEFAULT_LEAVE_REPLY
    expire_after: str = "24h"
    rule_keywords: Literal["answer", "leave"] = "answer"


class FlowSpec(_Strict):
    name: str
    trigger: str | list[str]
    step: list[Any] = []
    done: str = ""
    done_media: list[str] = []
    expire_after: str | None = None
    leave: list[str] | None = None
    leave_reply: str | None = None
    rule_keywords: Literal["answer", "leave"] | None = None

    _urls = field_validator("done_media")(check_media)

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not name.strip() or name != name.strip() or not name.isprintable():
            raise ValueError(f"name = {name!r}: give the flow a name, like 'signup'")
        if len(name) > MAX_NAME or ":" in name:
            raise ValueError(f"name = {name!r}: at most {MAX_NAME} characters, no ':'")
        return name


class StepSpec(_Strict):
    ask: str
    save: str | None = None  # None: named after save_to's value (contact.city: city)
    save_to: str | None = None
    media: list[str] = []
    expect: str | None = None
    retry: str | None = None

    _urls = field_validator("media")(check_media)


def _settings(
    spec: ConversationsSpec | FlowSpec, base: ConversationSettings, optout: OptOutPolicy
) -> ConversationSettings:
    leave, reply, expire = base.leave, base.leave_reply, base.expire_after
    if spec.leave is not None:
        for word in spec.leave:
            if not normalize_keyword(word):
                raise ValueError(f"leave word {word!r} has no letters or digits")
            if optout.command(word) is not None:
                raise ValueError(
                    f"leave word {word!r} is a carrier opt-out/help keyword and would never "
                    "reach the flow; use a word like 'exit'"
                )
        leave = Keyword(spec.leave)
    if spec.leave_reply is not None:
        reply = Template(spec.leave_reply, MESSAGE_FIELDS | {CONTACT})
        check_length(reply, "leave_reply")
    if spec.expire_after is not None:
        try:
            expire = parse_duration(spec.expire_after)
        except ValueError as exc:
            raise ValueError(f"expire_after: {exc}") from None
    rule_keywords = spec.rule_keywords or base.rule_keywords
    return ConversationSettings(leave, reply, expire, rule_keywords)


def parse_conversations(
    data: Mapping[str, Any], path: str, optout: OptOutPolicy
) -> ConversationSettings:
    """The ``[conversations]`` table (defaults when absent)."""
    raw = data.get("conversations", {})
    base = ConversationSettings(expire_after=DEFAULT_EXPIRE_AFTER)
    try:
        return _settings(ConversationsSpec.model_validate(raw), base, optout)
    except ValidationError as exc:
        raise RulesError(path, "[conversations]", problem(exc, ConversationsSpec)) from None
    except (ValueError, TemplateError) as exc:
        raise RulesError(path, "[conversations]", str(exc)) from None


def _step(raw: Any, saved: list[str]) -> Step:
    spec = StepSpec.model_validate(raw)
    save_to = target(spec.save_to) if spec.save_to is not None else None
    if spec.save is None and save_to is None:
        raise ValueError("missing key 'save' (the name the answer is saved as, like 'zip')")
    save = spec.save if spec.save is not None else str(save_to).removeprefix("fields.")
    if not save.isidentifier():
        raise ValueError(f"save = {save!r} must be a plain name like 'zip' (for {{zip}})")
    if save in MESSAGE_FIELDS:
        raise ValueError(f"save = {save!r} is taken by the message's own {{{save}}}")
    if save in saved:
        raise ValueError(f"save = {save!r}: an earlier step already saves {save!r}")
    available = MESSAGE_FIELDS | set(saved) | {CONTACT}
    expect = None
    if spec.expect is not None:
        try:
            expect = re.compile(spec.expect, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"bad expect {spec.expect!r}: {exc}") from None
    ask = Template(spec.ask, available)
    check_length(ask, "ask")
    retry = Template(spec.retry, available) if spec.retry is not None else None
    if retry is not None:
        check_length(retry, "retry")
    return Step(
        ask=ask,
        save=save,
        media=tuple(Template(url, available) for url in spec.media),
        expect=expect,
        retry=retry,
        save_to=save_to,
    )


def _flow(
    raw: Any, where: str, path: str, settings: ConversationSettings, optout: OptOutPolicy
) -> Flow:
    try:
        spec = FlowSpec.model_validate(raw)
        triggers = [spec.trigger] if isinstance(spec.trigger, str) else spec.trigger
        if not triggers or not all(normalize_keyword(word) for word in triggers):
            raise ValueError("trigger needs a keyword with letters or digits")
        for word in triggers:
            if optout.command(word) is not None:
                raise ValueError(f"trigger {word!r} is a carrier opt-out/help keyword")
        if not spec.step:
            raise ValueError("a flow needs at least one [[flow.step]]")
        flow_settings = _settings(spec, settings, optout)
    except ValidationError as exc:
        raise RulesError(path, where, problem(exc, FlowSpec)) from None
    except (ValueError, TemplateError) as exc:
        raise RulesError(path, where, str(exc)) from None
    steps: list[Step] = []
    for number, raw_step in enumerate(spec.step, start=1):
        try:
            steps.append(_step(raw_step, [step.save for step in steps]))
        except ValidationError as exc:
            raise RulesError(path, f"{where}, step {number}", problem(exc, StepSpec)) from None
        except (ValueError, TemplateError) as exc:
            raise RulesError(path, f"{where}, step {number}", str(exc)) from None
    available = MESSAGE_FIELDS | {step.save for step in steps} | {CONTACT}
    try:
        done = Template(spec.done, available)
        check_length(done, "done")
        done_media = tuple(Template(url, available) for url in spec.done_media)
    except (ValueError, TemplateError) as exc:
        raise RulesError(path, f"{where}, done", str(exc)) from None
    return Flow(spec.name, Keyword(triggers), tuple(steps), done, done_media, flow_settings)


def parse_flows(
    data: Mapping[str, Any], path: str, settings: ConversationSettings, optout: OptOutPolicy
) -> tuple[Flow, ...]:
    """The ``[[flow]]`` tables, in file order; names and triggers must be unique."""
    raw_flows = data.get("flow", [])
    if not isinstance(raw_flows, list):
        raise RulesError(path, "flow", "write flows as [[flow]] tables")
    flows: list[Flow] = []
    for index, raw in enumerate(raw_flows, start=1):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"flow {index}" + (f" ({name!r})" if isinstance(name, str) else "")
        flow = _flow(raw, where, path, settings, optout)
        for other in flows:
            if other.name == flow.name:
                raise RulesError(path, where, f"duplicate flow name {flow.name!r}")
            shared = sorted(other.trigger.words & flow.trigger.words)
            if shared:
                raise RulesError(
                    path, where, f"trigger {shared[0]!r} already starts flow {other.name!r}"
                )
        flows.append(flow)
    return tuple(flows)
