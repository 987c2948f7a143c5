"""What the rules file's tables share: strict pydantic config and plain-English errors."""

from __future__ import annotations

import difflib

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import ValidationError

# A rules-file table: unknown keys and wrong types are errors, not silently ignored.
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def check_media(media: list[str]) -> list[str]:
    """Media URLs must be absolute http(s) URLs (or a template that makes one)."""
    for url in media:
        if not url.startswith(("https://", "http://", "{")):
            raise ValueError(f"media URL {url!r} must start with https:// or http://")
    return media


def problem(exc: ValidationError, model: type[BaseModel]) -> str:
    """A pydantic error as one line for people: unknown keys get a "did you mean"."""
    problems = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc, list(model.model_fields), n=1)
            problems.append(
                f"unknown key {loc!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            )
        elif error["type"] == "missing":
            problems.append(f"missing key {loc!r}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {message}" if loc else message)
    return "; ".join(problems)
