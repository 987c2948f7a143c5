"""The hot path fails as SQLAlchemy fails: its exceptions, and a dropped connection invalidated."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import OperationalError

from textback.channel.forms import inbound_form
from textback.core.message import Inbound
from textback.core.responder import decide
from textback.storage.engine import make_engine
from textback.storage.inbound import ContactState
from textback.storage.inbound import Decided
from textback.storage.tables import messages
from textback.testing import TEST_TOKEN
from textback.testing import Phone

REFUSE_REPLIES = {
    "sqlite": [
        "CREATE TRIGGER refuse_replies BEFORE INSERT ON messages "
        "WHEN NEW.direction = 'outbound' BEGIN SELECT RAISE(ABORT, 'no replies'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_replies() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.direction = 'outbound' THEN "
        "RAISE EXCEPTION 'no replies' USING ERRCODE = 'check_violation'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_replies BEFORE INSERT ON messages "
        "FOR EACH ROW EXECUTE FUNCTION refuse_replies()",
    ],
}
DROP_REFUSAL = {
    "sqlite": ["DROP TRIGGER refuse_replies"],
    "postgresql": [
        "DROP TRIGGER refuse_replies ON messages",
        "DROP FUNCTION refuse_replies()",
    ],
}


@pytest.fixture
def refusing_replies(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """An app whose database refuses every outbound row, as a constraint would."""
    app = make_app()
    engine: Engine = app.extensions["textback"].store.engine
    dialect = engine.dialect.name
    with engine.begin() as connection:
        for statement in REFUSE_REPLIES[dialect]:
            connection.exec_driver_sql(statement)
    yield app
    with engine.begin() as connection:  # the PostgreSQL database is shared by the session
        for statement in DROP_REFUSAL[dialect]:
            connection.exec_driver_sql(statement)


def stored_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(messages)).scalar_one())


def test_a_constraint_violation_is_sqlalchemys_and_stores_nothing(refusing_replies: Flask) -> None:
    service = refusing_replies.extensions["textback"]
    with pytest.raises(IntegrityError):
        service.answer(Inbound.from_form(inbound_form("Hello")))
    assert stored_count(service.store.engine) == 0


def test_a_dropped_postgresql_connection_is_invalidated_and_the_next_message_answered(
    make_app: Callable[..., Flask], database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite connection cannot be dropped from outside")
    app = make_app()
    service = app.extensions["textback"]
    other = make_engine(database_url)

    def drop_then_decide(connection: Connection, state: ContactState) -> Decided:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with other.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(200):  # wait until the backend has really gone
                gone = not killer.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar()
                if gone:
                    break
                time.sleep(0.02)
        decision = decide(
            msg,
            opted_out=state.opted_out,
            conversation=state.conversation,
            bot=service.bot,
            rules=service.rules,
        )
        return Decided(decision, "<Response/>")

    msg = Inbound.from_form(inbound_form("Hello"))
    try:
        with pytest.raises(OperationalError) as raised:
            service.store.record_inbound(msg, drop_then_decide)
        assert raised.value.connection_invalidated
        assert stored_count(service.store.engine) == 0
        reply = Phone(app, TEST_TOKEN).send("Hello")
        assert reply.status == 200
        assert reply.text == "Hello back to you!"
        assert stored_count(service.store.engine) == 2
    finally:
        other.dispose()


def test_a_failed_statement_logs_no_body_and_no_number(
    refusing_replies: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """A database error is logged with its traceback, whose text SQLAlchemy makes with the
    statement's values: those are bodies and whole numbers, so the engine hides them."""
    secret, number = "my PIN is 4242", "+15550001234"
    phone = Phone(refusing_replies, TEST_TOKEN)
    with caplog.at_level("INFO"):
        assert phone.post("/twilio", inbound_form(secret, from_=number)).status_code == 500
    logged = "\n".join(
        record.getMessage()
        + "\n"
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "IntegrityError" in logged  # the failure is logged, with its traceback
    assert secret not in logged and number not in logged
