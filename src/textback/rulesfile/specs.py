"""What the rules file's tables share: strict pydantic config and plain-English errors."""

from __future__ import annotations

import difflib

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import ValidationError

from textback.core.body_length import too_long
from textback.core.templates import Template

# A rules-file table: unknown keys and wrong types are errors, not silently ignored.
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def check_media(media: list[str]) -> list[str]:
    """Media URLs must be absolute http(s) URLs (or a template that makes one)."""
    for url in media:
        if not url.startswith(("https://", "http://", "{")):
            raise ValueError(f"media URL {url!r} must start with https:// or http://")
    return media


def check_length(text: Template, what: str = "reply") -> None:
    """Refuse a reply too long for Twilio whatever fills it in: its fixed text alone is."""
    found = too_long(text.fixed_text)
    if found is not None:
        raise ValueError(f"{what} is {found}")


def problem(exc: ValidationError, model: type[BaseModel]) -> str:
    """A pydantic error as one line for people: unknown keys first, with a "did you mean".

    A key reported missing because it was misspelt is mentioned once, as the suggestion.
    """
    unknown: list[str] = []
    others: list[tuple[str, str]] = []
    suggested: set[str] = set()
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc, list(model.model_fields), n=1)
            suggested.update(close)
            unknown.append(
                f"unknown key {loc!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            )
        elif error["type"] == "missing":
            others.append((loc, f"missing key {loc!r}"))
        else:
            message = error["msg"].removeprefix("Value error, ")
            others.append(("", f"{loc}: {message}" if loc else message))
    return "; ".join([*unknown, *(text for loc, text in others if loc not in suggested)])
