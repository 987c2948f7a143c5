"""A contact's conversation as handlers see it: its state and the values saved so far."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field


@dataclass(slots=True)
class Conversation:
    """The contact's open conversation, loaded before dispatch and saved with the reply.

    Handlers that take a ``conversation`` parameter may read ``state`` and read or write
    ``values``; what they write is stored in the same transaction as the reply. ``flow`` is the
    name of the rules file's flow the conversation belongs to ("" for a Python conversation).
    """

    state: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    flow: str = ""

    def copy(self) -> Conversation:
        """A copy whose values can be changed without touching this one's."""
        return Conversation(self.state, dict(self.values), self.flow)
