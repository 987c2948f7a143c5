"""``textback configure-number``: point one of the account's numbers at this server.

The tutorial's console step ("A message comes in: Webhook, HTTP POST") through the REST API:
find the number among the account's ``IncomingPhoneNumbers``, set its ``SmsUrl`` (POST) and
``StatusCallback``, and report each setting's previous value so it can be put back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from textback.channel.e164 import e164
from textback.channel.rest import TwilioApiError
from textback.channel.rest import call
from textback.channel.rest import rest_client
from textback.config import Settings
from textback.core.text import mask_number
from textback.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NumberChange:
    """One setting of a phone number: its name, what it was and what it is now."""

    name: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def webhook_base(url: str) -> str:
    """The public base URL from what a user typed: scheme and host, without ``/twilio``."""
    base = url.strip().rstrip("/")
    if base.endswith("/twilio"):
        base = base[: -len("/twilio")]
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
        raise ConfigError(f"{url!r} is not a public URL: give one like https://abc.ngrok.app")
    return base


@dataclass(frozen=True)
class ConfiguredNumber:
    """What configure_number did: the number, its SID, each setting's change, and whether
    Twilio lists the number as able to receive SMS at all."""

    number: str
    sid: str
    changes: list[NumberChange]
    can_sms: bool

    @property
    def sms_url(self) -> str:
        return self.changes[0].after


def configure_number(settings: Settings, number: str, base_url: str) -> ConfiguredNumber:
    """Point ``number``'s incoming messages (POST) and status callback at ``base_url``.

    ``number`` may be written in national format (``(415) 555-0100``, read in
    TEXTBACK_DEFAULT_REGION). Returns each setting with its previous and new value. Raises
    InvalidNumber for what cannot be a number, TwilioApiError when it is not one of the account's.
    """
    wanted = e164(number, settings.default_region)
    base = webhook_base(base_url)
    client = rest_client(settings)
    numbers = client.incoming_phone_numbers
    # Twilio's PhoneNumber filter also matches parts of numbers: keep the exact one.
    found = [
        item
        for item in call(client, settings, lambda: numbers.list(phone_number=wanted, limit=20))
        if item.phone_number == wanted
    ]
    if not found:
        owned = call(client, settings, lambda: numbers.list(limit=20))
        listing = ", ".join(str(item.phone_number) for item in owned) or "none"
        raise TwilioApiError(
            f"{wanted} is not a number of account {settings.account_sid} (its numbers: {listing})"
        )
    record = found[0]
    targets = {
        "SmsUrl": (str(record.sms_url or ""), f"{base}/twilio"),
        "SmsMethod": (str(record.sms_method or ""), "POST"),
        "StatusCallback": (str(record.status_callback or ""), f"{base}/twilio/status"),
        "StatusCallbackMethod": (str(record.status_callback_method or ""), "POST"),
    }
    call(
        client,
        settings,
        lambda: numbers(record.sid).update(
            sms_url=targets["SmsUrl"][1],
            sms_method="POST",
            status_callback=targets["StatusCallback"][1],
            status_callback_method="POST",
        ),
    )
    log.info("pointed %s (%s) at %s", mask_number(wanted), record.sid, base)
    capabilities = record.capabilities if isinstance(record.capabilities, dict) else {}
    return ConfiguredNumber(
        number=wanted,
        sid=str(record.sid),
        changes=[NumberChange(name, before, after) for name, (before, after) in targets.items()],
        can_sms=bool(capabilities.get("sms", True)),
    )
