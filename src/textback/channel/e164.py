"""Phone numbers as Twilio writes them (E.164, ``+14155550100``), from what a person types.

Google's libphonenumber (the ``phonenumbers`` package) does the parsing: ``(415) 555-0100``,
``415.555.0100`` and ``+1 415 555 0100`` are one number, and a number in national format gets
its country code from the default region (``TEXTBACK_DEFAULT_REGION``, US by default).
"""

from __future__ import annotations

import re

import phonenumbers

from textback.errors import InvalidNumber

DEFAULT_REGION = "US"
# A channel address such as whatsapp:+14155550100 keeps its prefix; the number is normalised.
_CHANNEL = re.compile(r"^([a-z]+:)(.*)$", re.IGNORECASE)
# A short code: 5 or 6 digits in North America, 3 to 8 elsewhere.
_SHORT_CODE = {"US": re.compile(r"[0-9]{5,6}"), "CA": re.compile(r"[0-9]{5,6}")}
_ANY_SHORT_CODE = re.compile(r"[0-9]{3,8}")


def e164(number: str, region: str = DEFAULT_REGION) -> str:
    """``number`` in E.164, read in ``region``'s national format unless it starts with ``+``.

    A channel address keeps its prefix (``whatsapp:+14155550100``) and a short code its digits.
    Raises InvalidNumber, naming what was typed, when it cannot be a phone number (by
    libphonenumber's length rules: numbers reserved for fiction, like 555-01xx, pass).
    """
    text = number.strip()
    region = region.upper()
    channel = _CHANNEL.match(text)
    if channel is not None:
        return channel.group(1).lower() + e164(channel.group(2), region)
    problem = "not a phone number"
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None:
        reason = phonenumbers.is_possible_number_with_reason(parsed)
        if reason == phonenumbers.ValidationResult.IS_POSSIBLE:
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if _SHORT_CODE.get(region, _ANY_SHORT_CODE).fullmatch(text):
            return text
        problem = "not a whole phone number (too short or too long)"
    raise InvalidNumber(
        f"{number!r} is {problem}: write it as +14155550100, or in the national format of "
        f"TEXTBACK_DEFAULT_REGION={region}"
    )
