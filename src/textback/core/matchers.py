"""What decides whether a rule or handler answers a message. No Flask, no I/O.

A string is always a keyword (the whole message, compared with ``normalize_keyword``); only a
compiled pattern is a regex. Nothing is turned into a regex silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from textback.core.text import normalize_keyword


@dataclass(frozen=True, slots=True)
class Match:
    """A successful match: the regex match (for patterns) and the values templates may use."""

    groups: dict[str, str]
    regex: re.Match[str] | None = None


class Matcher(Protocol):
    """Anything that can say whether it matches a message body."""

    def match(self, body: str) -> Match | None:
        """A Match when the body matches, else None."""

    def describe(self) -> str:
        """A short description for logs and the admin view."""


def allowed_typos(word: str) -> int:
    """How many typos a forgiving keyword accepts: none up to 3 characters, one up to 6, then
    two. A typo is a letter missing, added, changed, or two letters swapped."""
    return 0 if len(word) <= 3 else 1 if len(word) <= 6 else 2


def typos(body: str, word: str) -> int:
    """The typos between a normalised message and a keyword (optimal string alignment)."""
    from rapidfuzz.distance import OSA

    return int(OSA.distance(body, word))


class Keyword:
    """The whole message is one of these words, ignoring case, spacing, punctuation and emoji.

    With ``fuzzy``, a near miss counts too (``allowed_typos``): ``huors`` for ``hours``. The
    responder never lets a near miss of a carrier word (STOP, START, HELP…) reach a keyword.
    """

    def __init__(self, words: Iterable[str], *, fuzzy: bool = False) -> None:
        self.words = frozenset(normalize_keyword(word) for word in words)
        if not self.words or "" in self.words:
            raise ValueError("a keyword must contain a letter or digit")
        self.fuzzy = fuzzy

    def match(self, body: str) -> Match | None:
        said = normalize_keyword(body)
        if said in self.words:
            return Match({})
        if self.fuzzy and said and any(typos(said, w) <= allowed_typos(w) for w in self.words):
            return Match({})
        return None

    def describe(self) -> str:
        return "keyword " + "/".join(sorted(self.words)) + (" (fuzzy)" if self.fuzzy else "")


class Pattern:
    """A regular expression searched in the message (stripped of surrounding spaces)."""

    def __init__(self, regex: re.Pattern[str]) -> None:
        self.regex = regex

    def match(self, body: str) -> Match | None:
        found = self.regex.search(body.strip())
        if found is None:
            return None
        groups = {name: value or "" for name, value in found.groupdict().items()}
        return Match(groups, found)

    def describe(self) -> str:
        return f"pattern {self.regex.pattern!r}"


class Contains:
    """The message contains this text anywhere, ignoring case."""

    def __init__(self, text: str) -> None:
        self.text = normalize_keyword(text)
        if not self.text:
            raise ValueError("'contains' must contain a letter or digit")

    def match(self, body: str) -> Match | None:
        return Match({}) if self.text in " ".join(body.split()).casefold() else None

    def describe(self) -> str:
        return f"contains {self.text!r}"


def matcher_for(trigger: str | re.Pattern[str] | Iterable[str]) -> Matcher:
    """What ``@bot.on(trigger)`` means: a str (or list of str) is a keyword, a pattern a regex."""
    if isinstance(trigger, re.Pattern):
        return Pattern(trigger)
    if isinstance(trigger, str):
        return Keyword([trigger])
    return Keyword(trigger)
