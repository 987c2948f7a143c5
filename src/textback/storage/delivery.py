"""Messages going out: a REST send kept in the log, and the delivery status Twilio reports.

A reply given in TwiML is a row of its own (see inbound.py) whose SID Twilio only tells us in
the first status callback: the callback URL names the inbound message (``?for=<MessageSid>``),
and the reply is found from it through the contact's ``(contact_id, id)`` index, then given
its SID, so later callbacks find it by that SID alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import Row
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import select
from sqlalchemy import update

from textback.storage.contact_actions import contact_id_of
from textback.storage.models import OUTBOUND
from textback.storage.models import OutboxEntry
from textback.storage.models import clean
from textback.storage.tables import insert_for
from textback.storage.tables import messages
from textback.storage.tables import status_events

outbox = cast(Table, OutboxEntry.__table__)
# A status callback that ends an outbox row's journey (the outbox keeps its own state).
_FINAL_STATUS = {"delivered": "delivered", "undelivered": "undelivered", "failed": "failed"}

# Twilio's delivery statuses in lifecycle order: a late "sent" never replaces "delivered".
_STATUS_RANK = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "receiving": 3,
    "received": 4,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
    "canceled": 4,
}


def record_status(
    engine: Engine, params: dict[str, Any], reply_to: str | None, stamp: datetime
) -> bool:
    """Keep a status callback once per (MessageSid, status); returns whether it was new.

    The message's status moves forward only (a late ``sent`` never replaces ``delivered``).
    ``reply_to`` is the inbound MessageSid a TwiML reply answered: it names the reply row
    whose own SID Twilio only now tells us.
    """
    sid = str(params.get("MessageSid") or params.get("SmsSid") or "")
    status = str(params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    error_code = str(params.get("ErrorCode") or "") or None
    with engine.begin() as connection:
        new = connection.execute(
            insert_for(engine)(status_events)
            .values(
                message_sid=sid,
                status=status,
                error_code=error_code,
                params=clean(params),
                received_at=stamp,
            )
            .on_conflict_do_nothing(index_elements=["message_sid", "status"])
            .returning(status_events.c.id)
        ).scalar()
        if new is None:
            return False
        row = connection.execute(
            select(messages.c.id, messages.c.status).where(messages.c.sid == sid)
        ).first()
        if row is None and reply_to:
            row = _unnamed_reply(connection, reply_to)
            if row is not None:
                connection.execute(update(messages).where(messages.c.id == row.id).values(sid=sid))
        if row is not None and _STATUS_RANK.get(status, 0) >= _STATUS_RANK.get(row.status, 0):
            connection.execute(
                update(messages)
                .where(messages.c.id == row.id)
                .values(status=status, error_code=error_code, updated_at=stamp)
            )
        if status in _FINAL_STATUS:
            # A message the outbox sent: its row ends its journey here too.
            connection.execute(
                update(outbox)
                .where(outbox.c.sid == sid, outbox.c.state == "sent")
                .values(state=_FINAL_STATUS[status], error_code=error_code, updated_at=stamp)
            )
    return True


def _unnamed_reply(connection: Connection, inbound_sid: str) -> Row[Any, Any] | None:
    """The reply to ``inbound_sid`` that has no SID yet, if there is one.

    The reply was written in the inbound message's transaction, for the same contact, so it is
    the first of that contact's rows after the inbound one: a short range of the contact index.
    """
    inbound = connection.execute(
        select(messages.c.id, messages.c.contact_id).where(messages.c.sid == inbound_sid)
    ).first()
    if inbound is None or inbound.contact_id is None:
        return None
    return connection.execute(
        select(messages.c.id, messages.c.status)
        .where(
            and_(
                messages.c.contact_id == inbound.contact_id,
                messages.c.id > inbound.id,
                messages.c.reply_to_id == inbound.id,
                messages.c.sid.is_(None),
                messages.c.direction == OUTBOUND,
            )
        )
        .order_by(messages.c.contact_id, messages.c.id)
        .limit(1)
    ).first()


def record_outbound(
    engine: Engine,
    *,
    sid: str | None,
    from_: str,
    to: str,
    body: str,
    media: Iterable[str],
    status: str,
    source: str,
    account_sid: str,
    stamp: datetime,
) -> None:
    """Keep a message sent through the REST API (IntegrityError if its SID is known)."""
    with engine.begin() as connection:
        contact_id = contact_id_of(connection, from_, to)
        connection.execute(
            messages.insert().values(
                sid=sid,
                direction=OUTBOUND,
                account_sid=account_sid,
                from_number=from_,
                to_number=to,
                body=clean(body),
                media=[{"url": url} for url in media],
                params={},
                status=status,
                source=source,
                contact_id=contact_id,
                created_at=stamp,
                updated_at=stamp,
            )
        )
