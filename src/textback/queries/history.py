"""The stored inbound messages with what they were answered, for ``textback replay``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import select

from textback.channel.twiml import parse_twiml
from textback.core.message import Inbound
from textback.core.replay import Exchange
from textback.errors import MalformedWebhook
from textback.storage.models import INBOUND
from textback.storage.tables import messages

BATCH = 1000


def _form(params: dict[str, Any] | None) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, str(item)))
    return pairs


def exchanges(engine: Engine, *, contact: str | None = None) -> Iterator[Exchange]:
    """Every stored inbound message (of one contact number, if given) as it came, with the
    reply it got, ordered by contact (our number, their number) and then by arrival.

    The reply is read from the TwiML that was sent (the same a retry gets back), so it is
    exactly what the contact was answered. Rows that cannot be rebuilt as a message (a form
    that is no longer accepted) are skipped.
    """
    query = (
        select(
            messages.c.sid,
            messages.c.from_number,
            messages.c.to_number,
            messages.c.params,
            messages.c.created_at,
            messages.c.source,
            messages.c.response_twiml,
        )
        .where(messages.c.direction == INBOUND)
        .order_by(messages.c.to_number, messages.c.from_number, messages.c.id)
    )
    if contact:
        query = query.where(messages.c.from_number == contact)
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=BATCH).execute(query)
        for row in result:
            try:
                msg = Inbound.from_form(_form(row.params))
            except MalformedWebhook:
                continue
            answered = parse_twiml(row.response_twiml or "")
            text = "\n".join(text for text, _ in answered)
            media = tuple(url for _, urls in answered for url in urls)
            yield Exchange(msg, row.created_at, text, media, row.source or "")
