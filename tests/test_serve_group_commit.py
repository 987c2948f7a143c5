"""Batches under real processes: `textback serve --workers 2` answering webhooks from many
connections, a worker killed with SIGKILL in the middle of its batches, every request retried
until answered (as Twilio retries). Every MessageSid is stored once with one reply, and every
answer, first or repeated, is the TwiML stored for it; on SQLite and on PostgreSQL."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select

from tests.served import Served
from tests.served import textback_serve
from textback.channel.forms import inbound_form
from textback.channel.forms import new_sid
from textback.channel.forms import signed_request
from textback.storage.engine import make_engine
from textback.storage.tables import messages
from textback.testing import TEST_TOKEN

CLIENTS = 8
PER_CLIENT = 60
GIVE_UP_AFTER_S = 60


def answer(served: Served, payload: bytes, headers: dict[str, str]) -> bytes:
    """POST until a 200 comes back (a killed worker drops its connections): its body."""
    deadline = time.monotonic() + GIVE_UP_AFTER_S
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        try:
            connection.request("POST", "/twilio", body=payload, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status == 200:
                return body
        except (OSError, http.client.HTTPException):
            pass  # the worker died with the request: Twilio would try again
        finally:
            connection.close()
        assert time.monotonic() < deadline, "a webhook was never answered"
        time.sleep(0.05)


def test_a_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    tmp_path: Path, database_url: str
) -> None:
    answers: dict[str, bytes] = {}
    repeats: dict[str, bytes] = {}
    lock = threading.Lock()
    with textback_serve(tmp_path, database_url=database_url, workers=2) as served:
        url = served.public_url + "/twilio"

        def client(number: int) -> None:
            for index in range(PER_CLIENT):
                sid = new_sid()
                form = inbound_form(f"vote {index}", sid=sid, from_=f"+1555700{number:04d}")
                payload, headers = signed_request(TEST_TOKEN, url, form)
                first = answer(served, payload, headers)
                again = answer(served, payload, headers) if index % 10 == 0 else None
                with lock:
                    answers[sid] = first
                    if again is not None:
                        repeats[sid] = again

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        while len(answers) < CLIENTS * PER_CLIENT // 3:
            time.sleep(0.01)
        killed = served.worker_pids()[0]
        os.kill(killed, signal.SIGKILL)  # mid-traffic, mid-batch
        done_before_kill = len(answers)
        for thread in threads:
            thread.join(GIVE_UP_AFTER_S * 2)
        assert served.alive()
        assert done_before_kill < CLIENTS * PER_CLIENT  # the kill came while traffic went on
        served.wait_for("Started worker-", served.workers + 1)  # granian replaced the worker
        assert killed not in served.worker_pids()
        output = served.output()

    assert len(answers) == CLIENTS * PER_CLIENT
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(messages.c.id, messages.c.sid, messages.c.response_twiml).where(
                    messages.c.sid.in_(list(answers)), messages.c.direction == "inbound"
                )
            ).all()
            counted = connection.execute(
                select(func.count()).select_from(messages).where(messages.c.sid.in_(list(answers)))
            ).scalar_one()
            replies = connection.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.reply_to_id.in_([row.id for row in rows]))
            ).scalar_one()
    finally:
        engine.dispose()
    assert counted == len(answers)  # each SID once
    assert replies == len(answers)  # one reply each
    assert {row.sid: row.response_twiml.encode() for row in rows} == answers
    assert all(repeats[sid] == answers[sid] for sid in repeats)  # a retry: the same bytes
    assert "Traceback" not in output
