"""Quiet hours (TEXTBACK_QUIET_HOURS, like ``21:00-08:00``): when a broadcast waits.

Kept in each contact's own time zone. A message due inside them is sent when they end; a span
whose end is before its start (``21:00-08:00``) runs over midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import time
from datetime import timedelta
from zoneinfo import ZoneInfo

# What the outbox holds back in quiet hours: messages we start, never replies to a contact.
HELD_SOURCES = frozenset({"broadcast", "flow-start"})
# A flow's timers (core/flows.py): "flow survey step 2 remind", "flow survey expired".
HELD_TIMER_ENDINGS = (" remind", " expired")


def is_held(source: str) -> bool:
    """Whether quiet hours hold a message from ``source``: a broadcast, the first question of
    a flow we start, and a flow's reminders and expiry messages (sent when nobody answered, so
    never a reply); never a reply to a contact's own message."""
    return source in HELD_SOURCES or (
        source.startswith("flow ") and source.endswith(HELD_TIMER_ENDINGS)
    )


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily span, in minutes after midnight local time: [start, end)."""

    start: int
    end: int

    def __str__(self) -> str:
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )

    def contains(self, minute: int) -> bool:
        """Whether the local time ``minute`` (after midnight) is inside the span."""
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def ends(self, when: datetime, zone: ZoneInfo) -> datetime | None:
        """When the span ``when`` falls inside ends (in UTC), or None when it is outside."""
        local = when.astimezone(zone)
        if not self.contains(local.hour * 60 + local.minute):
            return None
        end = time(self.end // 60, self.end % 60)
        day = local.date()
        if local.time() >= end:  # the span runs over midnight: it ends tomorrow
            day += timedelta(days=1)
        return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def quiet_hours(span: tuple[int, int] | None) -> QuietHours | None:
    """The Settings' (start, end) minutes as QuietHours; None when none are set."""
    return None if span is None else QuietHours(*span)


def release_time(quiet: QuietHours | None, when: datetime, zone: ZoneInfo) -> datetime | None:
    """When a message due at ``when`` may be sent if quiet hours hold it, else None."""
    return None if quiet is None else quiet.ends(when, zone)
