"""textback: a secure, storage-backed server that answers SMS text messages through Twilio.

``from textback import Bot, Reply`` loads only the Flask-free core; ``create_app`` (Flask,
SQLAlchemy, twilio) is imported the first time it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from textback.core.bot import Bot
from textback.core.conversation import Conversation
from textback.core.message import END
from textback.core.message import Inbound
from textback.core.message import Media
from textback.core.message import Reply
from textback.core.profile import ContactProfile
from textback.errors import ConfigError
from textback.errors import RulesError
from textback.errors import TextbackError

if TYPE_CHECKING:
    from textback.app import create_app

__all__ = [
    "END",
    "Bot",
    "ConfigError",
    "ContactProfile",
    "Conversation",
    "Inbound",
    "Media",
    "Reply",
    "RulesError",
    "TextbackError",
    "create_app",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from textback.app import create_app

        return create_app
    raise AttributeError(f"module 'textback' has no attribute {name!r}")
