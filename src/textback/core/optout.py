"""Carrier commands: STOP, START and HELP, recognised before anything else. No I/O here.

The standard words can never be removed (Twilio's Advanced Opt-Out allows adding words, not
taking STOP, START or HELP away); a rules file adds its own words to them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from textback.core.matchers import allowed_typos
from textback.core.matchers import typos
from textback.core.text import normalize_command

# Twilio's own lists (its default opt-out handling), see the README's "Carrier rules".
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
HELP_TAIL = "Reply STOP to unsubscribe. Msg&Data Rates May Apply."


class Command(enum.Enum):
    """A carrier command a message can be."""

    STOP = "stop"
    START = "start"
    HELP = "help"


def _words(words: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize_command(word) for word in words)


STANDARD_WORDS = {
    Command.STOP: _words(STOP_WORDS),
    Command.START: _words(START_WORDS),
    Command.HELP: _words(HELP_WORDS),
}


@dataclass(frozen=True, slots=True)
class Carrier:
    """How this number answers carrier commands.

    ``twilio_answers``: Twilio's own opt-out handling answers STOP, START and HELP (its default
    on long codes and toll-free numbers), so textback records them and answers nothing.
    ``sender_name`` is who is texting, named in textback's own HELP, STOP and START texts.
    """

    twilio_answers: bool = True
    sender_name: str | None = None


def default_reply(command: Command, *, sender_name: str | None, our_number: str) -> str:
    """textback's own text for a command, naming the sender (or, unnamed, the number)."""
    if command is Command.HELP:
        if sender_name:
            return f"{sender_name}: automated replies to your texts. {HELP_TAIL}"
        # whatsapp:+1415... → +1415...: the contact sees the number itself.
        return f"Automated replies from {our_number.rpartition(':')[2]}. {HELP_TAIL}"
    text = STOP_REPLY if command is Command.STOP else START_REPLY
    return f"{sender_name}: {text}" if sender_name else text


@dataclass(frozen=True, slots=True)
class OptOutPolicy:
    """The words and texts of carrier commands; the rules file's ``[optout]`` table sets them.

    The word sets always hold the standard words. A text left None is textback's default,
    which names the sender (see ``default_reply``).
    """

    stop_words: frozenset[str] = STANDARD_WORDS[Command.STOP]
    start_words: frozenset[str] = STANDARD_WORDS[Command.START]
    help_words: frozenset[str] = STANDARD_WORDS[Command.HELP]
    stop_reply: str | None = None
    start_reply: str | None = None
    help_reply: str | None = None

    @classmethod
    def from_lists(
        cls,
        *,
        stop_words: Iterable[str] = (),
        start_words: Iterable[str] = (),
        help_words: Iterable[str] = (),
        stop_reply: str | None = None,
        start_reply: str | None = None,
        help_reply: str | None = None,
    ) -> OptOutPolicy:
        """A policy whose words are the standard ones plus these (written as people write
        them: ``"opt-out"``, ``"ARRÊT"``); ValueError names a word that has no letters, or
        that would be two commands at once (``start_words = ["stop"]``)."""
        given = {
            Command.STOP: list(stop_words),
            Command.START: list(start_words),
            Command.HELP: list(help_words),
        }
        owner: dict[str, Command] = {
            word: command for command, words in STANDARD_WORDS.items() for word in words
        }
        for command, words in given.items():
            for word in words:
                normal = normalize_command(word)
                if not normal:
                    raise ValueError(f"{command.value}_words: {word!r} has no letters or digits")
                other = owner.setdefault(normal, command)
                if other is not command:
                    kind = (
                        f"a standard {other.name} word"
                        if normal in STANDARD_WORDS[other]
                        else f"also in {other.value}_words"
                    )
                    raise ValueError(
                        f"{command.value}_words: {word!r} is {kind}; "
                        "a word can be one carrier command only"
                    )
        return cls(
            STANDARD_WORDS[Command.STOP] | _words(given[Command.STOP]),
            STANDARD_WORDS[Command.START] | _words(given[Command.START]),
            STANDARD_WORDS[Command.HELP] | _words(given[Command.HELP]),
            stop_reply,
            start_reply,
            help_reply,
        )

    def command(self, body: str) -> Command | None:
        """The carrier command ``body`` is, when the whole message is one."""
        return self._command_of(normalize_command(body))

    def _command_of(self, word: str) -> Command | None:
        if not word:
            return None
        if word in self.stop_words:
            return Command.STOP
        if word in self.start_words:
            return Command.START
        if word in self.help_words:
            return Command.HELP
        return None

    def near_miss(self, body: str) -> Command | None:
        """The STOP or HELP word ``body`` misspells (``stpo``, ``unsubscibe``), if any.

        Never the command itself: the contact is told the exact words instead (see
        responder). Words of up to 3 letters have no near misses (``end`` is not ``and``).
        """
        word = normalize_command(body)
        if not word or self._command_of(word) is not None:
            return None
        for command, words in ((Command.STOP, self.stop_words), (Command.HELP, self.help_words)):
            for known in words:
                allowed = allowed_typos(known)
                # Every message of every contact comes here: a word whose length alone is
                # further off than the typos allowed is no near miss, and costs no distance.
                if abs(len(word) - len(known)) <= allowed and typos(word, known) <= allowed:
                    return command
        return None

    def reply_for(
        self, command: Command, *, sender_name: str | None = None, our_number: str = ""
    ) -> str:
        """The text textback answers a command with: the rules file's, else its default."""
        text = {
            Command.STOP: self.stop_reply,
            Command.START: self.start_reply,
            Command.HELP: self.help_reply,
        }[command]
        if text is not None:
            return text
        return default_reply(command, sender_name=sender_name, our_number=our_number)
