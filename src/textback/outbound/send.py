"""Sending on our own, from the CLI, the admin and Python: now, or at a given time.

Both go through the outbox (outbox.py), so a message is sent at most once whatever fails, and
every path refuses a contact who opted out before anything is written or sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy import select

from textback.channel.rest import TwilioApiError
from textback.channel.rest import rest_client
from textback.config import Settings
from textback.core.body_length import sending_problem
from textback.core.text import mask_number
from textback.errors import ConfigError
from textback.errors import InvalidMessage
from textback.errors import TextbackError
from textback.outbound.outbox import Outbox
from textback.outbound.outbox import is_messaging_service
from textback.storage import outbox as states
from textback.storage.models import INBOUND
from textback.storage.store import OptOut
from textback.storage.store import Store
from textback.storage.tables import contacts
from textback.storage.tables import messages

log = logging.getLogger(__name__)


class OptedOutError(TextbackError):
    """The recipient opted out (texted STOP): nothing is sent to them until they opt back in."""

    def __init__(self, opt_out: OptOut) -> None:
        self.opt_out = opt_out
        when = f"at {opt_out.at:%Y-%m-%d %H:%M UTC}" if opt_out.at else "at an unknown time"
        super().__init__(
            f"{opt_out.number} opted out of messages from {opt_out.our_number} {when}; "
            "nothing was sent (they can text START to opt back in)"
        )


def refuse_opted_out(store: Store, sender: str | None, to: str) -> None:
    """Raise OptedOutError when ``to`` may not be messaged from ``sender``.

    Opt-outs are per number of ours, as Twilio keeps them. With no sender known yet, or a
    Messaging Service as the sender (which may pick any of its numbers), an opt-out from any of
    our numbers counts.
    """
    our_number = sender if sender and not is_messaging_service(sender) else None
    opt_out = store.opt_out_of(our_number, to)
    if opt_out is not None:
        raise OptedOutError(opt_out)


def last_number_used(store: Store, to: str) -> str | None:
    """Our number that ``to`` texted most recently, to reply from the same one."""
    latest = (
        select(func.max(messages.c.id))
        .where(messages.c.contact_id == contacts.c.id, messages.c.direction == INBOUND)
        .correlate(contacts)
        .scalar_subquery()
    )
    with store.engine.connect() as connection:
        found = connection.execute(
            select(contacts.c.our_number)
            .where(contacts.c.number == to)
            .order_by(latest.desc().nulls_last(), contacts.c.id.desc())
            .limit(1)
        ).scalar()
    return str(found) if found else None


def _sender(store: Store, to: str, from_: str | None) -> str:
    refuse_opted_out(store, from_, to)
    sender = from_ or last_number_used(store, to)
    if not sender:
        raise ConfigError(
            f"no number to send from: {mask_number(to)} has not texted us; "
            "give --from (one of your Twilio numbers, or a Messaging Service SID MG...)"
        )
    return sender


def send_message(
    settings: Settings,
    store: Store,
    *,
    to: str,
    body: str,
    from_: str | None = None,
    media: Iterable[str] = (),
    outbox: Outbox | None = None,
) -> tuple[str, str]:
    """Send a message now, through the outbox, in this process; returns (SID, status).

    ``from_`` (a number of ours or a Messaging Service SID) defaults to our number that ``to``
    last texted. Twilio is asked for status callbacks at ``<public URL>/twilio/status`` when the
    public URL is known. Raises OptedOutError for a contact who opted out, and TwilioApiError
    (one line) when Twilio refuses: error 21610 marks the contact opted out; a 429, 5xx or
    network error leaves the message in the outbox for ``textback worker`` to retry.
    Raises InvalidMessage, before anything is written, for an empty body without media or a
    body longer than Twilio accepts.
    """
    media = list(media)
    _refuse_unsendable(body, media)
    sender = _sender(store, to, from_)
    rest_client(settings)  # missing credentials: refused before anything is written
    box = outbox or Outbox(settings, store)
    entry_id, _ = box.put(sender=sender, to=to, body=body, media=list(media), enqueue=False)
    outcome = box.deliver(entry_id)
    if outcome is not None and outcome.state == states.SENT and outcome.sid:
        return outcome.sid, outcome.status or "queued"
    if outcome is not None and outcome.state == states.SCHEDULED and outcome.error:
        raise TwilioApiError(
            f"{outcome.error}; kept as outbox {entry_id}: `textback worker` retries it"
        )
    if outcome is not None and outcome.error is not None:
        raise outcome.error
    state = outcome.state if outcome is not None else "taken by a worker"
    raise TextbackError(f"outbox {entry_id} was not sent: {state}")


def _refuse_unsendable(body: str, media: list[str]) -> None:
    problem = sending_problem(body, media=len(media))
    if problem is not None:
        raise InvalidMessage(problem)


def schedule_message(
    settings: Settings,
    store: Store,
    *,
    to: str,
    body: str,
    at: datetime | None = None,
    from_: str | None = None,
    media: Iterable[str] = (),
    key: str | None = None,
    source: str = "api",
    outbox: Outbox | None = None,
) -> int:
    """Put a message in the outbox for a worker to send at ``at`` (now when None); returns its
    outbox id. A ``key`` used before adds nothing and returns the first message's id."""
    media = list(media)
    _refuse_unsendable(body, media)
    sender = _sender(store, to, from_)
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(settings.timezone))
    box = outbox or Outbox(settings, store)
    entry_id, _ = box.put(
        sender=sender, to=to, body=body, media=list(media), send_at=at, key=key, source=source
    )
    return entry_id


def parse_send_time(text: str, timezone: str, now: datetime) -> datetime:
    """``--at``: ISO 8601, with an offset or in ``timezone``; ConfigError if unreadable or
    already past."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--at {text!r}: give an ISO 8601 time, like 2026-12-24T09:00 or 2026-12-24T09:00+01:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    try:
        when.astimezone(UTC)  # as it is stored: the year 9999 west of UTC is past datetime.max
    except OverflowError:
        raise ConfigError(f"--at {text!r} is out of range: give one before the year 9999") from None
    if when < now:
        raise ConfigError(f"--at {text!r} is in the past ({now:%Y-%m-%d %H:%M UTC} now)")
    return when
