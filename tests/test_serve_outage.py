"""``textback serve`` through a database outage (issue 11, defect 12; issue 13's journal).

On a private PostgreSQL stopped and started by the test, with real server processes:

- under traffic that includes STOP and HELP, PostgreSQL stops for about 10 s and starts again:
  every webhook is answered 200 at once (journaled while the database is away), every
  acknowledged one is stored exactly once, every owed reply is in the outbox once, and STOPs
  are honoured;
- the server is killed while the database is down and started once it is back: the journal it
  left is replayed;
- a worker killed during the outage comes back without the database (the schema is checked
  once, when serve starts) and answers again once PostgreSQL does.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select

from tests.private_postgres import PrivatePostgres
from tests.private_postgres import private_postgres
from tests.served import TEXTBACK
from tests.served import Served
from tests.served import free_port
from tests.served import textback_serve
from textback.channel.forms import inbound_form
from textback.channel.forms import new_sid
from textback.channel.forms import signed_request
from textback.channel.twiml import parse_twiml
from textback.core.optout import HELP_TAIL
from textback.core.optout import STOP_REPLY
from textback.storage.engine import make_engine
from textback.storage.outbox import outbox
from textback.storage.tables import contacts
from textback.storage.tables import messages
from textback.testing import TEST_TOKEN
from textback.web.journal_replay import JOURNALED
from textback.web.journal_replay import outbox_key

RECOVERY_SECONDS = 60
OUTAGE_SECONDS = 10
TEXTBACK_ANSWERS = {"TEXTBACK_CARRIER_REPLIES": "textback", "TEXTBACK_SENDER_NAME": "Acme"}


@dataclass(frozen=True)
class Sent:
    """One webhook the test sent, and what it got."""

    sid: str
    number: str
    body: str
    status: int  # 0: no answer at all
    answer: str


def post(served: Served, body: str, number: str, *, timeout: float = 15) -> Sent:
    """A signed message webhook on a new connection; Twilio's own timeout is 15 s."""
    sid = new_sid()
    form = inbound_form(body, from_=number, sid=sid)
    payload, headers = signed_request(TEST_TOKEN, served.public_url + "/twilio", form)
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    try:
        connection.request("POST", "/twilio", body=payload, headers=headers)
        response = connection.getresponse()
        return Sent(sid, number, body, response.status, response.read().decode())
    except OSError:
        return Sent(sid, number, body, 0, "")
    finally:
        connection.close()


class Traffic:
    """Clients texting all the time, from their own numbers: plain messages and HELP."""

    def __init__(self, served: Served, clients: int = 3) -> None:
        self.served = served
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(client,), daemon=True)
            for client in range(clients)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, client: int) -> None:
        bodies = ["hello", "what are your hours?", "HELP", "thanks"]
        for turn in count():
            if self._stop.is_set():
                return
            number = f"+1555200{client:02d}{turn % 5:02d}"
            self.add(post(self.served, bodies[turn % len(bodies)], number))
            time.sleep(0.05)

    def add(self, sent: Sent) -> None:
        with self._lock:
            self.sent.append(sent)


def readyz(served: Served) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def wait_until_replayed(served: Served) -> None:
    """Until the database answers and no journal entry waits."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        status, text = readyz(served)
        if status == 200 and "journal: 0 entries waiting" in text:
            return
        assert time.monotonic() < deadline, f"{text}\n{served.output()}"
        time.sleep(0.2)


def check_stored(database: PrivatePostgres, sent: list[Sent], stoppers: set[str]) -> None:
    """Every acknowledged webhook stored once; every owed reply queued once; STOPs honoured."""
    acknowledged = [s for s in sent if s.status == 200]
    engine = make_engine(database.url)
    try:
        with engine.connect() as connection:
            stored: dict[str, int] = dict(
                connection.execute(
                    select(messages.c.sid, func.count())
                    .where(messages.c.direction == "inbound")
                    .group_by(messages.c.sid)
                ).all()
            )
            journaled_sids = {
                row.sid
                for row in connection.execute(
                    select(messages.c.sid, messages.c.params).where(
                        messages.c.direction == "inbound"
                    )
                )
                if JOURNALED in row.params
            }
            queued = Counter(
                (row.key, row.to_number)
                for row in connection.execute(select(outbox.c.key, outbox.c.to_number))
            )
            opted_out = set(
                connection.execute(
                    select(contacts.c.number).where(contacts.c.opted_out.is_(True))
                ).scalars()
            )
    finally:
        engine.dispose()
    assert {s.sid: stored.get(s.sid) for s in acknowledged} == {s.sid: 1 for s in acknowledged}
    journaled = [s for s in acknowledged if s.sid in journaled_sids]
    assert journaled, "no webhook came through the journal: was the database ever down?"
    assert {"STOP", "HELP"} <= {s.body for s in journaled}
    assert stoppers <= opted_out
    owed = Counter(
        (outbox_key(s.sid), s.number)
        for s in journaled
        if s.body.upper() not in ("HELP", "STOP") and s.number not in stoppers
    )
    assert queued == owed  # each owed reply once; none to a contact who said STOP


def test_an_outage_under_traffic_loses_nothing(tmp_path: Path) -> None:
    stoppers = {"+15553000001", "+15553000002"}
    with private_postgres() as database:
        with (
            textback_serve(
                tmp_path, database_url=database.url, workers=2, env=TEXTBACK_ANSWERS
            ) as served,
            Traffic(served) as traffic,
        ):
            time.sleep(1)  # traffic with the database up: answered as usual
            database.stop()
            # During the outage: a hello, then STOP (the hello's reply is owed no more); a STOP
            # followed by another message; HELP. Answered without the database.
            traffic.add(post(served, "hello", "+15553000001"))
            stop = post(served, "STOP", "+15553000001")
            traffic.add(stop)
            traffic.add(post(served, "stop", "+15553000002"))
            help_ = post(served, "HELP", "+15553000003")
            traffic.add(help_)
            time.sleep(OUTAGE_SECONDS)
            database.start()
            # Back, but the journal may not be replayed yet: this must not be answered ahead
            # of the STOP in the journal.
            again = post(served, "hello again", "+15553000002")
            traffic.add(again)
            time.sleep(1)  # traffic goes on while the journal is replayed
            wait_until_replayed(served)
        output = served.output()
        assert [text for text, _ in parse_twiml(stop.answer)] == [f"Acme: {STOP_REPLY}"]
        assert [text for text, _ in parse_twiml(help_.answer)] == [
            f"Acme: automated replies to your texts. {HELP_TAIL}"
        ]
        assert parse_twiml(again.answer) == ()
        assert [s for s in traffic.sent if s.status != 200] == []  # no 5xx, no time-out
        check_stored(database, traffic.sent, stoppers)
    assert "Traceback" not in output


def test_a_server_killed_during_an_outage_replays_its_journal_when_started(
    tmp_path: Path,
) -> None:
    with private_postgres() as database:
        sent: list[Sent] = []
        with textback_serve(tmp_path, database_url=database.url, workers=2) as served:
            sent.append(post(served, "hello", "+15554000001"))
            database.stop()
            sent += [
                post(served, "hello", "+15554000001"),
                post(served, "what are your hours?", "+15554000002"),
                post(served, "STOP", "+15554000002"),
                post(served, "HELP", "+15554000003"),
            ]
            os.killpg(served.process.pid, signal.SIGKILL)  # no graceful stop, no replay
            served.process.wait()
        assert [s.status for s in sent] == [200] * 5
        journal = tmp_path / "instance" / "journal.jsonl"
        assert len(journal.read_bytes().splitlines()) == 4
        database.start()
        with textback_serve(tmp_path, database_url=database.url, workers=2) as restarted:
            wait_until_replayed(restarted)
        check_stored(database, sent, {"+15554000002"})


def test_a_worker_killed_during_an_outage_comes_back_with_the_database(tmp_path: Path) -> None:
    with (
        private_postgres() as database,
        textback_serve(tmp_path, database_url=database.url, workers=2) as served,
    ):
        for _ in range(10):  # both workers have pooled connections to lose
            assert served.post_webhook()[0] == 200
        database.stop()
        for _ in range(4):
            status, _ = served.post_webhook()
            assert status == 200  # kept in the journal
        victim, survivor = served.worker_pids()
        os.kill(victim, signal.SIGKILL)
        # granian logs "Started worker-N" after the worker built its app: it booted without
        # the database (before the fix, it failed at boot and the whole server exited)
        served.wait_for("Started worker-", 3)
        assert served.alive()
        assert victim not in served.worker_pids()
        assert survivor in served.worker_pids()

        database.start()
        wait_until_replayed(served)
        statuses = [served.post_webhook()[0] for _ in range(20)]  # new connections: both workers
        assert statuses == [200] * 20
        assert served.alive()


def test_serve_checks_the_schema_once_at_start(tmp_path: Path) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    result = subprocess.run(
        [TEXTBACK, "serve", f"--bind=127.0.0.1:{free_port()}", "--workers=2"],
        env={**os.environ, "TWILIO_AUTH_TOKEN": TEST_TOKEN, "DATABASE_URL": unreachable},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "textback: error: cannot open the database" in result.stderr
    assert "Traceback" not in result.stderr
