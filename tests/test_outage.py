"""A database outage: 503 with Retry-After, one log line when it starts and one when it ends,
``/healthz`` and ``/readyz``. On a private PostgreSQL stopped and started in the test, and on a
SQLite file whose folder goes away."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.private_postgres import PrivatePostgres
from tests.private_postgres import private_postgres as running_private_postgres
from textback.app import create_app
from textback.channel.forms import inbound_form
from textback.channel.forms import status_form
from textback.testing import TEST_TOKEN
from textback.testing import Phone
from textback.web.outage import DatabaseOutage

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
    assert phone.send("Hello").status == 200
    assert client.get("/readyz").status_code == 200
    go_away()
    with caplog.at_level(logging.INFO, logger="textback"):
        first, again, callback, forged = outage_requests(phone)
        for response in (first, again, callback):
            assert response.status_code == 503
            assert response.headers["Retry-After"].isdigit()
            assert "Traceback" not in response.get_data(as_text=True)
        assert forged.status_code == 403  # refused without the database, though not counted
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "the database does not answer: OperationalError" in ready.get_data(as_text=True)
        assert client.get("/healthz").status_code == 200
        assert len(messages(caplog, STARTED)) == 1
        assert not [record for record in caplog.records if record.exc_info]
        assert not messages(caplog, ENDED)
        come_back()
        assert client.get("/readyz").status_code == 200
        assert phone.send("Hello").status == 200
        assert phone.status("SM" + "5" * 32, "delivered") == 204
    assert len(messages(caplog, STARTED)) == 1
    assert len(messages(caplog, ENDED)) == 1


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
        "database unavailable (OSError: connection refused): answering 503 with Retry-After "
        "until it answers again",
        "database answers again after 2.5 s of outage",
        "database unavailable (OSError: again): answering 503 with Retry-After until it "
        "answers again",
    ]
