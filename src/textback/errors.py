"""The one exception family users see: every mistake of theirs becomes a clear message."""

from __future__ import annotations


class TextbackError(Exception):
    """Base class of every error textback raises on purpose."""


class ConfigError(TextbackError):
    """The configuration (environment, settings) cannot be used as it is."""


class RulesError(TextbackError):
    """The rules file is broken: names the file, the rule and the problem."""

    def __init__(self, path: str, where: str, problem: str) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        location = f"{path}: {where}" if where else path
        super().__init__(f"{location}: {problem}")


class MalformedWebhook(TextbackError):
    """A signed webhook that lacks what Twilio always sends (answered with 400)."""


class SchemaError(TextbackError):
    """The database schema is missing or behind the code."""
