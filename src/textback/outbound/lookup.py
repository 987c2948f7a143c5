"""Whether a send of unknown outcome reached Twilio: look for it in Twilio's message list.

A worker that died during the API call (or got a timeout or a 5xx) cannot know whether Twilio
created the message. Before anything is sent again, the messages to the same number from the
same sender are listed, and one created since the call began with the same body is taken to be
ours. The list is asked by To and From only, not by DateSent: a message still queued at Twilio
has no DateSent yet, and a DateSent filter would hide exactly the message we look for.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime
from datetime import timedelta
from typing import Any

from twilio.rest import Client

from textback.errors import TextbackError

# Twilio's clock and ours may differ by a little; a message created just before our note of the
# call's start is still ours.
CLOCK_SKEW = timedelta(seconds=120)
LOOKUP_LIMIT = 200


class AmbiguousLookup(TextbackError):
    """More than one message in Twilio's list could be ours: a person must decide."""


def find_sent(
    client: Client,
    *,
    sender: str,
    to: str,
    body: str,
    since: datetime,
    messaging_service: bool,
    taken: Callable[[Iterable[str]], set[str]],
) -> str | None:
    """The SID of the message Twilio created for this send, or None if it created none.

    ``taken`` filters out SIDs other outbox rows already own (two sends of one text to one
    number are two rows, each with its own SID). Raises AmbiguousLookup when several match.
    """
    options: dict[str, Any] = {"to": to, "limit": LOOKUP_LIMIT}
    if not messaging_service:
        options["from_"] = sender
    earliest = since - CLOCK_SKEW
    candidates = [
        str(message.sid)
        for message in client.messages.list(**options)
        if (message.body or "") == body
        and message.date_created is not None
        and message.date_created >= earliest
        and (not messaging_service or message.messaging_service_sid == sender)
        and str(message.direction or "").startswith("outbound")
    ]
    owned = taken(candidates)
    free = [sid for sid in candidates if sid not in owned]
    if len(free) > 1:
        raise AmbiguousLookup(
            f"{len(free)} messages in Twilio's list could be this one ({', '.join(free[:3])})"
        )
    return free[0] if free else None
