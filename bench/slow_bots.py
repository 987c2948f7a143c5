"""The bots of the slow-handler benchmark (``TEXTBACK_BOT=bench.slow_bots:inline`` / ``:slow``):
one handler answering every message, inline or slow. The slow one's webhook answers with its
ack; its handler runs later in a worker (none runs during the measurement)."""

from __future__ import annotations

from textback import Bot
from textback.core.message import Inbound

inline = Bot()
slow = Bot()


@inline.fallback
def thanks(msg: Inbound) -> str:
    return "Thanks, your vote is counted."


@slow.fallback(slow=True, ack="Thanks, counting your vote.")
def count_later(msg: Inbound) -> str:
    return "Your vote is counted."
