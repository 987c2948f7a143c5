"""Migrations keep the data: a database made by an older schema, upgraded, read by the app."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import TextClause
from sqlalchemy import bindparam
from sqlalchemy import create_engine
from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from textback import create_app
from textback.queries import contact_history
from textback.storage.engine import current_revision
from textback.storage.engine import head_revision
from textback.storage.engine import make_engine
from textback.storage.engine import upgrade
from textback.storage.models import Base
from textback.storage.models import UTCDateTime
from textback.storage.tables import contacts
from textback.storage.tables import messages
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .conftest import POSTGRES_URL

OURS = "+15559990000"
ALICE = "+15550001111"
INBOUND_SID = "SM" + "a" * 32
SENT_SID = "SM" + "b" * 32
REPLY_SID = "SM" + "c" * 32
STORED_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message action="https://x.test/twilio/'
    f'status?for={INBOUND_SID}">Hello back to you!</Message></Response>'
)
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    admin_url = make_url(POSTGRES_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        name = f"textback_migrate_{secrets.token_hex(4)}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def typed(sql: str) -> TextClause:
    """``sql`` with its times bound as the models bind them (SQLite keeps text)."""
    statement = text(sql)
    names = [name for name in ("t0", "t1", "at") if f":{name}" in sql]
    return statement.bindparams(*(bindparam(name, type_=UTCDateTime) for name in names))


def old_rows(connection: Any) -> None:
    """What textback wrote under revision 0002: a contact, a message and its reply (no SID yet),
    a message sent through the REST API, a status callback, a finished flow run."""
    connection.execute(
        typed(
            "INSERT INTO contacts (id, our_number, number, first_seen, last_seen, opted_out) "
            "VALUES (1, :ours, :alice, :t0, :t1, false)"
        ),
        {"ours": OURS, "alice": ALICE, "t0": T0, "t1": T1},
    )
    row = (
        "INSERT INTO messages (id, sid, direction, account_sid, from_number, to_number, body, "
        "media, params, status, source, response_twiml, contact_id, reply_to_id, created_at, "
        "updated_at) VALUES (:id, :sid, :direction, 'AC1', :from_, :to, :body, '[]', :params, "
        ":status, :source, :twiml, 1, :reply_to, :at, :at)"
    )
    connection.execute(
        typed(row),
        [
            {
                "id": 1,
                "sid": INBOUND_SID,
                "direction": "inbound",
                "from_": ALICE,
                "to": OURS,
                "body": "Hello",
                "params": '{"Body": "Hello"}',
                "status": "received",
                "source": "rule 1 (keyword hello)",
                "twiml": STORED_TWIML,
                "reply_to": None,
                "at": T0,
            },
            {
                "id": 2,
                "sid": None,
                "direction": "outbound",
                "from_": OURS,
                "to": ALICE,
                "body": "Hello back to you!",
                "params": "{}",
                "status": "queued",
                "source": "rule 1 (keyword hello)",
                "twiml": None,
                "reply_to": 1,
                "at": T0,
            },
            {
                "id": 3,
                "sid": SENT_SID,
                "direction": "outbound",
                "from_": OURS,
                "to": ALICE,
                "body": "See you",
                "params": "{}",
                "status": "sent",
                "source": "api",
                "twiml": None,
                "reply_to": None,
                "at": T1,
            },
        ],
    )
    connection.execute(
        typed(
            "INSERT INTO status_events (message_sid, status, params, received_at) "
            "VALUES (:sid, 'sent', '{}', :t1)"
        ),
        {"sid": SENT_SID, "t1": T1},
    )
    connection.execute(
        typed(
            'INSERT INTO flow_runs (id, contact_id, flow, state, "values", status, started_at, '
            "updated_at, ended_at) VALUES (1, 1, 'survey', NULL, '{\"age\": \"41\"}', "
            "'completed', :t0, :t0, :t0)"
        ),
        {"t0": T0},
    )
    if connection.dialect.name == "postgresql":  # the ids above were given, not drawn
        for table in ("contacts", "messages", "flow_runs"):
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))


def test_old_data_is_kept_and_read(empty_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(empty_database_url)
    upgrade(engine, "0002")
    with engine.begin() as connection:
        old_rows(connection)
    with engine.connect() as connection:
        before = list(connection.execute(select(messages).order_by(messages.c.id)))
    upgrade(engine)

    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as connection:
        kept = list(connection.execute(select(messages).order_by(messages.c.id)))
        assert kept == before
        assert connection.execute(select(contacts.c.id, contacts.c.first_seen)).all() == [(1, T0)]
        assert "last_seen" not in {c["name"] for c in inspect(connection).get_columns("contacts")}
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()

    app = create_app(
        {
            "DATABASE_URL": empty_database_url,
            "TWILIO_AUTH_TOKEN": TEST_TOKEN,
            "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
            "TEXTBACK_PUBLIC_URL": "https://x.test",
        }
    )
    store = app.extensions["textback"].store
    phone = Phone(app, TEST_TOKEN, number=ALICE, to=OURS, public_url="https://x.test")
    try:
        # A retry of the old message gets its stored TwiML byte for byte, and changes nothing.
        assert phone.send("Hello", sid=INBOUND_SID).twiml == STORED_TWIML
        # The old reply gets its SID from its first status callback, then is found by it.
        assert phone.status(REPLY_SID, "sent", reply_to=INBOUND_SID) == 204
        assert phone.status(REPLY_SID, "delivered") == 204
        with store.engine.connect() as connection:
            reply = connection.execute(
                select(messages.c.sid, messages.c.status).where(messages.c.id == 2)
            ).one()
        assert tuple(reply) == (REPLY_SID, "delivered")
        # A SID stays unique, and many rows may still have none.
        with pytest.raises(IntegrityError):
            store.record_outbound(
                sid=SENT_SID,
                from_=OURS,
                to=ALICE,
                body="again",
                media=(),
                status="sent",
                source="api",
            )
        new = phone.send("Hello")
        assert "Hello back to you!" in new.twiml
        seen = contact_history.contact(store.engine, 1)
        assert seen is not None and seen.first_seen == T0
        assert seen.last_seen is not None and seen.last_seen > T1  # the message just now
        assert [row.sid for row in store.recent_messages(contact=ALICE)][:4] == [
            INBOUND_SID,
            REPLY_SID,
            SENT_SID,
            new.sid,
        ]
    finally:
        store.engine.dispose()


def test_downgrade_gives_the_old_schema_back(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    upgrade(engine, "0002")
    with engine.begin() as connection:
        old_rows(connection)
    upgrade(engine)
    from alembic import command

    from textback.storage.engine import alembic_config

    command.downgrade(alembic_config(engine), "0002")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT last_seen FROM contacts")).all()
        assert {i["name"] for i in inspect(connection).get_indexes("messages")} >= {
            "ix_messages_reply_to_id"
        }
        assert connection.execute(text("SELECT count(*) FROM messages")).scalar() == 3
    engine.dispose()


def schema_of(engine: Any) -> dict[str, Any]:
    """Every table's columns, indexes (with a partial index's condition), unique constraints
    and foreign keys, as the database reports them."""
    found: dict[str, Any] = {}
    with engine.connect() as connection:
        found["alembic"] = current_revision(engine)
        look = inspect(connection)
        for table in sorted(look.get_table_names()):
            if table == "alembic_version":
                continue
            indexes = look.get_indexes(table)
            if connection.dialect.name == "sqlite":  # where a partial index's condition is
                sql = dict(
                    connection.execute(
                        text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
                    ).all()
                )
                where = {
                    i["name"]: (sql.get(i["name"]) or "").partition(" WHERE ")[2] for i in indexes
                }
            else:
                where = {
                    i["name"]: str(i.get("dialect_options", {}).get("postgresql_where", ""))
                    for i in indexes
                }
            found[table] = (
                [(c["name"], str(c["type"]), c["nullable"]) for c in look.get_columns(table)],
                sorted(
                    (i["name"], tuple(i["column_names"]), i["unique"], where[i["name"]])
                    for i in indexes
                ),
                sorted(tuple(u["column_names"]) for u in look.get_unique_constraints(table)),
                sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"])
                    for f in look.get_foreign_keys(table)
                ),
            )
    return found


def test_0006_upgrades_to_head_and_back_with_its_data(empty_database_url: str) -> None:
    """The migrations of round 3 (0007-0010) from a 0006 database with contacts, messages,
    profiles and outbox rows: up to head, down to 0006 (the very schema 0006 made, the rows
    kept), and up again."""
    from alembic import command

    from textback.storage.engine import alembic_config

    engine = make_engine(empty_database_url)
    upgrade(engine, "0002")
    with engine.begin() as connection:
        old_rows(connection)
    upgrade(engine, "0006")
    with engine.begin() as connection:
        connection.execute(
            typed(
                "INSERT INTO profiles (id, number, name, language, timezone, fields, "
                "created_at, updated_at) VALUES (1, :alice, 'Ann', 'en', '', '{}', :t0, :t0)"
            ),
            {"alice": ALICE, "t0": T0},
        )
        connection.execute(text("INSERT INTO groups (id, name) VALUES (1, 'patients')"))
        connection.execute(text("INSERT INTO profile_groups (profile_id, group_id) VALUES (1, 1)"))
    at_0006 = schema_of(engine)
    with engine.connect() as connection:
        rows_0006 = {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("contacts", "messages", "flow_runs", "profiles", "profile_groups")
        }

    upgrade(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    command.downgrade(alembic_config(engine), "0006")
    assert schema_of(engine) == at_0006
    with engine.connect() as connection:
        assert {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in rows_0006
        } == rows_0006
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()
