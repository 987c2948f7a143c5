"""A broadcast's text filled in for one contact: ``"Hi {contact.name|there}"``.

The names a broadcast may use are ``{contact.name}``, ``{contact.language}``,
``{contact.timezone}``, ``{contact.phone}`` and ``{contact.fields.X}`` for any field ``X``; each
may carry a default after a ``|`` for a contact who has no value (``{contact.name|there}``).
A value missing without a default is left empty. ``{{`` and ``}}`` write literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from textback.core.profile import ContactProfile

PLAIN = ("name", "language", "timezone", "phone")
NAME = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class BroadcastTextError(ValueError):
    """A broadcast text with an unknown name or a stray brace."""


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{contact.…}`` in a text: what it names (``name``, ``fields.city``) and its default."""

    name: str
    default: str | None

    @property
    def field(self) -> str | None:
        """The custom field it names, or None for a fixed one."""
        return self.name.removeprefix("fields.") if self.name.startswith("fields.") else None


def placeholders(text: str) -> list[Placeholder]:
    """Every name ``text`` uses, in order; BroadcastTextError for one that is not known."""
    found = []
    for match in NAME.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise BroadcastTextError(
                f"a lone {token!r} in {text!r}; write {token * 2} for a literal brace"
            )
        found.append(_placeholder(match.group(1), text))
    return found


def _placeholder(inner: str, text: str) -> Placeholder:
    name, bar, default = inner.partition("|")
    name = name.strip()
    known = ", ".join("{contact." + plain + "}" for plain in PLAIN) + ", {contact.fields.NAME}"
    if not name.startswith("contact."):
        raise BroadcastTextError(f"unknown name {{{inner}}} in {text!r}; available: {known}")
    rest = name.removeprefix("contact.")
    field = rest.removeprefix("fields.") if rest.startswith("fields.") else None
    if rest not in PLAIN and not (field and field.replace("_", "").replace("-", "").isalnum()):
        raise BroadcastTextError(f"unknown name {{{inner}}} in {text!r}; available: {known}")
    return Placeholder(rest, default if bar else None)


def check_fields(text: str, fields: Collection[str]) -> None:
    """Refuse a ``{contact.fields.X}`` without a default when no contact has field ``X``
    (``fields``: the fields the recipients have): most likely a typo."""
    for placeholder in placeholders(text):
        field = placeholder.field
        if field is not None and placeholder.default is None and field not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise BroadcastTextError(
                f"no recipient has a field {field!r} ({{contact.fields.{field}}}); "
                f"their fields: {known}; or give a default: {{contact.fields.{field}|...}}"
            )


def render_for_contact(text: str, profile: ContactProfile) -> str:
    """``text`` with every ``{contact.…}`` replaced by ``profile``'s value (or the default)."""
    placeholders(text)  # an unknown name is refused, never sent as it is

    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        placeholder = _placeholder(match.group(1), text)
        field = placeholder.field
        if field is not None:
            found = str(profile.fields.get(field, "") or "")
        elif placeholder.name == "phone":
            found = profile.number
        else:
            found = str(getattr(profile, placeholder.name) or "")
        return found if found else (placeholder.default or "")

    return NAME.sub(value, text)
