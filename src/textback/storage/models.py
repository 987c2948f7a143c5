"""The database schema, as typed SQLAlchemy 2 models. Alembic migrations create it."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any
from typing import ClassVar

from sqlalchemy import JSON
from sqlalchemy import Boolean
from sqlalchemy import DateTime
from sqlalchemy import Float
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy import text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeDecorator

INBOUND = "inbound"
OUTBOUND = "outbound"


def now() -> datetime:
    """The time now, in UTC: the stamp of everything stored."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A time stored as UTC and read back as an aware UTC datetime on every database.

    SQLite keeps no zone and gives stored times back naive; PostgreSQL gives them in the
    session's zone. Reading them through this type, nobody else has to know.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Contact(Base):
    """One person texting one of our numbers; opt-outs are kept here.

    A message does not write this row (only a new contact, an opt-out change, or the first
    message waiting for a person does): when a contact was last seen is the time of their
    latest message.

    ``taken_over_at`` is set while a person answers the contact instead of the bot (the
    admin's "Take over", storage/takeover.py), ``taken_over_by`` says who; ``waiting_since`` is
    the time of their oldest message still waiting for that person's reply. Only taken-over
    contacts are in the partial index, which the admin's list of them reads.
    """

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("our_number", "number", name="uq_contacts_numbers"),
        Index(
            "ix_contacts_taken_over",
            "taken_over_at",
            sqlite_where=text("taken_over_at IS NOT NULL"),
            postgresql_where=text("taken_over_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    our_number: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime]
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None]
    taken_over_at: Mapped[datetime | None]
    taken_over_by: Mapped[str | None] = mapped_column(String(100))
    waiting_since: Mapped[datetime | None]


class Message(Base):
    """Every message in and out.

    An inbound row keeps what Twilio posted and the TwiML we replied with (``response_twiml``),
    so a retried webhook gets the same bytes. A reply is an outbound row of its own, linked by
    ``reply_to_id``; its ``sid`` is empty until a status callback names it, and only rows with
    a SID are in the unique sid index. The reply is found from its inbound message through the
    contact index (see storage/delivery.py), so ``reply_to_id`` needs no index of its own.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index(
            "uq_messages_sid",
            "sid",
            unique=True,
            sqlite_where=text("sid IS NOT NULL"),
            postgresql_where=text("sid IS NOT NULL"),
        ),
        Index("ix_messages_contact", "contact_id", "id"),
        Index("ix_messages_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sid: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    account_sid: Mapped[str] = mapped_column(String(64), default="")
    from_number: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[Any]] = mapped_column(default=list)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(200))
    response_twiml: Mapped[str | None] = mapped_column(Text)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StatusEvent(Base):
    """A delivery status callback, kept once per (MessageSid, status), known message or not.

    The unique (message_sid, status) index also finds a message's events by its SID.
    """

    __tablename__ = "status_events"
    __table_args__ = (UniqueConstraint("message_sid", "status", name="uq_status_events"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime]


class FlowRun(Base):
    """A contact's conversation: a flow from the rules file or a Python state, and its answers.

    At most one run per contact is open (``ended_at`` is null) at a time.
    """

    __tablename__ = "flow_runs"
    __table_args__ = (Index("ix_flow_runs_contact_open", "contact_id", "ended_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    flow: Mapped[str] = mapped_column(String(200))
    state: Mapped[str | None] = mapped_column(String(200))
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class FlowAnswer(Base):
    """One answer a contact gave in a flow run (a saved value), with its time.

    In storage and queries "answer" means only this; what textback sends back is a reply, and
    the document Twilio gets is its TwiML.
    """

    __tablename__ = "flow_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("flow_runs.id"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Text)
    answered_at: Mapped[datetime]


class RejectCount(Base):
    """Webhooks refused, counted per hour and reason; nothing of the request itself is kept."""

    __tablename__ = "reject_counts"
    __table_args__ = (UniqueConstraint("hour", "reason", name="uq_reject_counts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=0)


class OutboxEntry(Base):
    """A message we send on our own (not a TwiML reply), from the decision to its delivery.

    ``state`` runs queued or scheduled -> sending -> sent -> delivered/undelivered, or ends
    failed, cancelled or review. ``unsure_since`` is set while an API call may have reached
    Twilio without us knowing its outcome: such a row is looked up in Twilio's message list
    before it is ever sent again. ``key`` makes a second copy of one decision impossible.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_send_at", "state", "send_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    sender: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(200), default="api")
    state: Mapped[str] = mapped_column(String(16))
    send_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    unsure_since: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SendSlot(Base):
    """The next free moment to send from one sender (number or Messaging Service), shared by
    every worker and server: each send reserves the slot and moves it on by 1/rate seconds."""

    __tablename__ = "send_slots"

    sender: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)  # seconds since the epoch


def clean(value: Any) -> Any:
    """A value every database stores alike: NUL (refused by PostgreSQL) becomes U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {clean(key): clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean(item) for item in value]
    return value


class AdminSession(Base):
    """A login to the admin view. The browser's cookie holds a token; only its hash is kept.

    Logging out ends the row, so a copied cookie stops working; ``password_key`` ties the
    login to the password it was made with, so changing the password logs everyone out.
    """

    __tablename__ = "admin_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class LoginFailure(Base):
    """Failed admin logins from one client address in the current window (the lockout's count).

    Kept in the database so every worker and every server sharing it sees the same count;
    ``key`` is the rate limit's key (it names the address), the row is stale after
    ``expires_at``.
    """

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime]


class Profile(Base):
    """Who a phone number is: name, language, time zone and custom fields (one per number,
    whichever of our numbers they text; opt-outs stay per number of ours, in ``contacts``)."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Group(Base):
    """A named group of profiles (``patients``, ``volunteers``), for broadcasts and flows."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class ProfileGroup(Base):
    """Membership of a profile in a group."""

    __tablename__ = "profile_groups"

    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), primary_key=True, index=True)


# --- broadcasts -----------------------------------------------------------------------------


class Broadcast(Base):
    """One text sent to the contacts of some groups: each recipient's copy is an outbox row,
    linked in ``broadcast_messages``. ``state`` is ``creating`` until every copy is written
    (an interrupted creation is completed by running it again), then ``queued``; ``key``
    makes a re-run of one decision (the same command, a resubmitted form) the same broadcast.
    """

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    text: Mapped[str] = mapped_column(Text)
    groups: Mapped[list[Any]] = mapped_column(default=list)
    sender: Mapped[str] = mapped_column(String(64))
    send_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(32), default="api")
    state: Mapped[str] = mapped_column(String(16))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BroadcastMessage(Base):
    """One recipient's copy of a broadcast: the outbox row that sends it."""

    __tablename__ = "broadcast_messages"

    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id"), primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), primary_key=True, unique=True)


# --- slow handlers (docs/slow-handlers.md) -------------------------------------------------


class SlowJob(Base):
    """A slow handler owed to one inbound message, written in the transaction that stored it.

    ``state`` runs waiting -> running -> done (its reply is outbox row ``outbox_id``, if it
    had one) or failed (``error`` says why). A worker takes the row with one conditional UPDATE
    and touches ``updated_at`` while the handler runs; a row left ``running`` without a touch
    for TEXTBACK_OUTBOX_STALE_AFTER seconds belonged to a worker that died and is taken again.
    ``message_sid`` is the key: one job per message, whatever Twilio retries.
    """

    __tablename__ = "slow_jobs"
    __table_args__ = (Index("ix_slow_jobs_state_updated_at", "state", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    handler: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- Flow timers (issue 14: reminders and expiry messages) ---------------------------------


class FlowTimer(Base):
    """A flow run's timer: an outbox row sent later only if the run still waits by then.

    ``kind`` is "remind" (a step's reminder) or "expire" (the flow's expiry message, whose
    sending also ends the run as expired). ``state`` is "waiting", "fired" (the worker found the
    run still waiting and took the timer; it is being sent or retried) or "cancelled" (the run
    moved on or ended first). See storage/flow_timers.py.
    """

    __tablename__ = "flow_timers"

    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("flow_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
