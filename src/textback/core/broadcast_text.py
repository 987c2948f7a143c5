"""A broadcast's text filled in for one contact: ``"Hi {contact.name|there}"``.

A broadcast is a reply template (core/templates.py) that may name only the contact:
``{contact.name}``, ``{contact.language}``, ``{contact.timezone}``, ``{contact.phone}`` and
``{contact.fields.X}``, each with an optional default after a ``|`` for a contact who has no
value (``{contact.name|there}``). A value missing without a default is left empty. ``{{`` and
``}}`` write literal braces. The parsing is the templates'; this module adds what a broadcast
needs on top: its own error, and the check that a field without a default exists at all.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from textback.core.profile import FIELDS
from textback.core.profile import ContactProfile
from textback.core.templates import CONTACT
from textback.core.templates import Template
from textback.core.templates import TemplateError


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
        return self.name.removeprefix(FIELDS) if self.name.startswith(FIELDS) else None


def template(text: str) -> Template:
    """``text`` as a template naming only the contact; BroadcastTextError when it can't be."""
    try:
        return Template(text, (CONTACT,))
    except TemplateError as exc:
        raise BroadcastTextError(str(exc)) from None


def placeholders(text: str) -> list[Placeholder]:
    """Every name ``text`` uses, in order; BroadcastTextError for one that is not known."""
    return [Placeholder(name.name, name.default) for name in template(text).contact]


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
    return template(text).fill({}, profile)
