"""Broadcasts: one text, filled in for each contact of some groups, sent through the outbox.

``plan_broadcast`` works out who gets what (and what it costs in segments) without writing
anything: the preview. ``create_broadcast`` writes the broadcast and every recipient's copy,
in batches keyed per recipient, so running it again after a crash completes it and never makes a
second copy. Contacts in two of the groups get one copy; opted-out ones get none (checked when
the copies are written, and again by the outbox just before each send); copies due inside a
contact's quiet hours wait until they end.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row

from textback.channel.rest import rest_client
from textback.config import Settings
from textback.core.body_length import sending_problem
from textback.core.broadcast_text import BroadcastTextError
from textback.core.broadcast_text import check_fields
from textback.core.broadcast_text import placeholders
from textback.core.broadcast_text import render_for_contact
from textback.core.profile import ContactProfile
from textback.core.quiet_hours import quiet_hours
from textback.core.segments import Measure
from textback.core.segments import measure
from textback.errors import TextbackError
from textback.outbound.outbox import Outbox
from textback.outbound.outbox import is_messaging_service
from textback.outbound.quiet import contact_zone
from textback.outbound.quiet import held_reason
from textback.storage.broadcasts import CREATED
from textback.storage.broadcasts import BroadcastRows
from textback.storage.broadcasts import Copy
from textback.storage.broadcasts import Tally
from textback.storage.broadcasts import group_sizes
from textback.storage.profiles import list_profiles
from textback.storage.store import Store

log = logging.getLogger(__name__)

BATCH_SIZE = 500
OPTED_OUT = "opted out"


class BroadcastError(TextbackError):
    """A broadcast that cannot be sent as given (no groups, an unknown name, no sender...)."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One contact of a broadcast: their text, or why they are skipped."""

    profile: ContactProfile
    body: str
    skip: str | None = None

    @property
    def number(self) -> str:
        return self.profile.number


@dataclass(frozen=True)
class Plan:
    """Who a broadcast goes to, each one's text, and what it costs."""

    text: str
    groups: tuple[str, ...]
    sender: str
    recipients: tuple[Recipient, ...]

    @property
    def sending(self) -> list[Recipient]:
        return [person for person in self.recipients if person.skip is None]

    @property
    def skipped(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for person in self.recipients:
            if person.skip is not None:
                counts[person.skip] = counts.get(person.skip, 0) + 1
        return counts

    @property
    def sample(self) -> Recipient | None:
        """The first recipient who will get it, to show the text as they will see it."""
        sending = self.sending
        return sending[0] if sending else None

    def sample_measure(self) -> Measure | None:
        sample = self.sample
        return measure(sample.body) if sample else None

    @property
    def total_segments(self) -> int:
        """The segments the whole broadcast costs (each recipient's own text)."""
        return sum(measure(person.body).segments for person in self.sending)

    @property
    def encodings(self) -> list[str]:
        return sorted({measure(person.body).encoding for person in self.sending})


@dataclass(frozen=True)
class Created:
    """A broadcast written: its id, whether this call made it, and how many it goes to."""

    broadcast_id: int
    new: bool
    recipients: int
    sending: int
    skipped: dict[str, int]
    send_at: datetime | None


def _clean_groups(groups: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.strip() for name in groups if name.strip()))


def plan_broadcast(
    settings: Settings, store: Store, *, text: str, groups: Sequence[str], sender: str
) -> Plan:
    """Who gets ``text`` and what each gets; BroadcastError (one line) for a text with an
    unknown name, an unknown or empty group, no sender, or a text Twilio would refuse."""
    wanted = _clean_groups(groups)
    if not wanted:
        raise BroadcastError("choose at least one group (--group NAME)")
    if not sender:
        raise BroadcastError(
            "no number to send from: give --from (one of your Twilio numbers) "
            "or --messaging-service MG..."
        )
    try:
        placeholders(text)
    except BroadcastTextError as exc:
        raise BroadcastError(str(exc)) from None
    known = group_sizes(store)
    missing = [name for name in wanted if name not in known]
    if missing:
        listed = ", ".join(known) or "none yet (`textback contacts import`)"
        raise BroadcastError(f"no group named {missing[0]!r}; the groups: {listed}")
    people: dict[str, ContactProfile] = {}
    for name in wanted:
        for person in list_profiles(store.engine, group=name):
            people.setdefault(person.number, person)
    if not people:
        raise BroadcastError(f"no contacts in {', '.join(wanted)}")
    try:
        check_fields(text, {key for person in people.values() for key in person.fields})
    except BroadcastTextError as exc:
        raise BroadcastError(str(exc)) from None
    opted_out = _opted_out(store, sender, list(people))
    recipients = []
    for number, person in people.items():
        body = render_for_contact(text, person)
        problem = sending_problem(body)
        if problem is not None:
            raise BroadcastError(f"for {number}: {problem}")
        recipients.append(Recipient(person, body, OPTED_OUT if number in opted_out else None))
    return Plan(text, wanted, sender, tuple(recipients))


def _opted_out(store: Store, sender: str, numbers: list[str]) -> set[str]:
    rows = BroadcastRows(store)
    found: set[str] = set()
    for start in range(0, len(numbers), BATCH_SIZE):
        found |= rows.opted_out(
            sender,
            numbers[start : start + BATCH_SIZE],
            any_number=is_messaging_service(sender),
        )
    return found


def command_key(text: str, groups: Sequence[str], sender: str, at: datetime | None) -> str:
    """The key of a broadcast made from the command line: the same command gives the same
    broadcast, so running it again (after a crash, or by mistake) sends nothing twice."""
    what = json.dumps([text, sorted(_clean_groups(groups)), sender, at.isoformat() if at else ""])
    return "cli:" + hashlib.sha256(what.encode()).hexdigest()[:32]


def create_broadcast(
    settings: Settings,
    store: Store,
    *,
    text: str,
    groups: Sequence[str],
    sender: str,
    at: datetime | None = None,
    key: str | None = None,
    source: str = "api",
    outbox: Outbox | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> Created:
    """Write a broadcast and each recipient's copy, and queue them for the workers.

    ``sender``: one of our numbers or a Messaging Service SID. ``at``: when (now when None; a
    time without an offset is in TEXTBACK_TIMEZONE). ``key``: a broadcast made with this key
    before is completed if its creation was interrupted, else returned as it is (``new`` is
    False). ``progress`` is called with the number of recipients written after each batch.
    Raises BroadcastError (see plan_broadcast), and ConfigError without Twilio credentials,
    before anything is written.
    """
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(settings.timezone))
    plan = plan_broadcast(settings, store, text=text, groups=groups, sender=sender)
    rest_client(settings)  # missing credentials: refused now, not by every send
    rows = BroadcastRows(store)
    broadcast, new = rows.begin(
        text=text, groups=plan.groups, sender=sender, send_at=at, source=source, key=key
    )
    if broadcast.state == CREATED:
        return _created(rows, broadcast.id, new=False)
    if not new:  # an interrupted creation: completed as it was begun
        at, sender = broadcast.send_at, broadcast.sender
        plan = plan_broadcast(
            settings, store, text=broadcast.text, groups=broadcast.groups, sender=sender
        )
    box = outbox or Outbox(settings, store)
    quiet = quiet_hours(settings.quiet_hours)
    start = at or store.clock()
    recipients = list(plan.recipients)
    for first in range(0, len(recipients), batch_size):
        batch = recipients[first : first + batch_size]
        opted_out = rows.opted_out(
            sender, [person.number for person in batch], any_number=is_messaging_service(sender)
        )
        copies = []
        for person in batch:
            held = None
            if quiet is not None:
                zone = contact_zone(settings, person.profile.timezone, person.number)
                held = quiet.ends(start, zone)
            copies.append(
                Copy(
                    to=person.number,
                    body=person.body,
                    send_at=held or at,
                    skip=OPTED_OUT if person.number in opted_out else None,
                    note=held_reason(held) if held else None,
                )
            )
        box.enqueue_all(rows.add_copies(broadcast, copies))
        if progress is not None:
            progress(len(batch))
    if not new:  # resumed: copies written before the crash but never queued
        box.enqueue_all(rows.unqueued(broadcast.id))
    rows.created(broadcast.id)
    created = _created(rows, broadcast.id, new=new)
    log.info(
        "broadcast %d: %d recipient(s), %d skipped",
        broadcast.id,
        created.recipients,
        created.recipients - created.sending,
    )
    return created


def _created(rows: BroadcastRows, broadcast_id: int, *, new: bool) -> Created:
    row = rows.get(broadcast_id)
    assert row is not None
    tally = rows.tally(broadcast_id)
    skipped = sum(tally.skipped.values())
    return Created(
        broadcast_id, new, tally.total, tally.total - skipped, tally.skipped, row.send_at
    )


def broadcast_tallies(store: Store, limit: int = 50) -> list[tuple[Row[Any], Tally]]:
    """The latest broadcasts, newest first, each with its copies counted by state."""
    rows = BroadcastRows(store)
    listed = rows.listing(limit)
    tallies = rows.tallies(row.id for row in listed)
    return [(row, tallies[row.id]) for row in listed]
