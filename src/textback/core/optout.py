"""Carrier commands: STOP, START and HELP, recognised before anything else. No I/O here."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from textback.core.text import normalize_command

# Twilio's own lists (Advanced Opt-Out defaults), see the README's "Opt-outs".
STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT")
START_WORDS = ("START", "YES", "UNSTOP")
HELP_WORDS = ("HELP", "INFO")

STOP_REPLY = (
    "You have successfully been unsubscribed. You will not receive any more messages "
    "from this number. Reply START to resubscribe."
)
START_REPLY = (
    "You have successfully been re-subscribed to messages from this number. "
    "Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)
HELP_REPLY = (
    "textback: automated replies to your texts. For help, reply with your question. "
    "Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)


class Command(enum.Enum):
    """A carrier command a message can be."""

    STOP = "stop"
    START = "start"
    HELP = "help"


def _words(words: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize_command(word) for word in words)


@dataclass(frozen=True, slots=True)
class OptOutPolicy:
    """The words and texts of carrier commands; the rules file's ``[optout]`` table sets them."""

    stop_words: frozenset[str] = _words(STOP_WORDS)
    start_words: frozenset[str] = _words(START_WORDS)
    help_words: frozenset[str] = _words(HELP_WORDS)
    stop_reply: str = STOP_REPLY
    start_reply: str = START_REPLY
    help_reply: str = HELP_REPLY

    @classmethod
    def from_lists(
        cls,
        *,
        stop_words: Iterable[str],
        start_words: Iterable[str],
        help_words: Iterable[str],
        stop_reply: str,
        start_reply: str,
        help_reply: str,
    ) -> OptOutPolicy:
        """A policy from word lists as people write them (``"opt-out"``, ``"STOP"``)."""
        return cls(
            _words(stop_words),
            _words(start_words),
            _words(help_words),
            stop_reply,
            start_reply,
            help_reply,
        )

    def command(self, body: str) -> Command | None:
        """The carrier command ``body`` is, when the whole message is one."""
        word = normalize_command(body)
        if not word:
            return None
        if word in self.stop_words:
            return Command.STOP
        if word in self.start_words:
            return Command.START
        if word in self.help_words:
            return Command.HELP
        return None

    def reply_for(self, command: Command) -> str:
        """The confirmation text for a command."""
        return {
            Command.STOP: self.stop_reply,
            Command.START: self.start_reply,
            Command.HELP: self.help_reply,
        }[command]
