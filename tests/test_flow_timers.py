"""Flows that wait (issue 14): a reminder after no answer, a message when the run expires, both
as scheduled outbox rows that an answer cancels; with a fixed clock, on SQLite and PostgreSQL,
sent by the outbox against the stand-in API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from huey import MemoryHuey
from sqlalchemy import select

from textback.config import Settings
from textback.outbound.outbox import Outbox
from textback.storage import flow_timers
from textback.storage import outbox as states
from textback.storage.flow_timers import flow_timers as timers_table
from textback.storage.models import FlowRun
from textback.storage.outbox import outbox as outbox_table
from textback.storage.store import Store
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .prism import ACCOUNT
from .standin import StandIn
from .standin import standin_api  # noqa: F401

OURS = "+15559990000"
ANN = "+15550001111"
TIMED = r"""
[default]
reply = "Text SURVEY to start."

[[flow]]
name = "survey"
trigger = "survey"
expire_after = "24h"
expired = "The survey has closed. Thanks anyway!"
done = "Thanks, {name}!"

[[flow.step]]
ask = "Your name?"
save = "name"
remind_after = "2h"
remind = "Still there? What's your name?"

[[flow.step]]
ask = "Rate us 1-5, {name}?"
save = "rating"
remind_after = "1h"
"""
REMIND_NAME = "Still there? What's your name?"
CLOSED = "The survey has closed. Thanks anyway!"


class Clock:
    """The store's clock, moved by the test; the webhook, the outbox and the timers follow it."""

    def __init__(self) -> None:
        self.time = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.time

    def advance(self, **delta: float) -> None:
        self.time += timedelta(**delta)


@pytest.fixture
def app(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    path = tmp_path / "textback.toml"
    path.write_text(TIMED)
    return make_app(TEXTBACK_RULES=str(path))


@pytest.fixture
def store(app: Flask) -> Store:
    store: Store = app.extensions["textback"].store
    return store


@pytest.fixture
def clock(store: Store) -> Clock:
    clock = Clock()
    store.clock = clock
    return clock


@pytest.fixture
def phone(app: Flask, clock: Clock) -> Phone:
    return Phone(app, TEST_TOKEN, number=ANN, to=OURS)


@pytest.fixture
def box(store: Store, standin: StandIn, tmp_path: Path) -> Outbox:
    settings = Settings.load(
        {
            "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": "secret-token",
            "TWILIO_API_BASE_URL": standin.url,
            "TEXTBACK_SEND_RATE": "1000",
        },
        environ={},
    )
    # immediate: the sweep's tasks run at once, in the test, as a worker would run them.
    return Outbox(settings, store, MemoryHuey(name="timers", immediate=True), rng=lambda: 0.5)


def timers(store: Store) -> list[Any]:
    """Every timer with its outbox row, oldest first."""
    query = (
        select(
            timers_table.c.kind,
            timers_table.c.state.label("timer"),
            outbox_table.c.state,
            outbox_table.c.key,
            outbox_table.c.body,
            outbox_table.c.send_at,
            outbox_table.c.reason,
        )
        .join(outbox_table, outbox_table.c.id == timers_table.c.outbox_id)
        .order_by(outbox_table.c.id)
    )
    with store.engine.connect() as connection:
        return list(connection.execute(query))


def the_run(store: Store) -> Any:
    with store.engine.connect() as connection:
        return connection.execute(select(FlowRun).order_by(FlowRun.id.desc()).limit(1)).one()


def test_a_question_schedules_its_reminder_and_expiry(
    phone: Phone, store: Store, clock: Clock
) -> None:
    assert phone.send("survey").text == "Your name?"
    run = the_run(store)
    assert [(t.kind, t.timer, t.state, t.key, t.body, t.send_at) for t in timers(store)] == [
        (
            "remind",
            "waiting",
            "scheduled",
            f"flow:{run.id}:1:remind:1",
            REMIND_NAME,
            clock.time + timedelta(hours=2),
        ),
        ("expire", "waiting", "scheduled", f"flow:{run.id}:1:expire:2", CLOSED, run.expires_at),
    ]


def test_no_answer_gets_the_reminder_once(
    phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    phone.send("survey")
    clock.advance(hours=1, minutes=59)
    assert box.sweep() == 0  # not due yet
    clock.advance(minutes=1)
    assert box.sweep() == 1
    assert standin.bodies() == [REMIND_NAME]
    assert [m.form["To"] for m in standin.sent] == [ANN]
    assert [(t.kind, t.timer, t.state) for t in timers(store)] == [
        ("remind", "fired", "sent"),
        ("expire", "waiting", "scheduled"),
    ]
    clock.advance(hours=1)
    assert box.sweep() == 0 and standin.bodies() == [REMIND_NAME]
    # The reminder is in the conversation, and the contact's answer goes on with the flow.
    assert phone.send("Ann").text == "Rate us 1-5, Ann?"


def test_an_answer_first_cancels_the_timers_in_its_own_transaction(
    phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    phone.send("survey")
    clock.advance(minutes=30)
    phone.send("Ann")
    first_remind, first_expire, remind, expire = timers(store)
    assert (first_remind.timer, first_remind.state, first_remind.reason) == (
        "cancelled",
        "cancelled",
        "the contact answered first",
    )
    assert (first_expire.timer, first_expire.state) == ("cancelled", "cancelled")
    # Step 2 has its own: the question again after an hour, the expiry 24 h after the answer.
    assert (remind.body, remind.send_at) == ("Rate us 1-5, Ann?", clock.time + timedelta(hours=1))
    assert expire.send_at == clock.time + timedelta(hours=24) == the_run(store).expires_at
    clock.advance(hours=3)  # past both reminders' times
    assert box.sweep() == 1
    assert standin.bodies() == ["Rate us 1-5, Ann?"]


def test_a_wrong_answer_restarts_the_reminder(
    make_app: Callable[..., Flask], tmp_path: Path, clock: Clock, store: Store
) -> None:
    path = tmp_path / "expect.toml"
    path.write_text(TIMED.replace('save = "name"', "save = \"name\"\nexpect = '^[a-z]+$'"))
    other = make_app(TEXTBACK_RULES=str(path))
    other.extensions["textback"].store.clock = clock
    phone = Phone(other, TEST_TOKEN, number=ANN, to=OURS)
    phone.send("survey")
    clock.advance(hours=1)
    assert phone.send("123").text == "Your name?"
    remind = [t for t in timers(other.extensions["textback"].store) if t.kind == "remind"]
    assert [(t.timer, t.send_at) for t in remind] == [
        ("cancelled", clock.time + timedelta(hours=1)),
        ("waiting", clock.time + timedelta(hours=2)),
    ]


def test_the_run_expires_with_its_message(
    phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    phone.send("survey")
    expires_at = the_run(store).expires_at
    clock.advance(hours=24)
    assert box.sweep() == 2  # the reminder (now past the run's life) and the expiry
    # The run expired before anyone sent the reminder: only the expiry message goes out.
    assert standin.bodies() == [CLOSED]
    run = the_run(store)
    assert (run.status, run.ended_at) == ("expired", expires_at)
    assert [(t.kind, t.timer, t.state) for t in timers(store)] == [
        ("remind", "cancelled", "cancelled"),
        ("expire", "fired", "sent"),
    ]
    # A late answer finds no run: it is answered as a new message.
    assert phone.send("Ann").text == "Text SURVEY to start."


def test_an_answer_just_before_expiry_keeps_the_run(
    phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    phone.send("survey")
    clock.advance(hours=23, minutes=59)
    phone.send("Ann")
    clock.advance(minutes=1)  # the first expiry's time
    box.sweep()
    assert CLOSED not in standin.bodies()
    assert the_run(store).status == "open"
    assert phone.send("5").text == "Thanks, Ann!"
    clock.advance(hours=48)
    assert box.sweep() == 0 and CLOSED not in standin.bodies()


def test_a_late_answer_before_the_worker_fires_still_gets_the_expiry_message(
    phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    """The worker claimed the due expiry row and died; the contact wrote meanwhile, after the
    run's expiry. Their message closed the run as expired (lazily); taken again, the row finds
    the run expired and sends the message: what the contact is told matches the run."""
    phone.send("survey")
    clock.advance(hours=24)
    expire_id = next(t for t in outbox_ids(store) if t[1] == "expire")[0]
    assert box.rows.claim(expire_id, box.settings.outbox_stale_after) is not None
    run = the_run(store)
    # The run expired by the clock, so the late answer closes it lazily: the run is expired
    # and the contact is told, even though the answer came before the worker fired.
    assert phone.send("Ann").text == "Text SURVEY to start."
    clock.advance(seconds=box.settings.outbox_stale_after + 1)
    box.sweep()
    assert standin.bodies() == [CLOSED]
    assert the_run(store).id == run.id and the_run(store).status == "expired"


def test_a_late_trigger_that_starts_a_new_run_gets_no_stale_expiry_message(
    phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    """The worker was late; the contact, past the expiry, texted the trigger again: the old run
    closed as expired, a new one began, and "closed" would only confuse them."""
    phone.send("survey")
    clock.advance(hours=25)
    assert phone.send("survey").text == "Your name?"
    box.sweep()
    assert CLOSED not in standin.bodies()
    old_expiry = timers(store)[1]
    assert (old_expiry.state, old_expiry.reason) == ("cancelled", "a newer flow run began")
    assert the_run(store).status == "open"


def test_an_answer_wins_over_a_claimed_reminder(
    phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    phone.send("survey")
    clock.advance(hours=2)
    remind_id = next(t for t in outbox_ids(store) if t[1] == "remind")[0]
    assert box.rows.claim(remind_id, box.settings.outbox_stale_after) is not None
    phone.send("Ann")  # the answer comes before the worker fires the reminder
    clock.advance(seconds=box.settings.outbox_stale_after + 1)
    box.sweep()
    assert REMIND_NAME not in standin.bodies()
    row = box.rows.get(remind_id)
    assert row is not None
    assert (row.state, row.reason) == ("cancelled", "the flow moved on before it was due")


def outbox_ids(store: Store) -> list[tuple[int, str]]:
    with store.engine.connect() as connection:
        return [
            (int(outbox_id), str(kind))
            for outbox_id, kind in connection.execute(
                select(timers_table.c.outbox_id, timers_table.c.kind).order_by(
                    timers_table.c.outbox_id
                )
            )
        ]


@pytest.mark.parametrize("end", ["stop", "leave", "done", "operator", "opt-out"])
def test_a_run_that_ends_cancels_its_timers(
    end: str, phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    phone.send("survey")
    if end == "stop":
        phone.send("STOP")
    elif end == "leave":
        phone.send("exit")
    elif end == "done":
        phone.send("Ann")
        phone.send("4")
    elif end == "operator":
        assert store.end_flow(OURS, ANN)
    else:
        store.set_opted_out(OURS, ANN, True)
    assert {t.state for t in timers(store)} == {states.CANCELLED}
    assert {t.timer for t in timers(store)} == {flow_timers.CANCELLED}
    clock.advance(days=2)
    assert box.sweep() == 0
    assert standin.bodies() == []


def test_a_trigger_mid_flow_replaces_the_timers(phone: Phone, store: Store) -> None:
    phone.send("survey")
    phone.send("survey")  # restarts: the old run is left, the new one has its own timers
    assert [t.timer for t in timers(store)] == ["cancelled", "cancelled", "waiting", "waiting"]


def test_help_mid_flow_keeps_the_timers(phone: Phone, store: Store) -> None:
    phone.send("survey")
    phone.send("HELP")
    assert [t.timer for t in timers(store)] == ["waiting", "waiting"]


def test_an_expiry_found_early_by_a_clock_behind_waits(
    phone: Phone, store: Store, clock: Clock, box: Outbox
) -> None:
    """A worker whose clock is behind the webhook's claims nothing early (send_at is the run's
    expiry), but fire itself also refuses to end a run before its time."""
    phone.send("survey")
    expire_id = next(t for t in outbox_ids(store) if t[1] == "expire")[0]
    with store.engine.begin() as connection:
        fired = flow_timers.fire(connection, expire_id, clock.time + timedelta(hours=1))
    assert fired == flow_timers.Fired(False, later=the_run(store).expires_at)
    assert the_run(store).status == "open"


def test_a_row_that_is_not_a_timer_is_sent(store: Store) -> None:
    with store.engine.begin() as connection:
        assert flow_timers.fire(connection, 12345, store.clock()) == flow_timers.SEND


def test_the_outbox_states_it_names_are_the_outbox_s_own() -> None:
    assert flow_timers.OUTBOX_SCHEDULED == states.SCHEDULED
    assert flow_timers.OUTBOX_WAITING == states.WAITING
    assert flow_timers.OUTBOX_CANCELLED == states.CANCELLED


def test_answers_racing_expiries_are_each_one_or_the_other(
    app: Flask, store: Store, clock: Clock, standin: StandIn, tmp_path: Path, database_url: str
) -> None:
    """Twenty contacts answer while a worker, whose clock is two seconds on, sends their expiry
    messages. Each contact ends one way or the other, never both: the answer went on with the
    flow and no expiry message was sent, or the run expired, the message was sent, and the
    answer was answered as a new message."""
    from concurrent.futures import ThreadPoolExecutor

    from textback.storage.engine import make_engine

    numbers = [f"+1555000{n:04d}" for n in range(20)]
    for number in numbers:
        Phone(app, TEST_TOKEN, number=number, to=OURS).send("survey")
    expire_ids = [outbox_id for outbox_id, kind in outbox_ids(store) if kind == "expire"]
    clock.advance(hours=24, seconds=-1)  # the webhook's time: just before expiry
    worker_clock = Clock()
    worker_clock.time = clock.time + timedelta(seconds=2)
    worker_store = Store(make_engine(database_url), clock=worker_clock)
    settings = Settings.load(
        {
            "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": "secret-token",
            "TWILIO_API_BASE_URL": standin.url,
            "TEXTBACK_SEND_RATE": "1000",
        },
        environ={},
    )
    worker = Outbox(settings, worker_store, MemoryHuey(name="race", results=False))
    replies: dict[str, str] = {}

    def answer(number: str) -> None:
        replies[number] = Phone(app, TEST_TOKEN, number=number, to=OURS).send("Ann").text

    with ThreadPoolExecutor(8) as pool:
        jobs = []
        for number, expire_id in zip(numbers, expire_ids, strict=True):
            jobs.append(pool.submit(worker.deliver, expire_id))
            jobs.append(pool.submit(answer, number))
        for job in jobs:
            job.result()
    closed_for = {item.form["To"] for item in standin.sent if item.form["Body"] == CLOSED}
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(FlowRun.contact_id, FlowRun.status, FlowRun.state).order_by(FlowRun.id)
        ).all()
    assert len(rows) == 20  # no answer started a new run: "Ann" is not a trigger
    for number, (_, status, state) in zip(numbers, rows, strict=True):
        if number in closed_for:
            assert (status, replies[number]) == ("expired", "Text SURVEY to start."), number
        else:
            assert (status, state, replies[number]) == ("open", "survey:2", "Rate us 1-5, Ann?")
    worker_store.engine.dispose()


def test_no_timer_is_sent_while_a_person_has_taken_the_contact_over(
    phone: Phone, store: Store, clock: Clock, box: Outbox, standin: StandIn
) -> None:
    from textback.storage.tables import contacts
    from textback.storage.takeover import Takeovers

    phone.send("survey")
    with store.engine.connect() as connection:
        contact_id = connection.execute(
            select(contacts.c.id).where(contacts.c.number == ANN)
        ).scalar_one()
    assert Takeovers(store).take_over(contact_id, by="ann@example.com")
    clock.advance(hours=2)
    box.sweep()
    assert standin.bodies() == []
    assert (timers(store)[0].state, timers(store)[0].reason) == (
        "cancelled",
        "a person has taken the contact over",
    )
    # Handing back ends the run, and with it the expiry message.
    assert Takeovers(store).hand_back(contact_id).flow_ended
    clock.advance(days=1)
    assert box.sweep() == 0 and standin.bodies() == []
