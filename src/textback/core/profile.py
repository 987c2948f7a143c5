"""Who a contact is, as templates, flows and broadcasts see them. Plain values, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from types import MappingProxyType

FIXED = ("phone", "name", "language", "timezone", "groups")


@dataclass(frozen=True, slots=True)
class ContactProfile:
    """A phone number (E.164) with a name, a language, a time zone, custom fields and groups."""

    number: str
    name: str = ""
    language: str = ""
    timezone: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    groups: tuple[str, ...] = ()
