"""Keywords that can never answer: found for ``textback check``, which warns about each.

The order of answering (docs/conversations.md) decides who wins a keyword: carrier words
first, then Python handlers in registration order, then flow triggers, then rules in file
order. A later keyword that an earlier one already takes is never reached. Only keywords are
compared; a pattern or ``contains`` rule that catches a later keyword is not looked for.
A flow's step that no branch, ``next`` or ``other`` leads to is never asked either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from textback.core.bot import Bot
from textback.core.bot import Route
from textback.core.matchers import Keyword
from textback.core.optout import Command
from textback.core.ruleset import RuleSet
from textback.rulesfile.flow_rules import reachable_steps
from textback.rulesfile.rules import rule_label

# START words are commands only from opted-out contacts: for anyone else a rule may answer them.
_NEVER_REACHED = (Command.STOP, Command.HELP)


@dataclass(frozen=True)
class _Place:
    """A rule, handler or flow, as a warning names it: where it is written, and its name."""

    where: str  # "textback.toml: rule 3 (keyword 'stop')", "mybot:bot: handler 'stop'"
    name: str  # "rule 3 (keyword 'stop')", "handler 'stop' (mybot:bot)"
    kind: str  # "rule", "handler", "flow"


def unreachable(rules: RuleSet, bot: Bot | None = None, *, bot_name: str = "the bot") -> list[str]:
    """One warning per keyword that never answers, naming both places, e.g.
    ``textback.toml: rule 3 (keyword 'stop'): STOP is a carrier word; this rule never answers``."""
    path = rules.path or "(rules)"
    warnings: list[str] = []
    first: dict[str, _Place] = {}  # keyword -> the place that answers it

    def claim(place: _Place, words: frozenset[str], *, carrier: bool = True) -> None:
        for word in sorted(words):
            if place.kind == "flow":
                never = "this flow never starts" + (f" with {word!r}" if len(words) > 1 else "")
            else:
                never = f"this {place.kind} never answers" + (
                    f" {word!r}" if len(words) > 1 else ""
                )
            if carrier and rules.optout.command(word) in _NEVER_REACHED:
                warnings.append(f"{place.where}: {word.upper()} is a carrier word; {never}")
            elif word in first:
                warnings.append(
                    f"{place.where}: {word!r} is answered first by {first[word].name}; {never}"
                )
            else:
                first[word] = place

    for route in bot.routes if bot is not None else ():
        name = f"handler {route.name!r}"
        claim(_Place(f"{bot_name}: {name}", f"{name} ({bot_name})", "handler"), _keywords(route))
    for index, flow in enumerate(rules.flows, start=1):
        name = f"flow {index} ({flow.name!r})"
        # A trigger that is a carrier word is refused when the file is loaded.
        claim(_Place(f"{path}: {name}", name, "flow"), flow.trigger.words, carrier=False)
    for index, (route, raw) in enumerate(_rules(rules), start=1):
        name = rule_label(index, raw)
        claim(_Place(f"{path}: {name}", name, "rule"), _keywords(route))
    for index, flow in enumerate(rules.flows, start=1):
        reached = set(reachable_steps(flow.steps))
        for number, step in enumerate(flow.steps, start=1):
            if number not in reached:
                warnings.append(
                    f"{path}: flow {index} ({flow.name!r}), {step.label(number)}: no step "
                    "leads here; this step is never asked"
                )
    return warnings


def _keywords(route: Route) -> frozenset[str]:
    return route.matcher.words if isinstance(route.matcher, Keyword) else frozenset()


def _rules(rules: RuleSet) -> Iterator[tuple[Route, object]]:
    raw = rules.raw.get("rule", [])
    yield from zip(rules.routes, raw if isinstance(raw, list) else [], strict=False)
