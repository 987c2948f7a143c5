"""A real `textback worker` process sends a flow's reminder and its expiry message (issue 14):
the webhook (in this process) scheduled them; the worker's sweep finds them due."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from textback.storage.models import FlowRun
from textback.storage.outbox import outbox as outbox_table
from textback.storage.store import Store
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .standin import StandIn
from .standin import standin_api  # noqa: F401
from .test_worker_processes import environment
from .test_worker_processes import wait_until
from .test_worker_processes import workers  # noqa: F401

OURS = "+15559990000"
ANN = "+15550001111"
BOB = "+15550002222"
RULES = """
[[flow]]
name = "survey"
trigger = "survey"
expire_after = "24h"
expired = "The survey has closed."

[[flow.step]]
ask = "How would you rate us, 1-5?"
save = "rating"
remind_after = "1h"
remind = "A reminder: how would you rate us, 1-5?"
"""


def due_left(store: Store) -> int:
    """Outbox rows still to be done by now: queued, being sent, or scheduled and due."""
    now = datetime.now(UTC)
    with store.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).where(
                    or_(
                        outbox_table.c.state.in_(("queued", "sending")),
                        (outbox_table.c.state == "scheduled") & (outbox_table.c.send_at <= now),
                    )
                )
            ).scalar_one()
        )


def test_the_worker_sends_a_reminder_and_an_expiry_message(
    make_app: Callable[..., Flask],
    database_url: str,
    standin: StandIn,
    tmp_path: Path,
    workers: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    rules = tmp_path / "textback.toml"
    rules.write_text(RULES)
    app = make_app(TEXTBACK_RULES=str(rules))
    store: Store = app.extensions["textback"].store
    started = datetime.now(UTC)
    # Ann asked 61 minutes ago (her reminder is due), Bob 25 hours ago (his run has expired).
    store.clock = lambda: started - timedelta(minutes=61)
    Phone(app, TEST_TOKEN, number=ANN, to=OURS).send("survey")
    store.clock = lambda: started - timedelta(hours=25)
    Phone(app, TEST_TOKEN, number=BOB, to=OURS).send("survey")

    env = environment(standin, database_url, f"sqlite:///{tmp_path / 'queue.db'}", tmp_path)
    workers(env)
    wait_until(lambda: len(standin.sent) >= 2 and due_left(store) == 0, "the timers to be sent")
    assert sorted((item.form["To"], item.form["Body"]) for item in standin.sent) == [
        (ANN, "A reminder: how would you rate us, 1-5?"),
        (BOB, "The survey has closed."),
    ]
    with store.engine.connect() as connection:
        statuses = connection.execute(select(FlowRun.status).order_by(FlowRun.id)).scalars()
        assert list(statuses) == ["open", "expired"]
        bob_reminder = connection.execute(
            select(outbox_table.c.state, outbox_table.c.reason).where(
                outbox_table.c.to_number == BOB, outbox_table.c.key.like("%:remind:%")
            )
        ).one()
    # Taken before or after the expiry: cancelled either way, never sent.
    assert bob_reminder.state == "cancelled"
    assert bob_reminder.reason in ("the flow run ended before it was due", "the flow run expired")
