"""Signed request bodies for the load generator: unique MessageSids, real signatures.

wrk's Lua has no HMAC, so every request of a run is signed here beforehand and written to a
file, one ``signature<TAB>body`` line per request; bench/twilio.lua sends each line once.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from textback.channel.forms import inbound_form
from textback.channel.signature import FormParams

TOKEN = "bench-auth-token-0123456789abcdef"
PUBLIC_URL = "https://sms.bench.example"
WEBHOOK_URL = PUBLIC_URL + "/twilio"
TEXTS = ("VOTE 3", "Vote for number 7", "is school closed tomorrow?", "Team blue", "B", "12")


def sid(tag: str, index: int) -> str:
    """A MessageSid like Twilio's (SM + 32 hex digits) whose first 8 digits name the run."""
    return f"SM{tag}{index:024x}"


def signed_bodies(
    tag: str, count: int, *, token: str = TOKEN, seed: int = 0
) -> Iterator[tuple[str, str, bytes]]:
    """``count`` (MessageSid, signature, body) of 19-parameter SMS webhooks, every sid new."""
    if len(tag) != 8 or any(c not in "0123456789abcdef" for c in tag):
        raise ValueError("tag must be 8 hex digits")
    validator = RequestValidator(token)
    chance = random.Random(seed)
    for index in range(count):
        message_sid = sid(tag, index)
        pairs = inbound_form(
            chance.choice(TEXTS),
            sid=message_sid,
            from_=f"+1555{chance.randrange(10**7):07d}",
            to="+15559990000",
        )
        signature = validator.compute_signature(WEBHOOK_URL, FormParams.from_pairs(pairs))
        yield message_sid, str(signature), urlencode(pairs).encode()


def write_pool(path: Path, tag: str, count: int, *, seed: int = 0) -> list[str]:
    """Write ``count`` signed bodies for wrk to ``path``; returns their sids in file order."""
    sids = []
    with path.open("wb") as handle:
        for message_sid, signature, body in signed_bodies(tag, count, seed=seed):
            handle.write(signature.encode() + b"\t" + body + b"\n")
            sids.append(message_sid)
    return sids


def sent_sids(sids: list[str], threads: int, issued: list[int]) -> set[str]:
    """The sids wrk sent: thread t sends lines t, t+threads, ... in order, issued[t] of them."""
    sent: set[str] = set()
    for thread, count in enumerate(issued):
        sent.update(sids[thread::threads][:count])
    return sent


def secrets_tag() -> str:
    """A new run tag: 8 hex digits."""
    return secrets.token_hex(4)
