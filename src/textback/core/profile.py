"""Who a contact is, as templates, flows and broadcasts see them. Plain values, no I/O.

A profile's values are named as templates name them after ``contact.``: ``name``,
``language``, ``timezone``, ``phone`` and ``fields.NAME`` for a custom field. What a flow
learns for the contact (``save_to``) is a mapping of such names to the new values: every
name but ``phone`` may be changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from types import MappingProxyType
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from textback.errors import TextbackError

FIXED = ("phone", "name", "language", "timezone", "groups")
# The names of a profile's own values, as templates write them after ``contact.``.
ATTRIBUTES = ("name", "language", "timezone", "phone")
CHANGEABLE = ("name", "language", "timezone")
FIELDS = "fields."

# The sizes of the profile's columns (storage/models.py Profile).
MAX_NAME = 200
MAX_LANGUAGE = 16
MAX_TIMEZONE = 64
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*")
_GROUP = re.compile(r"[\w][\w .-]{0,99}")


@dataclass(frozen=True, slots=True)
class ContactProfile:
    """A phone number (E.164) with a name, a language, a time zone, custom fields and groups."""

    number: str
    name: str = ""
    language: str = ""
    timezone: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    groups: tuple[str, ...] = ()

    def value(self, name: str) -> str:
        """The value a template's ``contact.NAME`` shows ("" when it is not set)."""
        if name == "phone":
            return self.number
        if name.startswith(FIELDS):
            return str(self.fields.get(name.removeprefix(FIELDS), ""))
        return str(getattr(self, name))

    def changed(self, changes: Mapping[str, str]) -> ContactProfile:
        """This profile with ``changes`` (names as in ``value``) applied."""
        if not changes:
            return self
        fields = {
            name.removeprefix(FIELDS): value
            for name, value in changes.items()
            if name.startswith(FIELDS)
        }
        return replace(
            self,
            name=changes.get("name", self.name),
            language=changes.get("language", self.language),
            timezone=changes.get("timezone", self.timezone),
            fields=MappingProxyType({**self.fields, **fields}) if fields else self.fields,
        )


def target(written: str) -> str:
    """A flow's ``save_to`` (``contact.city``, ``contact.fields.city``, ``contact.name``) as
    the name of the value it changes (``fields.city``, ``name``); ValueError when it names
    nothing a flow may change."""
    rest = written.removeprefix("contact.")
    if rest == written or not rest:
        raise ValueError(
            f"save_to = {written!r}: write contact.NAME, like contact.city or contact.name"
        )
    if rest in CHANGEABLE:
        return rest
    if rest in ("phone", "groups"):
        raise ValueError(f"save_to = {written!r}: a flow cannot change the contact's {rest}")
    field_part = rest.removeprefix(FIELDS)
    if not FIELD_NAME.fullmatch(field_part):
        raise ValueError(
            f"save_to = {written!r}: a field name is lowercase letters, digits and _, "
            "starting with a letter (like contact.city)"
        )
    return FIELDS + field_part


def value_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be the contact's ``name`` (as in ``ContactProfile.value``), or None."""
    if name == "name" and len(value) > MAX_NAME:
        return f"a name is at most {MAX_NAME} characters"
    if name == "language" and value and not _is_language(value):
        return f"language {_quoted(value)}: give a code like en, es or pt-BR"
    if name == "timezone" and value and not _is_timezone(value):
        return f"time zone {_quoted(value)}: give one like America/Chicago"
    return None


def _quoted(value: str, limit: int = 40) -> str:
    """``value`` as a message quotes it: cut, since a pasted page would make the message (one
    line of an import, a flash riding in the admin's session cookie) as long."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _is_language(value: str) -> bool:
    return len(value) <= MAX_LANGUAGE and _LANGUAGE.fullmatch(value) is not None


def _is_timezone(value: str) -> bool:
    if len(value) > MAX_TIMEZONE:
        return False
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def group_problem(group: str) -> str | None:
    """Why ``group`` cannot be a group's name, or None."""
    if not _GROUP.fullmatch(group):
        return f"group {_quoted(group)}: letters, digits, spaces, '.', '-' and '_' only"
    return None


def split_groups(text: str) -> tuple[str, ...]:
    """Groups written ``patients; volunteers``, in order, each once."""
    return tuple(dict.fromkeys(g.strip() for g in text.split(";") if g.strip()))


def edited(
    number: str,
    *,
    name: str,
    language: str,
    timezone: str,
    groups: str,
    fields: Iterable[tuple[str, str]],
) -> ContactProfile:
    """A profile as a person typed it (the admin's form): values trimmed, groups separated by
    ``;``, a field left empty removed. Raises TextbackError naming the first thing wrong."""
    values = {"name": name.strip(), "language": language.strip(), "timezone": timezone.strip()}
    for key, value in values.items():
        found = value_problem(key, value)
        if found is not None:
            raise TextbackError(found)
    names = split_groups(groups)
    for group in names:
        found = group_problem(group)
        if found is not None:
            raise TextbackError(found)
    kept: dict[str, str] = {}
    for key, value in fields:
        key, value = key.strip(), value.strip()
        if not key and not value:
            continue
        if not FIELD_NAME.fullmatch(key):
            raise TextbackError(
                f"field {_quoted(key)}: a field name is lowercase letters, digits and _, "
                "starting with a letter"
            )
        if value:
            kept[key] = value
    return ContactProfile(number, fields=MappingProxyType(kept), groups=names, **values)
