"""The admin overview counts slow-handler jobs waiting, running and failed (SQLite and
PostgreSQL, through Flask's test client)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import insert
from sqlalchemy import select

from textback.queries.slow_jobs import slow_job_counts
from textback.storage.inbound import slow_jobs
from textback.storage.tables import messages
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .test_admin import FAST_HASH
from .test_admin import log_in
from .test_admin import page

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(TEXTBACK_ADMIN_PASSWORD=FAST_HASH)


def add_jobs(app: Flask, states: list[str]) -> None:
    """One job per state, each on a message of its own (the states are set directly)."""
    phone = Phone(app, TEST_TOKEN)
    for _ in states:
        phone.send("hi", from_="+15550000001")
    engine = app.extensions["textback"].store.engine
    with engine.begin() as connection:
        rows = connection.execute(
            select(messages.c.id, messages.c.contact_id, messages.c.sid)
            .where(messages.c.direction == "inbound")
            .order_by(messages.c.id)
        ).all()
        for row, state in zip(rows, states, strict=True):
            connection.execute(
                insert(slow_jobs).values(
                    message_sid=row.sid,
                    message_id=row.id,
                    contact_id=row.contact_id,
                    handler="tests.slow",
                    state=state,
                    attempts=1,
                    created_at=T0,
                    updated_at=T0,
                )
            )


def test_the_overview_counts_slow_jobs_by_state(app: Flask) -> None:
    engine = app.extensions["textback"].store.engine
    assert slow_job_counts(engine) == {"waiting": 0, "running": 0, "failed": 0}
    add_jobs(app, ["waiting", "waiting", "running", "done", "failed", "failed", "failed"])
    assert slow_job_counts(engine) == {"waiting": 2, "running": 1, "failed": 3}
    client = app.test_client()
    assert log_in(client).status_code == 302
    html = page(client, "/admin/overview")
    card = html[html.index("Slow handler jobs") :]
    card = card[: card.index("</section>")]
    assert '<td>waiting</td><td class="num">2</td>' in card
    assert '<td>running</td><td class="num">1</td>' in card
    assert '<td>failed</td><td class="num">3</td>' in card
    assert "done" not in card
