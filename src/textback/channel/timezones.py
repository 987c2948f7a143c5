"""A contact's time zone guessed from their number's country, when it has only one."""

from __future__ import annotations

import phonenumbers
from phonenumbers import timezone as number_timezones


def guess_timezone(number: str) -> str:
    """The IANA zone of ``number`` (E.164) when its country or area has exactly one, else ""."""
    try:
        parsed = phonenumbers.parse(number.removeprefix("whatsapp:"), None)
    except phonenumbers.NumberParseException:
        return ""
    found = number_timezones.time_zones_for_number(parsed)
    zones = [zone for zone in found if zone != number_timezones.UNKNOWN_TIMEZONE]
    return zones[0] if len(zones) == 1 else ""
