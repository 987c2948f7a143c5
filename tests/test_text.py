from __future__ import annotations

import pytest

from textback.core.text import mask_number
from textback.core.text import normalize_command
from textback.core.text import normalize_keyword
from textback.core.text import terminal_safe
from textback.core.text import xml_safe


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Hello", "hello"),
        (" HELLO ", "hello"),
        ("Hello!", "hello"),
        ("¡hola!", "hola"),
        ("hello 👋", "hello"),
        ("  opening   hours? ", "opening hours"),
        ("order-42", "order-42"),
        ("ÉTÉ", "été"),
        ("Straße", "strasse"),
        ("!!!", ""),
    ],
)
def test_normalize_keyword(typed: str, expected: str) -> None:
    assert normalize_keyword(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Stop.", "stop"),
        ("stop 🙏", "stop"),
        ("opt out", "optout"),
        ("OPT-OUT", "optout"),
        ("  s t o p ", "stop"),
        ("don't stop", "dontstop"),
    ],
)
def test_normalize_command(typed: str, expected: str) -> None:
    assert normalize_command(typed) == expected


def test_xml_safe_drops_only_forbidden_characters() -> None:
    assert xml_safe("a\x00b\x01c\td\ne\rf\ufffeg😀") == "abc\td\ne\rfg😀"


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550100", "+*********00"),
        ("whatsapp:+14155550123", "whatsapp:+*********23"),
        ("123", "***"),
    ],
)
def test_mask_number_keeps_two_digits(number: str, masked: str) -> None:
    assert mask_number(number) == masked


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"),
        ("fake\rOVERWRITE", "fake\\x0dOVERWRITE"),
        ("two\nlines", "two⏎lines"),
        ("\x9b31m", "\\x9b31m"),
        ("Hola 👩‍👩‍👧 ¿qué tal?", "Hola 👩‍👩‍👧 ¿qué tal?"),
    ],
)
def test_terminal_safe(body: str, shown: str) -> None:
    assert terminal_safe(body) == shown
