"""Quiet hours at sending time: a broadcast's message due inside them waits until they end.

Only messages we start are held (sources in core.quiet_hours.is_held): a reply to a
contact's own message, from the webhook, a slow handler or a person in the admin, never is.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from textback.channel.timezones import guess_timezone
from textback.config import Settings
from textback.core.quiet_hours import is_held
from textback.core.quiet_hours import quiet_hours
from textback.storage.profiles import profile_of
from textback.storage.store import Store


def contact_zone(settings: Settings, timezone: str, number: str) -> ZoneInfo:
    """A contact's time zone: their own, else the one of their number's country (when it has
    one), else TEXTBACK_TIMEZONE."""
    for name in (timezone, guess_timezone(number)):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo(settings.timezone)


def hold_until(
    settings: Settings, store: Store, *, source: str, to: str, when: datetime
) -> datetime | None:
    """When a message from ``source`` to ``to``, due at ``when``, may be sent if quiet hours
    hold it; None when it may be sent now."""
    quiet = quiet_hours(settings.quiet_hours)
    if quiet is None or not is_held(source):
        return None
    with store.engine.connect() as connection:
        profile = profile_of(connection, to)
    zone = contact_zone(settings, profile.timezone if profile else "", to)
    return quiet.ends(when, zone)


def held_reason(until: datetime) -> str:
    """The outbox row's reason while quiet hours hold it."""
    return f"quiet hours until {until:%Y-%m-%d %H:%M UTC}"
