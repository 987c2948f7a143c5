"""parse_form reads a form body exactly as urllib's parse_qsl(keep_blank_values, strict)."""

from __future__ import annotations

from urllib.parse import parse_qsl
from urllib.parse import urlencode

import pytest

from textback.channel.form_body import parse_form
from textback.channel.forms import inbound_form

CASES = [
    "",
    "&",
    "&&a=1&&",
    "a",
    "a=",
    "=b",
    "=",
    "a=1&a=2&b",
    "Body=Hello+there&From=%2B15550001111",
    "Body=%E2%9C%93+caf%C3%A9&x=%",
    "Body=100%25+sure&y=%2",
    "k%3Dey=va%26lue&sp+ace=a+b+c",
    "Body=a=b=c",
    "Body=%zz&Other=%4",
    "a;b=c&d=e",
    "Body=line%0Aone%0D%0Atwo&Null=%00",
    "Body=\u00e9t\u00e9+direct&Emoji=\U0001f600",
]


@pytest.mark.parametrize("text", CASES)
def test_the_same_as_parse_qsl(text: str) -> None:
    assert parse_form(text) == parse_qsl(text, keep_blank_values=True, errors="strict")


def test_a_whole_twilio_webhook() -> None:
    text = urlencode(inbound_form("VOTE 3 \u2764 & more = 100%", from_="+447700900123"))
    assert parse_form(text) == parse_qsl(text, keep_blank_values=True, errors="strict")


@pytest.mark.parametrize("text", ["Body=%FF", "Body=%C3", "a=%E2%9C"])
def test_escapes_that_are_not_utf8_are_refused_alike(text: str) -> None:
    with pytest.raises(UnicodeDecodeError):
        parse_qsl(text, keep_blank_values=True, errors="strict")
    with pytest.raises(UnicodeDecodeError):
        parse_form(text)
