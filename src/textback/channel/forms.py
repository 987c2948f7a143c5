"""Realistic Twilio webhooks for our own tools: ``textback simulate``, the pytest plugin, the
browser phone. The form has every parameter Twilio sends for an SMS, in Twilio's order, and is
signed with the real algorithm.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from collections.abc import Sequence
from urllib.parse import urlencode

from textback.channel.signature import SIGNATURE_HEADER
from textback.channel.signature import sign
from textback.core.encoding import segment_count

DEFAULT_FROM = "+15550001111"
DEFAULT_TO = "+15559990000"
ACCOUNT_SID = "AC" + "0" * 32


def new_sid(prefix: str = "SM") -> str:
    """A fresh MessageSid: ``SM`` (or ``MM`` for MMS) and 32 hex digits, like Twilio's."""
    return prefix + secrets.token_hex(16)


def inbound_form(
    body: str,
    *,
    from_: str = DEFAULT_FROM,
    to: str = DEFAULT_TO,
    media: Sequence[tuple[str, str]] = (),
    sid: str | None = None,
    account_sid: str = ACCOUNT_SID,
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The form Twilio posts for an inbound SMS or MMS (``media`` is (url, content type) pairs)."""
    sid = sid or new_sid("MM" if media else "SM")
    pairs: list[tuple[str, str]] = [("ToCountry", "US"), ("ToState", "CA")]
    pairs += [(f"MediaContentType{i}", kind) for i, (_, kind) in enumerate(media)]
    pairs += [
        ("SmsMessageSid", sid),
        ("NumMedia", str(len(media))),
        ("ToCity", "SAN FRANCISCO"),
        ("FromZip", "94105"),
        ("SmsSid", sid),
        ("FromState", "CA"),
        ("SmsStatus", "received"),
        ("FromCity", "SAN FRANCISCO"),
        ("Body", body),
        ("FromCountry", "US"),
        ("To", to),
        ("ToZip", "94105"),
        ("NumSegments", str(segment_count(body))),
        ("MessageSid", sid),
        ("AccountSid", account_sid),
        ("From", from_),
    ]
    pairs += [(f"MediaUrl{i}", url) for i, (url, _) in enumerate(media)]
    pairs.append(("ApiVersion", "2010-04-01"))
    pairs += list(extra)
    return pairs


def status_form(
    sid: str,
    status: str,
    *,
    from_: str = DEFAULT_TO,
    to: str = DEFAULT_FROM,
    error_code: str | None = None,
    account_sid: str = ACCOUNT_SID,
) -> list[tuple[str, str]]:
    """The form of a delivery status callback."""
    pairs = [("ErrorCode", error_code)] if error_code else []
    return [
        *pairs,
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", to),
        ("MessageSid", sid),
        ("AccountSid", account_sid),
        ("From", from_),
        ("ApiVersion", "2010-04-01"),
    ]


def signed_request(
    token: str, url: str, pairs: Sequence[tuple[str, str]]
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a POST of ``pairs`` to ``url``, signed as Twilio signs it."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        SIGNATURE_HEADER: sign(token, url, pairs),
        "User-Agent": "TwilioProxy/1.1",
    }
    return urlencode(pairs).encode(), headers
