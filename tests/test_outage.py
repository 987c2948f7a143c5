"""A database outage: webhooks kept in the journal and answered at once, replayed when the
database is back; one log line when it starts and one when it ends, ``/healthz`` and ``/readyz``.
On a private PostgreSQL stopped and started in the test, and on a SQLite file whose folder goes
away."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.private_postgres import PrivatePostgres
from tests.private_postgres import private_postgres as running_private_postgres
from textback.app import create_app
from textback.channel.forms import inbound_form
from textback.channel.forms import status_form
from textback.channel.twiml import parse_twiml
from textback.core.bot import DEFAULT_REPLY
from textback.storage import tables
from textback.storage.outbox import outbox
from textback.testing import TEST_TOKEN
from textback.testing import Phone
from textback.web.journaling import JOURNALING_KEY
from textback.web.outage import DatabaseOutage

REPLAY_SECONDS = 60

STARTED = "database unavailable"
ENDED = "database answers again"


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with running_private_postgres() as server:
        yield server


def build(tmp_path: Path, database_url: str) -> Flask:
    return create_app(
        {
            "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
            "DATABASE_URL": database_url,
            "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        }
    )


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if text in record.getMessage()]


def outage_requests(phone: Phone) -> list[Any]:
    """What a webhook, a status callback and the probes get during the outage."""
    return [
        phone.post("/twilio", inbound_form("Hello")),
        phone.post("/twilio", inbound_form("Hello again")),
        phone.post("/twilio/status", status_form("SM" + "5" * 32, "delivered")),
        phone.post("/twilio", inbound_form("Hello", sid="SM" + "6" * 32), token="forged"),
    ]


def check_outage(
    app: Flask,
    caplog: pytest.LogCaptureFixture,
    go_away: Callable[[], None],
    come_back: Callable[[], None],
) -> None:
    phone = Phone(app, TEST_TOKEN)
    client = app.test_client()
    journaling = app.extensions[JOURNALING_KEY]
    assert phone.send("Hello").status == 200
    assert client.get("/readyz").status_code == 200
    go_away()
    with caplog.at_level(logging.INFO, logger="textback"):
        first, again, callback, forged = outage_requests(phone)
        for response in (first, again):
            assert response.status_code == 200  # kept in the journal, on disk
            assert parse_twiml(response.get_data(as_text=True)) == ()
        assert callback.status_code == 204
        assert forged.status_code == 403  # refused without the database, though not counted
        ready = client.get("/readyz")
        assert ready.status_code == 503
        text = ready.get_data(as_text=True)
        assert "the database does not answer: OperationalError" in text
        assert "journal: 3 entries waiting to be replayed" in text
        assert client.get("/healthz").status_code == 200
        assert len(messages(caplog, STARTED)) == 1
        assert not [record for record in caplog.records if record.exc_info]
        assert not messages(caplog, ENDED)
        come_back()
        assert journaling.join(REPLAY_SECONDS), "the journal was not replayed"
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert "journal: 0 entries waiting to be replayed" in ready.get_data(as_text=True)
        assert phone.send("Hello").status == 200
        assert phone.status("SM" + "5" * 32, "delivered") == 204
    assert len(messages(caplog, STARTED)) == 1
    assert len(messages(caplog, ENDED)) == 1
    engine = app.extensions["textback"].store.engine
    with engine.connect() as connection:
        bodies = connection.execute(
            select(tables.messages.c.body).where(tables.messages.c.direction == "inbound")
        ).scalars()
        assert sorted(bodies) == ["Hello", "Hello", "Hello", "Hello again"]
        owed = connection.execute(select(outbox.c.body).order_by(outbox.c.id)).scalars()
        assert list(owed) == ["Hello back to you!", DEFAULT_REPLY]


def test_a_postgresql_outage(
    tmp_path: Path, private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    app = build(tmp_path, private_postgres.url)
    try:
        check_outage(app, caplog, private_postgres.stop, private_postgres.start)
    finally:
        app.extensions["textback"].store.engine.dispose()


def test_a_sqlite_file_out_of_reach(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A database on a mount that went away: the open connections are closed, new ones fail."""
    folder = tmp_path / "db"
    app = build(tmp_path, f"sqlite:///{folder / 'textback.db'}")
    engine = app.extensions["textback"].store.engine

    def go_away() -> None:
        folder.rename(tmp_path / "db-gone")
        engine.dispose()

    def come_back() -> None:
        (tmp_path / "db-gone").rename(folder)

    try:
        check_outage(app, caplog, go_away, come_back)
    finally:
        engine.dispose()


def test_the_outage_is_logged_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    times = iter([10.0, 12.5, 20.0])
    outage = DatabaseOutage(clock=lambda: next(times))
    with caplog.at_level(logging.INFO, logger="textback"):
        outage.answered()
        for _ in range(3):
            outage.failed(OSError("connection refused"))
        assert outage.active
        outage.answered()
        outage.answered()
        outage.failed(OSError("again"))
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "database unavailable (OSError: connection refused): keeping webhooks in the journal "
        "(pages: 503) until it answers again",
        "database answers again after 2.5 s of outage",
        "database unavailable (OSError: again): keeping webhooks in the journal (pages: 503) "
        "until it answers again",
    ]
