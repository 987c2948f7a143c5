"""Reply templates: ``"Order {id} is on its way."``, checked when the rules file is loaded.

Besides plain names (the message's ``{from}``, ``{to}``, ``{body}``, a pattern's groups, a
flow's saved answers) a template may name the contact: ``{contact.name}``,
``{contact.language}``, ``{contact.timezone}``, ``{contact.phone}`` and a custom field,
``{contact.fields.city}``; a value that is not set is empty, or the default written after a
``|``: ``{contact.name|there}``.
"""

from __future__ import annotations

import string
from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import dataclass

from textback.core.profile import ATTRIBUTES
from textback.core.profile import FIELD_NAME
from textback.core.profile import FIELDS
from textback.core.profile import ContactProfile

MESSAGE_FIELDS = frozenset({"from", "to", "body"})
# Given in ``available``: the template may name the contact (``{contact.name}``...).
CONTACT = "contact.*"
CONTACT_NAMES = (*(f"contact.{name}" for name in ATTRIBUTES), "contact.fields.NAME")


class TemplateError(ValueError):
    """A template that can't be filled in: unbalanced braces or an unknown name."""


@dataclass(frozen=True, slots=True)
class ContactName:
    """A ``{contact.…}`` of a template: the profile value it shows, and its default."""

    name: str  # as ContactProfile.value takes it: "name", "fields.city"
    default: str | None  # None: no ``|`` written (the value may be empty)
    key: str  # its plain key in the text the template is filled from

    def value_of(self, contact: ContactProfile | None) -> str:
        """The contact's value, or the default when it is not set."""
        value = contact.value(self.name) if contact is not None else ""
        return value or self.default or ""


class Template:
    """A str.format template whose field names are checked up front."""

    def __init__(self, text: str, available: Collection[str]) -> None:
        self.text = text
        pieces = _parse(text)
        plain: set[str] = set()
        contact: list[ContactName] = []
        keys: list[str] = []  # each field's key in the text filled in
        for _, field_name, format_spec, conversion in pieces:
            if field_name is None:
                continue
            if _is_contact(field_name, available):
                if CONTACT not in available:
                    raise TemplateError(f"unknown name {{{field_name}}} in {text!r}")
                contact.append(_contact_name(field_name, conversion, format_spec, text, contact))
                keys.append(contact[-1].key)
            else:
                if format_spec and "{" in format_spec:
                    raise TemplateError(f"nested fields are not supported in {text!r}")
                plain.add(_plain_name(field_name, text))
                keys.append(field_name)
        self.fields = frozenset(plain)
        self.contact = tuple(contact)
        unknown = sorted(self.fields - set(available))
        if unknown:
            names = ", ".join("{" + name + "}" for name in unknown)
            known = sorted(name for name in available if name != CONTACT)
            if CONTACT in available:
                known.extend(CONTACT_NAMES)
            shown = ", ".join("{" + name + "}" for name in known)
            raise TemplateError(f"unknown name {names} in {text!r}; available: {shown}")
        self._format = _rewritten(pieces, keys) if self.contact else text

    @property
    def uses_contact(self) -> bool:
        """Whether the template names the contact (so the profile must be loaded to fill it)."""
        return bool(self.contact)

    @property
    def contact_fields(self) -> frozenset[str]:
        """The custom fields it names (``city`` for ``{contact.fields.city}``)."""
        return frozenset(
            c.name.removeprefix(FIELDS) for c in self.contact if c.name.startswith(FIELDS)
        )

    @property
    def fixed_text(self) -> str:
        """The text without its fields: what every filled-in reply contains at least."""
        return "".join(literal for literal, *_ in string.Formatter().parse(self.text))

    def fill(self, values: Mapping[str, str], contact: ContactProfile | None = None) -> str:
        """The text with every ``{name}`` replaced (the constant text when there are none);
        ``{contact.…}`` from ``contact`` (defaults only, when None)."""
        if not self.fields and not self.contact:
            return self.text.replace("{{", "{").replace("}}", "}")
        if self.contact:
            values = {**values, **{c.key: c.value_of(contact) for c in self.contact}}
        return self._format.format_map(values)


Piece = tuple[str, str | None, str | None, str | None]


def _parse(text: str) -> list[Piece]:
    try:
        return list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{exc} in {text!r}; write {{{{ or }}}} for a literal brace") from exc


def _is_contact(field_name: str, available: Collection[str]) -> bool:
    if field_name in available:  # a pattern's group may be called "contact"
        return False
    name = field_name.strip()  # {contact.name} may be written { contact.name }
    return name == "contact" or name.startswith("contact.") or "|" in field_name


def _plain_name(field_name: str, text: str) -> str:
    if not field_name.isidentifier():
        shown = "{" + field_name + "}"
        raise TemplateError(f"{shown} in {text!r} is not a plain name like {{from}}")
    return field_name


def _contact_name(
    field_name: str,
    conversion: str | None,
    format_spec: str | None,
    text: str,
    earlier: list[ContactName],
) -> ContactName:
    shown = "{" + field_name + "}"
    name, bar, default = field_name.partition("|")
    name = name.strip()
    if name == "contact":
        raise TemplateError(
            f"{shown} in {text!r}: name one of the contact's values, like {{contact.name}}"
        )
    if not name.startswith("contact."):
        raise TemplateError(
            f"{shown} in {text!r}: a default after | is for the contact's names only, "
            "like {contact.name|there}"
        )
    if conversion or format_spec:
        raise TemplateError(
            f"{shown} in {text!r}: a contact's name takes no ! or : (nor may its default)"
        )
    if "{" in default or "}" in default:
        raise TemplateError(f"{shown} in {text!r}: a default cannot contain braces")
    rest = name.removeprefix("contact.")
    if rest.startswith(FIELDS) or rest == "fields":
        field_part = rest.removeprefix(FIELDS) if rest != "fields" else ""
        if not FIELD_NAME.fullmatch(field_part):
            raise TemplateError(
                f"{shown} in {text!r}: a field is named like {{contact.fields.city}} (lowercase "
                "letters, digits and _, as `textback contacts import` names a column)"
            )
    elif rest not in ATTRIBUTES:
        known = ", ".join("{" + n + "}" for n in CONTACT_NAMES)
        raise TemplateError(f"unknown name {{{name}}} in {text!r}; a contact has {known}")
    return ContactName(rest, default if bar else None, f"contact#{len(earlier)}")


def _rewritten(pieces: list[Piece], keys: list[str]) -> str:
    """The template as a str.format text with each field under its plain key."""
    out = []
    fields = iter(keys)
    for literal, field_name, format_spec, conversion in pieces:
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field_name is not None:
            suffix = (f"!{conversion}" if conversion else "") + (
                f":{format_spec}" if format_spec else ""
            )
            out.append("{" + next(fields) + suffix + "}")
    return "".join(out)
