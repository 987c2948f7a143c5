"""What ``textback check`` says about the ``{contact.…}`` names a rules file uses.

A misspelt ``{contact.nmae}`` is an error when the file is loaded (core.templates). Custom
fields are open-ended, so a field no contact has yet is only a warning: an import with that
column, or a flow that saves it (``save_to``), brings it.
"""

from __future__ import annotations

from collections.abc import Collection

from textback.core.profile import FIELDS
from textback.core.ruleset import RuleSet


def saved_fields(rules: RuleSet) -> set[str]:
    """The custom fields the rules file's flows save to (``save_to = "contact.city"``)."""
    return {
        step.save_to.removeprefix(FIELDS)
        for flow in rules.flows
        for step in flow.steps
        if step.save_to is not None and step.save_to.startswith(FIELDS)
    }


def missing_fields(rules: RuleSet, known: Collection[str]) -> list[str]:
    """A warning for each template naming a field that no contact in ``known`` has and no flow
    saves, naming the file and the rule or flow."""
    have = set(known) | saved_fields(rules)
    warnings = []
    for where, name in rules.contact_names:
        field = name.removeprefix(FIELDS)
        if name.startswith(FIELDS) and field not in have:
            warnings.append(
                f"{rules.path}: {where}: no contact has the field {field!r}: "
                f"{{contact.fields.{field}}} stays empty (or its default) until an import or "
                "a flow's save_to gives it"
            )
    return warnings
