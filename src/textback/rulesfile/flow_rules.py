"""The rules file's ``[[flow]]`` and ``[conversations]`` tables: validate them, build Flows.

Problems are reported like the rules' own, naming the flow and the step:
``textback.toml: flow 1 ('signup'), step 2: unknown key 'expct' (did you mean 'expect'?)``.
Branches are checked once every step is read: a ``goto`` (or ``next``, ``other``) must name a
step of the flow or ``done``, and every step a contact can reach must have a way to the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ValidationError
from pydantic import field_validator

from textback.core.flows import DEFAULT_EXPIRE_AFTER
from textback.core.flows import DEFAULT_LEAVE_REPLY
from textback.core.flows import DEFAULT_LEAVE_WORDS
from textback.core.flows import DONE
from textback.core.flows import DONE_NAME
from textback.core.flows import Between
from textback.core.flows import Branch
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
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"24h"`` or ``"7d"`` as a timedelta; ValueError otherwise."""
    found = _DURATION.match(text)
    if found is None or int(found.group(1)) == 0:
        raise ValueError(
            f"bad duration {text!r}: write a whole number above 0 and a unit, "
            "like 90s, 30m, 24h or 7d"
        )
    try:
        duration = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    except OverflowError:
        duration = MAX_DURATION + MAX_DURATION
    if duration > MAX_DURATION:  # a run's expiry, a reminder's time must stay a date
        raise ValueError(f"bad duration {text!r}: at most {MAX_DURATION.days}d (ten years)")
    return duration


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
    expired: str | None = None

    _urls = field_validator("done_media")(check_media)

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not name.strip() or name != name.strip() or not name.isprintable():
            raise ValueError(f"name = {name!r}: give the flow a name, like 'signup'")
        if len(name) > MAX_NAME or ":" in name:
            raise ValueError(f"name = {name!r}: at most {MAX_NAME} characters, no ':'")
        return name


class BranchSpec(_Strict):
    goto: str
    keyword: str | None = None
    keywords: list[str] | None = None
    pattern: str | None = None
    between: list[int | float] | None = None


BRANCH_TESTS = ("keyword", "keywords", "pattern", "between")
_STEP_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class StepSpec(_Strict):
    ask: str
    save: str | None = None  # None: named after save_to's value (contact.city: city)
    save_to: str | None = None
    name: str | None = None
    media: list[str] = []
    expect: str | None = None
    retry: str | None = None
    next: str | None = None
    branch: list[Any] = []
    other: str | None = None
    remind_after: str | None = None
    remind: str | None = None

    _urls = field_validator("media")(check_media)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not _STEP_NAME.match(name) or len(name) > MAX_NAME:
            raise ValueError(f"name = {name!r}: letters, digits, - and _ only, like 'rating'")
        if name == DONE_NAME:
            raise ValueError(f"name = {name!r} is taken: goto = 'done' ends the flow")
        return name


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


def _step(raw: Any, saved: list[str], expire_after: timedelta) -> tuple[Step, StepSpec]:
    """A step with its ``next`` and branches still to be resolved (see _resolve), and its spec."""
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
    if spec.next is not None and spec.branch:
        raise ValueError(
            "next is for a step without branches; with branches, other says where an answer "
            "no branch takes goes"
        )
    if spec.other is not None and not spec.branch:
        raise ValueError("other is for a step with [[flow.step.branch]] tables")
    remind_after, remind = None, None
    if spec.remind is not None and spec.remind_after is None:
        raise ValueError('remind needs remind_after, the wait before it is sent, like "2h"')
    if spec.remind_after is not None:
        try:
            remind_after = parse_duration(spec.remind_after)
        except ValueError as exc:
            raise ValueError(f"remind_after: {exc}") from None
        if remind_after >= expire_after:
            raise ValueError(
                f"remind_after {spec.remind_after!r} is not shorter than the flow's "
                f"expire_after ({_shown(expire_after)}): the run would expire first"
            )
    if spec.remind is not None:
        remind = Template(spec.remind, available)
        check_length(remind, "remind")
    step = Step(
        ask=ask,
        save=save,
        media=tuple(Template(url, available) for url in spec.media),
        expect=expect,
        retry=retry,
        save_to=save_to,
        name=spec.name,
        remind_after=remind_after,
        remind=remind,
    )
    return step, spec


def _shown(duration: timedelta) -> str:
    """A duration as it is usually written: ``24h``, ``7d``, ``30m``."""
    seconds = int(duration.total_seconds())
    units = (
        (("d", 86400), ("h", 3600), ("m", 60)) if seconds >= 2 * 86400 else (("h", 3600), ("m", 60))
    )
    for unit, size in units:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _branch(raw: Any, step_number: Callable[[str, str], int]) -> Branch:
    spec = BranchSpec.model_validate(raw)
    given = [key for key in BRANCH_TESTS if getattr(spec, key) is not None]
    if len(given) != 1:
        which = " and ".join(given) if given else "none"
        raise ValueError(f"a branch needs exactly one of {', '.join(BRANCH_TESTS)} (found {which})")
    goto = step_number("goto", spec.goto)
    if spec.keyword is not None or spec.keywords is not None:
        words = [spec.keyword] if spec.keyword is not None else list(spec.keywords or [])
        if not words or not all(normalize_keyword(word) for word in words):
            raise ValueError("keywords need letters or digits")
        return Branch(goto, keywords=Keyword(words))
    if spec.pattern is not None:
        try:
            return Branch(goto, pattern=re.compile(spec.pattern, re.IGNORECASE))
        except re.error as exc:
            raise ValueError(f"bad pattern {spec.pattern!r}: {exc}") from None
    assert spec.between is not None
    if len(spec.between) != 2 or spec.between[0] > spec.between[1]:
        raise ValueError(
            f"between = {spec.between!r}: give the lowest and the highest number, like [1, 5]"
        )
    return Branch(goto, between=Between(float(spec.between[0]), float(spec.between[1])))


def _resolve(steps: list[tuple[Step, StepSpec]], where: str, path: str) -> tuple[Step, ...]:
    """The steps with ``next``, branches and ``other`` turned into step numbers (or DONE)."""
    numbers = {step.name: number for number, (step, _) in enumerate(steps, start=1) if step.name}
    resolved: list[Step] = []
    for number, (step, spec) in enumerate(steps, start=1):
        here = f"{where}, {step.label(number)}"

        def step_number(key: str, name: str) -> int:
            if name == DONE_NAME:
                return DONE
            if name not in numbers:
                named = ", ".join(repr(known) for known in numbers) or "none"
                raise ValueError(
                    f"{key} = {name!r}: the flow has no step named {name!r} "
                    f"(named steps: {named}; 'done' ends the flow)"
                )
            return numbers[name]

        try:
            following = number + 1 if number < len(steps) else DONE
            next_step = step_number("next", spec.next) if spec.next is not None else following
            other = step_number("other", spec.other) if spec.other is not None else None
        except ValueError as exc:
            raise RulesError(path, here, str(exc)) from None
        branches = []
        for index, raw in enumerate(spec.branch, start=1):
            try:
                branches.append(_branch(raw, step_number))
            except ValidationError as exc:
                raise RulesError(
                    path, f"{here}, branch {index}", problem(exc, BranchSpec)
                ) from None
            except ValueError as exc:
                raise RulesError(path, f"{here}, branch {index}", str(exc)) from None
        resolved.append(replace(step, next=next_step, branches=tuple(branches), other=other))
    return tuple(resolved)


def reachable_steps(steps: tuple[Step, ...]) -> list[int]:
    """The step numbers a contact can reach from the first step, in file order."""
    seen, todo = {1}, [1]
    while todo:
        for goto in steps[todo.pop() - 1].exits():
            if goto != DONE and goto not in seen:
                seen.add(goto)
                todo.append(goto)
    return sorted(seen)


def _check_finishes(steps: tuple[Step, ...], where: str, path: str) -> None:
    """Refuse a flow with reachable steps from which no answer can ever lead to the end."""
    finishing: set[int] = set()
    changed = True
    while changed:
        changed = False
        for number, step in enumerate(steps, start=1):
            if number not in finishing and any(
                goto == DONE or goto in finishing for goto in step.exits()
            ):
                finishing.add(number)
                changed = True
    stuck = [number for number in reachable_steps(steps) if number not in finishing]
    if stuck:
        names = ", ".join(steps[number - 1].label(number) for number in stuck)
        raise RulesError(
            path,
            where,
            f"a contact can never finish this flow: from {names} every way leads back among "
            "them; give one of them a branch, next or other that goes to 'done' or to a step "
            "that ends",
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
    parsed: list[tuple[Step, StepSpec]] = []
    names: set[str] = set()
    for number, raw_step in enumerate(spec.step, start=1):
        name = raw_step.get("name") if isinstance(raw_step, dict) else None
        here = f"{where}, step {number}" + (f" ({name!r})" if isinstance(name, str) else "")
        try:
            saved = [step.save for step, _ in parsed]
            step, step_spec = _step(raw_step, saved, flow_settings.expire_after)
            if step.name is not None and step.name in names:
                raise ValueError(f"name = {step.name!r}: an earlier step is named {step.name!r}")
            names.update([step.name] if step.name else [])
            parsed.append((step, step_spec))
        except ValidationError as exc:
            raise RulesError(path, here, problem(exc, StepSpec)) from None
        except (ValueError, TemplateError) as exc:
            raise RulesError(path, here, str(exc)) from None
    steps = _resolve(parsed, where, path)
    _check_finishes(steps, where, path)
    available = MESSAGE_FIELDS | {step.save for step in steps} | {CONTACT}
    try:
        done = Template(spec.done, available)
        check_length(done, "done")
        done_media = tuple(Template(url, available) for url in spec.done_media)
    except (ValueError, TemplateError) as exc:
        raise RulesError(path, f"{where}, done", str(exc)) from None
    expired = None
    if spec.expired is not None:
        try:
            expired = Template(spec.expired, available)
            check_length(expired, "expired")
        except (ValueError, TemplateError) as exc:
            raise RulesError(path, f"{where}, expired", str(exc)) from None
    return Flow(
        spec.name, Keyword(triggers), steps, done, done_media, flow_settings, expired=expired
    )


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
