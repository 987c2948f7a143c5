"""textback: a secure, storage-backed server that answers SMS text messages through Twilio."""

from __future__ import annotations

from .app import create_app
from .bot import Bot
from .conversation import Conversation
from .errors import ConfigError
from .errors import RulesError
from .errors import TextbackError
from .message import END
from .message import Inbound
from .message import Media
from .message import Reply

__all__ = [
    "END",
    "Bot",
    "ConfigError",
    "Conversation",
    "Inbound",
    "Media",
    "Reply",
    "RulesError",
    "TextbackError",
    "create_app",
]
__version__ = "0.1.0"
