"""Reply templates: ``"Order {id} is on its way."``, checked when the rules file is loaded."""

from __future__ import annotations

import string
from collections.abc import Collection
from collections.abc import Mapping

MESSAGE_FIELDS = frozenset({"from", "to", "body"})


class TemplateError(ValueError):
    """A template that can't be filled in: unbalanced braces or an unknown name."""


class Template:
    """A str.format template whose field names are checked up front."""

    def __init__(self, text: str, available: Collection[str]) -> None:
        self.text = text
        self.fields = template_fields(text)
        unknown = sorted(self.fields - set(available))
        if unknown:
            names = ", ".join("{" + name + "}" for name in unknown)
            known = ", ".join("{" + name + "}" for name in sorted(available))
            raise TemplateError(f"unknown name {names} in {text!r}; available: {known}")

    @property
    def fixed_text(self) -> str:
        """The text without its fields: what every filled-in reply contains at least."""
        return "".join(literal for literal, *_ in string.Formatter().parse(self.text))

    def fill(self, values: Mapping[str, str]) -> str:
        """The text with every ``{name}`` replaced (the constant text when there are none)."""
        if not self.fields:
            return self.text.replace("{{", "{").replace("}}", "}")
        return self.text.format_map(values)


def template_fields(text: str) -> frozenset[str]:
    """The names a template uses; only plain names are allowed."""
    names = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{exc} in {text!r}; write {{{{ or }}}} for a literal brace") from exc
    for _, field_name, format_spec, _ in parsed:
        if field_name is None:
            continue
        if format_spec and "{" in format_spec:
            raise TemplateError(f"nested fields are not supported in {text!r}")
        if not field_name.isidentifier():
            shown = "{" + field_name + "}"
            raise TemplateError(f"{shown} in {text!r} is not a plain name like {{from}}")
        names.add(field_name)
    return frozenset(names)
