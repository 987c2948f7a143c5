"""RuleSet: what a rules file says, as the responder uses it. No parsing here (see rulesfile)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from textback.core.bot import Route
from textback.core.flows import ConversationSettings
from textback.core.flows import Flow
from textback.core.optout import OptOutPolicy


@dataclass(frozen=True)
class RuleSet:
    """What a rules file says: rules in file order, the default reply, the opt-out policy,
    the flows, the ``[conversations]`` settings, and the reply sent when a handler fails
    (``[default] error_reply``; empty: none). ``contact_names`` are the ``{contact.…}`` its
    templates use, with where (``rule 2 (keyword 'hi')``, ``fields.city``)."""

    routes: tuple[Route, ...] = ()
    default: Route | None = None
    optout: OptOutPolicy = field(default_factory=OptOutPolicy)
    path: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    flows: tuple[Flow, ...] = ()
    conversations: ConversationSettings = field(default_factory=ConversationSettings)
    error_reply: str = ""
    contact_names: tuple[tuple[str, str], ...] = ()

    @property
    def wants_contact(self) -> bool:
        """Whether a template names the contact (so the sender's profile must be loaded)."""
        return bool(self.contact_names)

    def flow(self, name: str) -> Flow | None:
        """The flow called ``name``, if the file has one."""
        return next((flow for flow in self.flows if flow.name == name), None)
