"""Slow handlers' jobs: owed with the message, taken by one worker, finished in one transaction.

The webhook's transaction (inbound.py) adds the job with the message it answers, keyed by the
MessageSid, so a retried webhook adds nothing and a crash after the commit loses nothing. A
worker takes the job with one conditional UPDATE (waiting -> running, or a running job whose
worker stopped touching it), runs the handler outside any transaction, then commits in one
transaction: the reply in the outbox (keyed ``slow:<MessageSid>``, so it is sent once), the
conversation change, and the job's end. A job taken again by another worker in the meantime
finishes nothing: only the attempt that holds it may.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy import Row
from sqlalchemy import and_
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from textback.core.conversation import Conversation
from textback.core.message import Inbound
from textback.core.message import Media
from textback.core.message import Reply
from textback.core.responder import Decision
from textback.core.responder import changes_conversation
from textback.storage.inbound import slow_jobs
from textback.storage.models import clean
from textback.storage.outbox import OutboxRows
from textback.storage.runs import OPEN_RUN
from textback.storage.runs import conversation_of
from textback.storage.runs import save_conversation
from textback.storage.store import Store
from textback.storage.tables import contacts
from textback.storage.tables import messages

WAITING = "waiting"
RUNNING = "running"
DONE = "done"
FAILED = "failed"


def outbox_key(message_sid: str) -> str:
    """The outbox key of a slow handler's reply: one reply per message, however often it ran."""
    return f"slow:{message_sid}"


@dataclass(frozen=True)
class Claimed:
    """A job this worker holds: the message as the handler gets it, and the contact's open
    conversation when it was taken (``run_id`` its row; both None when there is none)."""

    job: Row[Any]
    message: Inbound
    conversation: Conversation | None
    run_id: int | None


def inbound_of(row: Row[Any]) -> Inbound:
    """A stored inbound message as the Inbound its webhook made (every parameter kept)."""
    pairs: list[tuple[str, str]] = []
    for key, value in (row.params or {}).items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((str(key), str(item)))
    first: dict[str, str] = {}
    for key, value in pairs:
        first.setdefault(key, value)
    return Inbound(
        sid=str(row.sid),
        from_=row.from_number,
        to=row.to_number,
        body=row.body or "",
        account_sid=row.account_sid or "",
        media=tuple(
            Media(str(item.get("url", "")), str(item.get("content_type", "")))
            for item in row.media or []
        ),
        params=MappingProxyType(first),
        form=tuple(pairs),
    )


class SlowJobRows:
    """The slow_jobs table of one store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine
        self.outbox = OutboxRows(store)

    def now(self) -> datetime:
        return self.store.clock()

    def get(self, message_sid: str) -> Row[Any] | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(slow_jobs).where(slow_jobs.c.message_sid == message_sid)
            ).first()

    def claim(self, message_sid: str, stale_after: float) -> Claimed | None:
        """Take the job for this worker (state ``running``, one more attempt), with its message
        and the contact's conversation; None when it is not ours to run: done, failed, or
        running in a live worker (one that touched it within ``stale_after`` seconds)."""
        stamp = self.now()
        takeable = or_(
            slow_jobs.c.state == WAITING,
            and_(
                slow_jobs.c.state == RUNNING,
                slow_jobs.c.updated_at < stamp - timedelta(seconds=stale_after),
            ),
        )
        with self.store.write_lock, self.engine.begin() as connection:
            contact_id = connection.execute(
                select(slow_jobs.c.contact_id).where(slow_jobs.c.message_sid == message_sid)
            ).scalar()
            if contact_id is None:
                return None
            # The contact's lock first, as a webhook and ``finish`` take it: the conversation is
            # read (an expired one closed) as a webhook reads it, and no two locks cross.
            connection.execute(
                select(contacts.c.id)
                .where(contacts.c.id == contact_id)
                .with_for_update(key_share=True)
            ).first()
            job = connection.execute(
                update(slow_jobs)
                .where(slow_jobs.c.message_sid == message_sid, takeable)
                .values(state=RUNNING, attempts=slow_jobs.c.attempts + 1, updated_at=stamp)
                .returning(*slow_jobs.c)
            ).first()
            if job is None:
                return None
            message = connection.execute(
                select(messages).where(messages.c.id == job.message_id)
            ).one()
            open_run = connection.execute(OPEN_RUN, {"contact_id": job.contact_id}).first()
            conversation, run_id = conversation_of(connection, open_run, stamp)
        return Claimed(job, inbound_of(message), conversation, run_id)

    def touch(self, job: Row[Any]) -> bool:
        """Say the job's worker is alive; False when the job is no longer this attempt's."""
        with self.store.write_lock, self.engine.begin() as connection:
            result = connection.execute(
                update(slow_jobs).where(self._held(job)).values(updated_at=self.now())
            )
        return bool(result.rowcount)

    def finish(
        self,
        claimed: Claimed,
        *,
        reply: Reply,
        source: str,
        decision: Decision | None = None,
        error: str | None = None,
    ) -> tuple[int | None, bool] | None:
        """End the job in one transaction: ``reply`` into the outbox (none when empty), the
        conversation change ``decision`` makes, and the job ``done`` (``failed`` with
        ``error``, and then ``source`` becomes the message's source, as for a handler that
        fails inline). Returns (the outbox id or None, whether the change was applied); None, with
        nothing written, when another worker has taken the job meanwhile.

        The change is applied only if the contact's conversation is still the one the handler
        saw: a message of theirs answered while it ran has moved on from it, and wins.
        """
        job, stamp = claimed.job, self.now()
        msg = claimed.message
        with self.store.write_lock, self.engine.begin() as connection:
            # The contact's lock first, as a webhook takes it: their messages wait for this.
            connection.execute(
                select(contacts.c.id)
                .where(contacts.c.id == job.contact_id)
                .with_for_update(key_share=True)
            ).first()
            held = connection.execute(
                select(slow_jobs.c.id).where(self._held(job)).with_for_update()
            ).first()
            if held is None:
                return None
            applied = True
            if decision is not None and changes_conversation(decision, claimed.conversation):
                open_run = connection.execute(OPEN_RUN, {"contact_id": job.contact_id}).first()
                now_conversation, run_id = conversation_of(connection, open_run, stamp)
                if run_id == claimed.run_id and _same(now_conversation, claimed.conversation):
                    save_conversation(
                        connection,
                        contact_id=job.contact_id,
                        run_id=run_id,
                        before=claimed.conversation,
                        decision=decision,
                        stamp=stamp,
                    )
                else:
                    applied = False
            entry_id = None
            if not reply.is_empty:
                entry_id, _ = self.outbox.add(
                    connection,
                    sender=msg.to,
                    to=msg.from_,
                    body=reply.text,
                    media=reply.media,
                    source=source,
                    key=outbox_key(msg.sid),
                )
            if error is not None:
                connection.execute(
                    update(messages)
                    .where(messages.c.id == job.message_id)
                    .values(source=clean(source))
                )
            connection.execute(
                update(slow_jobs)
                .where(slow_jobs.c.id == job.id)
                .values(
                    state=FAILED if error is not None else DONE,
                    error=clean(error),
                    outbox_id=entry_id,
                    updated_at=stamp,
                )
            )
        return entry_id, applied

    def lost(self, stale_after: float, limit: int = 500) -> list[str]:
        """The MessageSids of jobs whose task may be lost: waiting, not queued (or swept) for
        ``stale_after`` seconds; or running in a worker that stopped touching them."""
        stale = self.now() - timedelta(seconds=stale_after)
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(slow_jobs.c.message_sid)
                    .where(
                        slow_jobs.c.state.in_((WAITING, RUNNING)), slow_jobs.c.updated_at < stale
                    )
                    .order_by(slow_jobs.c.id)
                    .limit(limit)
                ).scalars()
            )

    def mark_swept(self, message_sids: list[str]) -> None:
        """The waiting ones among ``message_sids`` were queued again now (a running job keeps
        its stale time, by which the next worker may take it)."""
        if not message_sids:
            return
        with self.store.write_lock, self.engine.begin() as connection:
            connection.execute(
                update(slow_jobs)
                .where(slow_jobs.c.message_sid.in_(message_sids), slow_jobs.c.state == WAITING)
                .values(updated_at=self.now())
            )

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(slow_jobs.c.state, func.count()).group_by(slow_jobs.c.state)
            ).all()
        return {str(state): int(count) for state, count in rows}

    @staticmethod
    def _held(job: Row[Any]) -> Any:
        """The job is still running in the attempt that took it."""
        return and_(
            slow_jobs.c.id == job.id,
            slow_jobs.c.state == RUNNING,
            slow_jobs.c.attempts == job.attempts,
        )


def _same(now: Conversation | None, then: Conversation | None) -> bool:
    if now is None or then is None:
        return now is None and then is None
    return (now.state, now.values, now.flow) == (then.state, then.values, then.flow)
