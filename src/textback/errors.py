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


class InvalidHandler(TextbackError, TypeError):
    """A Python handler textback cannot call, found when it is registered (``@bot.on``).

    Also a TypeError, as calling a function with parameters it does not take would be.
    """


class HandlerError(TextbackError):
    """A handler (or a rule's reply) failed while answering: it raised, or returned something
    that is not a reply. ``source`` names it as the message log does (``handler order``)."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        super().__init__(f"{source} failed: {problem}")


def failed_in(exc: BaseException) -> str:
    """What failed while answering, as the message log names it: ``handler order``, or
    ``textback`` for our own error."""
    return exc.source if isinstance(exc, HandlerError) else "textback"


def cause_of(exc: BaseException) -> BaseException:
    """The exception to show for a failed answer: a HandlerError's cause (the handler's own
    exception, with its traceback), else the exception itself."""
    if isinstance(exc, HandlerError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


class InvalidMessage(TextbackError):
    """A message textback will not hand to Twilio: empty, or longer than Twilio accepts."""


class InvalidNumber(TextbackError):
    """What was typed as a phone number cannot be one (names it and the default region)."""
