"""Exactly-once: every webhook wrk sent to textback is stored once, with one reply.

Exactly the sids wrk sent may be stored (a request still in flight when wrk stopped may or may
not be); every completed request must be; each stored message has its TwiML and one reply row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy import text


@dataclass(frozen=True)
class Stored:
    """One inbound message as the database holds it."""

    sid: str
    has_twiml: bool
    replies: int


def stored_messages(engine: Engine, tag: str) -> list[Stored]:
    """The inbound messages of one run (their sids start with ``SM`` + ``tag``)."""
    query = text(
        "SELECT m.sid, m.response_twiml IS NOT NULL, count(r.id) FROM messages m "
        "LEFT JOIN messages r ON r.reply_to_id = m.id "
        "WHERE m.direction = 'inbound' AND m.sid LIKE :pattern GROUP BY m.id, m.sid"
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"pattern": f"SM{tag}%"}).all()
    return [Stored(str(sid), bool(twiml), int(replies)) for sid, twiml, replies in rows]


def problems(*, sent: set[str], stored: list[Stored], completed: int, in_flight: int) -> list[str]:
    """What breaks exactly-once in one run; empty when every request was stored exactly once.

    ``completed`` is the number of answered requests, ``in_flight`` the most that may have been
    sent but not answered when the load stopped (one per connection).
    """
    found: list[str] = []
    sids = [row.sid for row in stored]
    if len(set(sids)) != len(sids):
        found.append(f"{len(sids) - len(set(sids))} MessageSids stored more than once")
    unknown = set(sids) - sent
    if unknown:
        found.append(f"{len(unknown)} stored MessageSids were never sent")
    if len(sids) < completed:
        found.append(f"{completed - len(sids)} answered requests were not stored")
    missing = len(sent - set(sids))
    if missing > in_flight:
        found.append(f"{missing} sent requests not stored (at most {in_flight} were in flight)")
    no_twiml = sum(1 for row in stored if not row.has_twiml)
    if no_twiml:
        found.append(f"{no_twiml} stored messages have no TwiML")
    wrong = sum(1 for row in stored if row.replies != 1)
    if wrong:
        found.append(f"{wrong} stored messages have no reply or more than one")
    return found
