"""How textback compares what people type: case, spacing, punctuation and emoji are not meaning.

These functions are shared by keywords in the rules file, ``@bot.on("...")`` and the opt-out words,
so that the same message is matched the same way everywhere.
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
# XML 1.0 allows tab, LF, CR and everything from U+0020 up, except surrogates and U+FFFE/U+FFFF.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _is_noise(char: str) -> bool:
    """Punctuation, symbols (emoji included), separators and control characters."""
    return unicodedata.category(char)[0] in "PSZC"


def normalize_keyword(text: str) -> str:
    """The form two keywords are compared in.

    Case is folded, surrounding punctuation, emoji and spaces are dropped and inner runs of
    spaces become one: ``" Hello! "``, ``"HELLO"`` and ``"hello 👋"`` all become ``"hello"``.
    """
    start, end = 0, len(text)
    while start < end and (_is_noise(text[start]) or text[start].isspace()):
        start += 1
    while end > start and (_is_noise(text[end - 1]) or text[end - 1].isspace()):
        end -= 1
    return _SPACES.sub(" ", text[start:end]).casefold()


def normalize_command(text: str) -> str:
    """The form carrier commands are compared in: letters and digits only, case folded.

    ``"Stop."``, ``"stop 🙏"``, ``"opt out"`` and ``"OPT-OUT"`` become ``"stop"`` or ``"optout"``.
    """
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def xml_safe(text: str) -> str:
    """Remove the characters XML 1.0 forbids, so that any reply renders as parseable TwiML."""
    return _XML_FORBIDDEN.sub("", text)


def mask_number(number: str) -> str:
    """A phone number fit for INFO logs: only its last two digits are kept."""
    if len(number) <= 4:
        return "*" * len(number)
    prefix = number[: number.index("+") + 1] if "+" in number[:10] else ""
    return prefix + "*" * (len(number) - len(prefix) - 2) + number[-2:]


# C0 and C1 control characters, DEL included: a terminal would act on them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Text fit to print on an operator's terminal: a message cannot move the cursor, clear the
    screen or fake a line of its own. A line break shows as ⏎, other control characters as
    ``\\x1b``-style escapes; everything else (emoji, any script) is kept."""

    def visible(found: re.Match[str]) -> str:
        char = found.group()
        return "⏎" if char == "\n" else f"\\x{ord(char):02x}"

    return _CONTROL.sub(visible, text)
