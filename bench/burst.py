"""The burst: 10,000 webhooks, 5 % of them repeated, spread over the servers at once.

Half of the repeats follow their original immediately (and go to the other server), so the
two race; the rest come later. Every request must get 200, every repeat the byte-identical
TwiML of its original, and the database one inbound row and one reply per MessageSid.
"""

from __future__ import annotations

import http.client
import queue
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine

from . import bodies
from . import check

Request = tuple[str, str, bytes]  # (MessageSid, signature, body)


def schedule(unique: list[Request], repeats: int, *, seed: int = 7) -> list[Request]:
    """The order of the burst: ``unique`` with ``repeats`` of them sent again."""
    chance = random.Random(seed)
    chosen = chance.sample(range(len(unique)), repeats)
    adjacent = set(chosen[: repeats // 2])
    order: list[Request] = []
    for index, request in enumerate(unique):
        order.append(request)
        if index in adjacent:
            order.append(request)
    for index in chosen[repeats // 2 :]:
        after = order.index(unique[index]) + 1
        order.insert(chance.randrange(after, len(order) + 1), unique[index])
    return order


def post(url: str, request: Request) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request(
            "POST",
            parts.path,
            body=request[2],
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": request[1],
            },
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class BurstResult:
    sent: int
    unique: int
    seconds: float
    problems: list[str]


def burst(
    urls: list[str], engine: Engine, *, total: int = 10_000, repeat_share: float = 0.05
) -> BurstResult:
    """Send the burst through 16 connections, request ``i`` to server ``i % len(urls)``."""
    repeats = round(total * repeat_share)
    tag = bodies.secrets_tag()
    unique = list(bodies.signed_bodies(tag, total - repeats, seed=11))
    order = schedule(unique, repeats)
    work: queue.Queue[tuple[int, Request]] = queue.Queue()
    for item in enumerate(order):
        work.put(item)
    answers: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    lock = threading.Lock()

    def client() -> None:
        while True:
            try:
                index, request = work.get_nowait()
            except queue.Empty:
                return
            answer = post(urls[index % len(urls)], request)
            with lock:
                answers[request[0]].append(answer)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    found: list[str] = []
    failed = sum(1 for got in answers.values() for status, _ in got if status != 200)
    if failed:
        found.append(f"{failed} requests were not answered 200")
    differ = sum(1 for got in answers.values() if len({body for _, body in got}) > 1)
    if differ:
        found.append(f"{differ} repeated MessageSids got a different answer")
    found += check.problems(
        sent={sid for sid, _, _ in unique},
        stored=check.stored_messages(engine, tag),
        completed=len(unique),
        in_flight=0,
    )
    return BurstResult(sent=len(order), unique=len(unique), seconds=seconds, problems=found)
