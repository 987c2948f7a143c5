"""The admin view's queries (inbox, overview) on conversations sent through signed webhooks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy import update

from textback import END
from textback import Bot
from textback import Conversation
from textback import Inbound
from textback import Reply
from textback.queries import contact_history
from textback.queries import inbox
from textback.queries.overview import overview
from textback.storage.models import now
from textback.storage.runs import flow_runs
from textback.storage.tables import messages
from textback.testing import TEST_TOKEN
from textback.testing import Phone

ALICE = "+15550000001"
BOB = "+15550000002"
CAROL = "+15550000003"


def survey_bot() -> Bot:
    """Asks a name, keeps it in the conversation's values, then ends."""
    bot = Bot()

    @bot.on("survey")
    def start(msg: Inbound) -> Reply:
        return Reply("Your name?", state="survey.name")

    @bot.on(state="survey.name")
    def name(msg: Inbound, conversation: Conversation) -> Reply:
        conversation.values["name"] = msg.body
        return Reply("Your city?", state="survey.city")

    @bot.on(state="survey.city")
    def city(msg: Inbound) -> Reply:
        return Reply("Thanks!", state=END)

    return bot


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(survey_bot())


@pytest.fixture
def phone(app: Flask) -> Phone:
    return Phone(app, TEST_TOKEN)


@pytest.fixture
def engine(app: Flask) -> Engine:
    engine: Engine = app.extensions["textback"].store.engine
    return engine


def numbers(page: inbox.ConversationPage) -> list[str]:
    return [row.number for row in page.rows]


def test_latest_activity_first_and_keyset_pages(phone: Phone, engine: Engine) -> None:
    for number in (ALICE, BOB, CAROL):
        phone.send("Hello", from_=number)
    phone.send("Hello", from_=ALICE)
    first = inbox.conversations(engine, limit=2)
    assert numbers(first) == [ALICE, CAROL]
    assert first.rows[0].last_body == "Hello back to you!"
    assert first.rows[0].last_direction == "outbound"
    assert first.older is not None
    second = inbox.conversations(engine, before=first.older, limit=2)
    assert numbers(second) == [BOB]
    assert second.older is None


def test_search_by_number_fragment_or_text(phone: Phone, engine: Engine) -> None:
    phone.send("Pizza tonight?", from_=ALICE)
    phone.send("100% sure", from_=BOB)
    phone.send("1000 sure", from_=CAROL)
    assert numbers(inbox.conversations(engine, search="0000002")) == [BOB]
    assert numbers(inbox.conversations(engine, search="+1 555 000")) == [CAROL, BOB, ALICE]
    assert numbers(inbox.conversations(engine, search="PIZZA")) == [ALICE]
    assert numbers(inbox.conversations(engine, search="100%")) == [BOB]
    assert numbers(inbox.conversations(engine, search="no such words")) == []


def test_thread_oldest_first_with_older_pages(phone: Phone, engine: Engine) -> None:
    for word in ("one", "two", "three"):
        phone.send(word, from_=ALICE)
    phone.mms("https://example.com/cat.jpg", body="cat", from_=ALICE)
    contact_id = inbox.conversations(engine).rows[0].contact_id
    latest = contact_history.thread(engine, contact_id, limit=3)
    assert [(m.inbound, m.body) for m in latest.messages][1:] == [
        (True, "cat"),
        (False, phone.messages(ALICE)[-1].body),
    ]
    assert latest.messages[1].media == [("https://example.com/cat.jpg", "image/jpeg")]
    assert latest.older is not None
    rest = contact_history.thread(engine, contact_id, before=latest.older, limit=100)
    assert [m.body for m in rest.messages if m.inbound] == ["one", "two", "three"]
    assert rest.older is None
    assert contact_history.contact(engine, contact_id + 1000) is None


def test_open_flow_and_its_values(phone: Phone, engine: Engine) -> None:
    phone.send("survey", from_=ALICE)
    phone.send("Ada", from_=ALICE)
    phone.send("Hello", from_=BOB)
    rows = {row.number: row for row in inbox.conversations(engine).rows}
    assert rows[ALICE].open_flow == "survey.city"
    assert rows[BOB].open_flow is None
    (run,) = contact_history.flow_runs_of(engine, rows[ALICE].contact_id)
    assert run.is_open and run.status == "open"
    assert run.values == {"name": "Ada"}
    phone.send("Paris", from_=ALICE)
    (run,) = contact_history.flow_runs_of(engine, rows[ALICE].contact_id)
    assert not run.is_open and run.status == "ended" and run.ended_at is not None


def test_an_expired_run_is_not_open(phone: Phone, engine: Engine) -> None:
    phone.send("survey", from_=ALICE)
    with engine.begin() as connection:
        connection.execute(update(flow_runs).values(expires_at=now() - timedelta(minutes=1)))
    (row,) = inbox.conversations(engine).rows
    assert row.open_flow is None
    (run,) = contact_history.flow_runs_of(engine, row.contact_id)
    assert run.status == "expired"
    assert not phone.app.extensions["textback"].store.end_flow(phone.to, ALICE)


def test_end_flow_cancels_only_an_open_run(app: Flask, phone: Phone, engine: Engine) -> None:
    store = app.extensions["textback"].store
    assert not store.end_flow(phone.to, ALICE)  # no such contact
    phone.send("survey", from_=ALICE)
    assert store.end_flow(phone.to, ALICE)
    assert not store.end_flow(phone.to, ALICE)
    (row,) = inbox.conversations(engine).rows
    (run,) = contact_history.flow_runs_of(engine, row.contact_id)
    assert run.status == "cancelled" and run.ended_at is not None
    assert phone.send("Ada", from_=ALICE).text != "Your city?"


def test_overview_counts(phone: Phone, engine: Engine) -> None:
    phone.send("Hello", from_=ALICE)
    reply = phone.send("survey", from_=BOB)
    phone.report(reply, "undelivered", error_code="30003")
    phone.stop(from_=CAROL)
    two_days_ago = now() - timedelta(days=2)
    with engine.begin() as connection:  # Alice's exchange: in the week, not the day
        connection.execute(
            update(messages)
            .where((messages.c.to_number == ALICE) | (messages.c.from_number == ALICE))
            .values(created_at=two_days_ago)
        )
    bad = phone.post("/twilio", [("From", ALICE)], token="wrong-token")
    assert bad.status_code == 403
    stats = overview(engine)
    assert len(stats.last_day) == 24 and len(stats.last_week) == 168
    assert stats.day_totals == (2, 1)  # Twilio confirms the STOP, not textback
    assert stats.week_totals == (3, 2)
    hour = two_days_ago.replace(minute=0, second=0, microsecond=0)
    (then,) = [item for item in stats.last_week if item.hour == hour]
    assert (then.inbound, then.outbound) == (1, 1)
    sources = dict(stats.top_sources)
    assert sources["optout stop"] == 1
    assert sum(sources.values()) == 3
    assert stats.opted_out == 1
    assert [item.number for item in stats.latest_opt_outs] == [CAROL]
    assert stats.failed == 1
    assert stats.latest_failures[0].status == "undelivered"
    assert stats.latest_failures[0].error_code == "30003"
    assert stats.rejects == [("signature", 1)]
