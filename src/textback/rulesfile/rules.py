"""The rules file: load ``textback.toml``, validate it, and turn it into routes a Bot dispatches to.

Every problem is reported as ``RulesError(path, where, problem)``, e.g.
``textback.toml: rule 3 (keyword "hours"): unknown key 'replay'`` — never a traceback.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError
from pydantic import field_validator

from textback.core.bot import DEFAULT_REPLY
from textback.core.bot import Route
from textback.core.conversation import Conversation
from textback.core.matchers import Contains
from textback.core.matchers import Keyword
from textback.core.matchers import Match
from textback.core.matchers import Matcher
from textback.core.matchers import Pattern
from textback.core.message import Inbound
from textback.core.message import Reply
from textback.core.optout import OptOutPolicy
from textback.core.profile import ContactProfile
from textback.core.ruleset import RuleSet
from textback.core.templates import CONTACT
from textback.core.templates import MESSAGE_FIELDS
from textback.core.templates import Template
from textback.core.templates import TemplateError
from textback.errors import RulesError
from textback.rulesfile.flow_rules import parse_conversations
from textback.rulesfile.flow_rules import parse_flows
from textback.rulesfile.specs import STRICT
from textback.rulesfile.specs import check_length
from textback.rulesfile.specs import check_media
from textback.rulesfile.specs import problem

TOP_LEVEL_KEYS = ("rule", "default", "optout", "flow", "conversations")


class _Strict(BaseModel):
    model_config = STRICT


class ReplySpec(_Strict):
    reply: str
    media: list[str] = []

    _urls = field_validator("media")(check_media)


class DefaultSpec(_Strict):
    reply: str | None = None  # None: textback's own default reply
    media: list[str] = []
    error_reply: str = ""

    _urls = field_validator("media")(check_media)


class RuleSpec(ReplySpec):
    name: str | None = None
    keyword: str | None = None
    keywords: list[str] | None = None
    pattern: str | None = None
    contains: str | None = None
    fuzzy: bool = False


class OptOutSpec(_Strict):
    """``[optout]``: words added to the standard ones, and texts replacing textback's own."""

    stop_words: list[str] = []
    start_words: list[str] = []
    help_words: list[str] = []
    stop_reply: str | None = None
    start_reply: str | None = None
    help_reply: str | None = None


MATCH_KEYS = ("keyword", "keywords", "pattern", "contains")


TemplateReply = Callable[[Inbound, Match | None, Conversation, ContactProfile | None], Reply]


def template_reply(text: Template, media: tuple[Template, ...]) -> TemplateReply:
    """A handler that fills the templates in from the message, the match, saved values and
    the contact."""
    templates = (text, *media)
    if not any(t.fields or t.uses_contact for t in templates):
        constant = Reply(text.fill({}), [m.fill({}) for m in media])
        return lambda msg, match, conversation, contact: constant

    def reply(
        msg: Inbound,
        match: Match | None,
        conversation: Conversation,
        contact: ContactProfile | None,
    ) -> Reply:
        values = {**conversation.values, "from": msg.from_, "to": msg.to, "body": msg.body}
        if match is not None:
            values.update(match.groups)
        return Reply(text.fill(values, contact), [m.fill(values, contact) for m in media])

    return reply


def contact_names(where: str, templates: Iterable[Template]) -> list[tuple[str, str]]:
    """The ``{contact.…}`` names ``templates`` use, each with ``where``, in order, once."""
    found = [(where, name.name) for template in templates for name in template.contact]
    return list(dict.fromkeys(found))


def _route(
    name: str,
    matcher: Matcher | None,
    spec: ReplySpec | DefaultSpec,
    available: set[str],
    uses: list[tuple[str, str]],
    where: str,
) -> Route:
    assert spec.reply is not None
    available = available | {CONTACT}
    text = Template(spec.reply, available)
    check_length(text)
    media = tuple(Template(url, available) for url in spec.media)
    respond = template_reply(text, media)
    used = contact_names(where, (text, *media))
    uses.extend(used)

    def handler(
        msg: Inbound,
        rule_match: Match | None,
        conversation: Conversation,
        contact: ContactProfile | None = None,
    ) -> Reply:
        return respond(msg, rule_match, conversation, contact)

    # Asking for the contact is what makes the store load the profile: only when used.
    wants = ("rule_match", "conversation", "contact") if used else ("rule_match", "conversation")
    handler.__name__ = name
    return Route(name=name, handler=handler, matcher=matcher, wants=wants)


def _describe(raw: Mapping[str, Any]) -> str:
    for key in ("name", *MATCH_KEYS):
        value = raw.get(key)
        if isinstance(value, str):
            return f"{key} {value!r}"
        if isinstance(value, list) and value:
            return f"{key} {value[0]!r}…" if len(value) > 1 else f"{key} {value[0]!r}"
    return ""


def rule_label(index: int, raw: object) -> str:
    """How messages name a rule: ``rule 3 (keyword 'hours')`` (``index`` counts from 1)."""
    label = _describe(raw) if isinstance(raw, dict) else ""
    return f"rule {index}" + (f" ({label})" if label else "")


def _matcher(spec: RuleSpec) -> tuple[Matcher, set[str]]:
    given = [key for key in MATCH_KEYS if getattr(spec, key) is not None]
    if len(given) != 1:
        which = " and ".join(given) if given else "none"
        raise ValueError(f"a rule needs exactly one of {', '.join(MATCH_KEYS)} (found {which})")
    if spec.fuzzy and spec.keyword is None and spec.keywords is None:
        raise ValueError("fuzzy = true is for keyword and keywords rules only")
    if spec.keyword is not None:
        return Keyword([spec.keyword], fuzzy=spec.fuzzy), set(MESSAGE_FIELDS)
    if spec.keywords is not None:
        return Keyword(spec.keywords, fuzzy=spec.fuzzy), set(MESSAGE_FIELDS)
    if spec.contains is not None:
        return Contains(spec.contains), set(MESSAGE_FIELDS)
    assert spec.pattern is not None
    try:
        regex = re.compile(spec.pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"bad pattern {spec.pattern!r}: {exc}") from exc
    return Pattern(regex), set(MESSAGE_FIELDS) | set(regex.groupindex)


def parse_rules(data: Mapping[str, Any], path: str) -> RuleSet:
    """Validate parsed TOML and build the RuleSet; raises RulesError naming what is wrong."""
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise RulesError(
            path, "", f"unknown table {unknown[0]!r}; expected {', '.join(TOP_LEVEL_KEYS)}"
        )
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RulesError(path, "rule", "write rules as [[rule]] tables")
    routes = []
    uses: list[tuple[str, str]] = []  # the {contact.…} names used, and where
    for index, raw in enumerate(raw_rules, start=1):
        where = rule_label(index, raw)
        try:
            spec = RuleSpec.model_validate(raw)
            matcher, available = _matcher(spec)
            name = spec.name or f"rule {index} ({matcher.describe()})"
            routes.append(_route(name, matcher, spec, available, uses, where))
        except ValidationError as exc:
            raise RulesError(path, where, problem(exc, RuleSpec)) from None
        except (ValueError, TemplateError) as exc:
            raise RulesError(path, where, str(exc)) from None
    default, error_reply = None, ""
    if "default" in data:
        try:
            default_spec = DefaultSpec.model_validate(data["default"])
            if default_spec.reply is not None:
                default = _route(
                    "default", None, default_spec, set(MESSAGE_FIELDS), uses, "[default]"
                )
            elif default_spec.media:
                raise ValueError('media needs a reply (write reply = "" for pictures only)')
            # Sent when a handler failed: no placeholders, so that it cannot fail in turn.
            try:
                error_template = Template(default_spec.error_reply, ())
            except TemplateError:
                raise ValueError(
                    "error_reply takes no {placeholders}, so that it cannot fail in turn "
                    "(write {{ and }} for literal braces)"
                ) from None
            check_length(error_template, "error_reply")
            error_reply = error_template.fill({})
        except ValidationError as exc:
            raise RulesError(path, "[default]", problem(exc, DefaultSpec)) from None
        except (ValueError, TemplateError) as exc:
            raise RulesError(path, "[default]", str(exc)) from None
    optout = OptOutPolicy()
    if "optout" in data:
        try:
            optout = OptOutPolicy.from_lists(
                **OptOutSpec.model_validate(data["optout"]).model_dump()
            )
        except ValidationError as exc:
            raise RulesError(path, "[optout]", problem(exc, OptOutSpec)) from None
        except ValueError as exc:
            raise RulesError(path, "[optout]", str(exc)) from None
    conversations = parse_conversations(data, path, optout)
    flows = parse_flows(data, path, conversations, optout)
    uses.extend(contact_names("[conversations]", [conversations.leave_reply]))
    for index, flow in enumerate(flows, start=1):
        for place, template in flow.templates():
            uses.extend(contact_names(f"flow {index} ({flow.name!r}), {place}", [template]))
    return RuleSet(
        tuple(routes),
        default,
        optout,
        path,
        data,
        flows,
        conversations,
        error_reply=error_reply,
        contact_names=tuple(dict.fromkeys(uses)),
    )


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file."""
    shown = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise RulesError(shown, "", "file not found") from None
    except OSError as exc:
        raise RulesError(shown, "", f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(shown, "", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise RulesError(shown, "", "not valid UTF-8") from None
    return parse_rules(data, shown)


def default_rules() -> RuleSet:
    """The rules that apply with no rules file: the classic tutorial's two answers."""
    return parse_rules(
        {
            "rule": [{"keyword": "hello", "reply": "Hello back to you!"}],
            "default": {"reply": DEFAULT_REPLY},
        },
        "(built-in rules)",
    )
