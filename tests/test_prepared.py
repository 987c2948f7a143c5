"""Prepared statements store exactly what SQLAlchemy's own execution stores."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from sqlalchemy import select

from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine
from textback.storage.inbound import InboundStatements
from textback.storage.prepared import Prepared
from textback.storage.tables import insert_for
from textback.storage.tables import messages

ROW = {
    "sid": "SM1",
    "account_sid": "AC1",
    "from_number": "+15550001111",
    "to_number": "+15559990000",
    "body": "héllo \U0001f600",
    "media": [{"url": "https://x.test/a.jpg", "content_type": "image/jpeg"}],
    "params": {"Body": "héllo", "Repeated": ["a", "b"]},
    "stamp": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    "contact_id": None,
}


def test_prepared_and_sqlalchemy_store_the_same(database_url: str) -> None:
    engine = make_engine(database_url)
    ensure_schema(engine)
    statements = InboundStatements(insert_for(engine), engine.dialect.name)
    prepared = Prepared(statements.claim, engine.dialect)
    with engine.begin() as connection:
        first = prepared.scalar(connection, ROW)
        second = connection.execute(statements.claim, {**ROW, "sid": "SM2"}).scalar()
        again = prepared.scalar(connection, ROW)  # ON CONFLICT DO NOTHING: no row back
    assert isinstance(first, int)
    assert second == first + 1
    assert again is None
    with engine.connect() as connection:
        rows = connection.execute(select(messages).order_by(messages.c.id)).all()
    engine.dispose()
    one, two = (row._asdict() for row in rows)
    assert one.pop("id") + 1 == two.pop("id")
    assert (one.pop("sid"), two.pop("sid")) == ("SM1", "SM2")
    assert one == two
    assert one["media"] == ROW["media"]
    assert one["params"] == ROW["params"]
    assert one["direction"] == "inbound"
