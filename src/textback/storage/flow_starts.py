"""Starting a flow from our side: the contact's run begins without their message.

``begin_run`` runs in the caller's transaction, which also writes the first question to the
outbox, so a run never exists without its question, nor a question without its run. It locks
the contact's row as a webhook does, so a contact texting at that moment is answered either
before (and may be skipped as busy) or after (and answers the new run's question).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy import and_
from sqlalchemy import select

from textback.core.responder import Decision
from textback.storage.runs import OPEN_RUN
from textback.storage.runs import conversation_of
from textback.storage.runs import end_open_runs
from textback.storage.runs import end_run
from textback.storage.runs import save_conversation
from textback.storage.tables import Insert
from textback.storage.tables import contacts


def begin_run(
    connection: Connection,
    insert: Insert,
    *,
    our_number: str,
    number: str,
    decision: Decision,
    stamp: datetime,
    replace: bool = False,
) -> tuple[int | None, str | None]:
    """Open the run ``decision`` starts for ``number`` texting ``our_number``: (run id, None),
    or (None, why not) for an opted-out contact, one a person has taken over, or one in another
    conversation (unless ``replace``: that one then ends as "cancelled")."""
    connection.execute(
        insert(contacts)
        .values(our_number=our_number, number=number, first_seen=stamp, opted_out=False)
        .on_conflict_do_nothing(index_elements=["our_number", "number"])
    )
    contact = connection.execute(
        select(
            contacts.c.id,
            contacts.c.opted_out,
            contacts.c.opted_out_at,
            contacts.c.taken_over_at,
        )
        .where(and_(contacts.c.our_number == our_number, contacts.c.number == number))
        .with_for_update(key_share=True)
    ).one()
    if contact.opted_out:
        when = (
            f"{contact.opted_out_at:%Y-%m-%d %H:%M UTC}"
            if contact.opted_out_at
            else "an unknown time"
        )
        return None, f"opted out at {when}"
    if contact.taken_over_at is not None:
        return None, "a person has taken them over (hand them back first)"
    open_run = connection.execute(OPEN_RUN, {"contact_id": contact.id}).first()
    conversation, run_id = conversation_of(connection, open_run, stamp)
    if conversation is not None and run_id is not None:
        if conversation.state is None:  # values kept by Python handlers, no conversation
            end_run(connection, run_id, "ended", stamp)
        elif not replace:
            what = f"flow {conversation.flow!r}" if conversation.flow else "a Python conversation"
            return None, f"already in {what} (--replace ends it)"
        else:
            end_open_runs(connection, contact.id, "cancelled", stamp)
    new_id = save_conversation(
        connection,
        contact_id=contact.id,
        run_id=None,
        before=None,
        decision=decision,
        stamp=stamp,
        our_number=our_number,
        number=number,
    )
    return new_id, None
