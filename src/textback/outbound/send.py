"""Send one message now through Twilio's REST API and record it as outbound."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from textback.channel.rest import OPTED_OUT
from textback.channel.rest import TwilioApiError
from textback.channel.rest import call
from textback.channel.rest import rest_client
from textback.config import Settings
from textback.core.body_length import sending_problem
from textback.core.text import mask_number
from textback.errors import ConfigError
from textback.errors import InvalidMessage
from textback.storage.store import Store
from textback.storage.store import contacts

log = logging.getLogger(__name__)


def last_number_used(store: Store, to: str) -> str | None:
    """Our number that ``to`` texted most recently, to reply from the same one."""
    with store.engine.connect() as connection:
        found = connection.execute(
            select(contacts.c.our_number)
            .where(contacts.c.number == to)
            .order_by(contacts.c.last_seen.desc())
            .limit(1)
        ).scalar()
    return str(found) if found else None


def send_message(
    settings: Settings,
    store: Store,
    *,
    to: str,
    body: str,
    from_: str | None = None,
    media: Iterable[str] = (),
) -> tuple[str, str]:
    """Send a message through the REST API and record it as outbound; returns (SID, status).

    ``from_`` defaults to our number that ``to`` last texted. Twilio is asked for status
    callbacks at ``<public URL>/twilio/status`` when the public URL is known. Raises
    TwilioApiError (one line) when Twilio refuses; error 21610 marks the contact opted out.
    Raises InvalidMessage, before any request, for an empty body without media or a body
    longer than Twilio accepts.
    """
    media = list(media)
    problem = sending_problem(body, media=len(media))
    if problem is not None:
        raise InvalidMessage(problem)
    sender = from_ or last_number_used(store, to)
    if not sender:
        raise ConfigError(
            f"no number to send from: {mask_number(to)} has not texted us; "
            "give --from (one of your Twilio numbers)"
        )
    client = rest_client(settings)
    options: dict[str, Any] = {"to": to, "from_": sender}
    if body:
        options["body"] = body
    if media:
        options["media_url"] = media
    if settings.public_url:
        options["status_callback"] = f"{settings.public_url}/twilio/status"
    try:
        message = call(client, settings, lambda: client.messages.create(**options))
    except TwilioApiError as exc:
        if exc.code == OPTED_OUT:
            store.set_opted_out(sender, to, True)
            log.info("%s has opted out (Twilio error 21610)", mask_number(to))
        raise
    sid, status = str(message.sid), str(message.status or "queued")
    try:
        store.record_outbound(
            sid=sid,
            from_=sender,
            to=to,
            body=body,
            media=media,
            status=status,
            source="api",
            account_sid=str(message.account_sid or settings.account_sid or ""),
        )
    except IntegrityError:
        # Twilio never reuses a SID; a mock API answering with a fixed example does.
        log.warning("message %s is already in the log; not recorded again", sid)
    log.info("sent %s to %s: %s", sid, mask_number(to), status)
    return sid, status
