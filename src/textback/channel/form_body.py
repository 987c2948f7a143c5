"""A webhook's ``application/x-www-form-urlencoded`` body, read into pairs.

The result is exactly ``urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict")``
(tests/test_form_body.py compares the two), in about half the time: a Twilio webhook has 19
fields, most with nothing escaped, and ``parse_qsl`` unquotes every name and value through two
function calls even then. This is the first thing every webhook costs.
"""

from __future__ import annotations

from urllib.parse import unquote


def parse_form(text: str) -> list[tuple[str, str]]:
    """The fields of a form body, in order; a field without ``=`` has the value ``""``.

    Raises UnicodeDecodeError (a ValueError) when a %-escape is not UTF-8, as parse_qsl does.
    """
    pairs = []
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((_unquoted(name), _unquoted(value)))
    return pairs


def _unquoted(part: str) -> str:
    if "+" in part:
        part = part.replace("+", " ")
    if "%" in part:
        part = unquote(part, errors="strict")
    return part
