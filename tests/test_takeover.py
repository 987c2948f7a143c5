"""A person takes a contact over: the decision (no database), the store on SQLite and
PostgreSQL, the admin through Flask's test client, and ``textback contacts takeover``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from textback import Bot
from textback import Reply
from textback.cli import main
from textback.core.message import Inbound
from textback.core.optout import Carrier
from textback.core.profile import ContactProfile
from textback.core.replay import Exchange
from textback.core.replay import replay
from textback.core.responder import TAKEN_OVER
from textback.core.responder import decide
from textback.storage.profiles import save_profiles
from textback.storage.runs import flow_runs
from textback.storage.store import Store
from textback.storage.tables import contacts
from textback.storage.takeover import Takeovers
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .test_admin import FAST_HASH
from .test_admin import HTTPS
from .test_admin import log_in
from .test_admin import page
from .test_admin import post
from .test_admin import token_in
from .test_responder import at
from .test_responder import message
from .test_responder import rules

ALICE = "+15550000001"
BOB = "+15550000002"
OURS = "+15559990000"
OTHER = "+15559990001"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

# --- the decision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "opted_out", "answered", "source", "opt_out", "waits"),
    [
        ("STOP", False, True, "optout stop", True, False),
        ("help", False, True, "optout help", None, False),
        ("START", True, True, "optout start", False, False),
        ("hello", False, False, TAKEN_OVER, None, True),
        ("join", False, False, TAKEN_OVER, None, True),  # a flow trigger starts nothing
        ("hours", False, False, TAKEN_OVER, None, True),  # nor does a rule answer
        ("exit", False, False, TAKEN_OVER, None, True),  # nor the leave word
        ("stpo", False, False, TAKEN_OVER, None, True),  # a misspelt STOP: the person reads it
        ("START", False, False, TAKEN_OVER, None, True),  # not a command from a subscriber
        ("hello", True, False, "opted out", None, False),  # they cannot be answered at all
    ],
)
def test_a_taken_over_contact_gets_only_carrier_commands_answered(
    body: str, opted_out: bool, answered: bool, source: str, opt_out: bool | None, waits: bool
) -> None:
    decision = decide(
        message(body),
        opted_out=opted_out,
        conversation=at(2, name="Ann"),
        bot=Bot(),
        rules=rules(),
        carrier=Carrier(twilio_answers=False),
        taken_over=True,
    )
    assert decision.source == source
    assert decision.reply.is_empty == (not answered)
    assert decision.opt_out == opt_out
    assert decision.waits_for_person == waits
    if source == "optout stop":
        assert (decision.conversation, decision.ended) == (None, "stopped")
    else:  # the open flow is left where it was, for after the hand-back (or its expiry)
        assert decision.conversation == at(2, name="Ann") and decision.ended is None
        assert decision.expire_after is None  # a paused flow's expiry is not pushed back


def test_python_handlers_are_not_called_while_taken_over() -> None:
    bot = Bot()
    called: list[str] = []

    @bot.fallback
    def anything(msg: Inbound) -> Reply:
        called.append(msg.body)
        return Reply("bot")

    decision = decide(
        message("hi"), opted_out=False, conversation=None, bot=bot, rules=rules(), taken_over=True
    )
    assert (decision.reply.text, decision.conversation, called) == ("", None, [])
    answered = decide(message("hi"), opted_out=False, conversation=None, bot=bot, rules=rules())
    assert answered.reply.text == "bot"


def test_replay_does_not_report_what_a_person_answered() -> None:
    old = Exchange(message("where is my order?"), T0, "", (), TAKEN_OVER)
    [(_, difference)] = list(replay([old], bot=Bot(), rules=rules()))
    assert difference is None


# --- the store, on both databases -----------------------------------------------------------


class Clock:
    """The store's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def clock() -> Clock:
    return Clock()


SIGNUP = """
[[flow]]
name = "signup"
trigger = "join"
done = "Signed up, {name}."

[[flow.step]]
ask = "Your name?"
save = "name"

[[flow.step]]
ask = "ZIP, {name}?"
save = "zip"
"""


@pytest.fixture
def app(make_app: Callable[..., Flask], tmp_path: Any, clock: Clock) -> Flask:
    """A server with a flow, an admin password, sending credentials (no worker runs) and a
    clock of its own."""
    rules_file = tmp_path / "signup.toml"
    rules_file.write_text(SIGNUP)
    built = make_app(
        TEXTBACK_ADMIN_PASSWORD=FAST_HASH,
        TEXTBACK_RULES=str(rules_file),
        TWILIO_ACCOUNT_SID="AC" + "1" * 32,
        TWILIO_API_KEY="SK" + "1" * 32,
        TWILIO_API_SECRET="secret",
    )
    built.extensions["textback"].store.clock = clock
    return built


def store_of(app: Flask) -> Store:
    store = app.extensions["textback"].store
    assert isinstance(store, Store)
    return store


def contact_of(app: Flask, number: str, our_number: str = OURS) -> int:
    [(contact_id, _)] = Takeovers(store_of(app)).contacts_of(number, our_number)
    return contact_id


def contact_row(app: Flask, number: str) -> Any:
    with store_of(app).engine.connect() as connection:
        return connection.execute(select(contacts).where(contacts.c.number == number)).one()


def test_taken_over_messages_are_kept_and_wait_from_the_first(app: Flask, clock: Clock) -> None:
    phone = Phone(app, TEST_TOKEN)
    assert phone.send("join", from_=ALICE).text == "Your name?"
    takeovers = Takeovers(store_of(app))
    alice = contact_of(app, ALICE)
    clock.advance(1)
    assert takeovers.take_over(alice, by="admin")
    assert not takeovers.take_over(alice, by="someone else")  # once is enough
    assert contact_row(app, ALICE).waiting_since is None  # nothing waits yet
    clock.advance(1)
    first = phone.send("Actually I have a question", from_=ALICE)
    assert (first.status, first.text) == (200, "")
    assert "<Message" not in first.twiml
    clock.advance(5)
    assert phone.send("hello?", from_=ALICE).text == ""
    assert phone.replay(first.sid).twiml == first.twiml  # a retried webhook: the same answer
    row = contact_row(app, ALICE)
    assert (row.taken_over_at, row.taken_over_by) == (T0 + timedelta(minutes=1), "admin")
    assert row.waiting_since == T0 + timedelta(minutes=2)  # the oldest one waiting
    inbound = [m for m in phone.messages(ALICE) if m.direction == "inbound"]
    assert [(m.body, m.source) for m in inbound[1:]] == [
        ("Actually I have a question", TAKEN_OVER),
        ("hello?", TAKEN_OVER),
    ]
    assert [m.body for m in phone.messages(ALICE) if m.direction == "outbound"] == ["Your name?"]
    # The flow waits where it was: its question was not answered by these messages.
    with store_of(app).engine.connect() as connection:
        (run,) = connection.execute(select(flow_runs))
    assert (run.state, dict(run._mapping["values"]), run.ended_at) == ("signup:1", {}, None)
    # Another contact is answered as ever.
    assert phone.send("join", from_=BOB).text == "Your name?"
    [listed] = takeovers.listed()
    assert (listed.number, listed.waiting_since) == (ALICE, T0 + timedelta(minutes=2))


def test_carrier_commands_still_work_while_taken_over(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    app = make_app(TEXTBACK_CARRIER_REPLIES="textback", TEXTBACK_SENDER_NAME="Acme")
    store_of(app).clock = clock
    phone = Phone(app, TEST_TOKEN)
    phone.send("hi", from_=ALICE)
    takeovers = Takeovers(store_of(app))
    takeovers.take_over(contact_of(app, ALICE), by="cli")
    assert phone.send("HELP", from_=ALICE).text.startswith("Acme: ")
    assert contact_row(app, ALICE).waiting_since is None  # HELP is answered: nothing waits
    assert phone.stop(from_=ALICE).text.startswith("Acme: ")
    assert phone.is_opted_out(ALICE)
    assert phone.send("hello", from_=ALICE).text == ""
    [listed] = takeovers.listed()
    assert listed.opted_out and listed.waiting_since is None  # nobody may answer them now
    assert phone.start(from_=ALICE).text.startswith("Acme: ")
    assert not phone.is_opted_out(ALICE)
    assert [m.source for m in phone.messages(ALICE) if m.direction == "inbound"] == [
        "default",
        "optout help",
        "optout stop",
        "opted out",
        "optout start",
    ]
    assert contact_row(app, ALICE).taken_over_at is not None  # START does not hand back


def test_a_reply_leaves_waiting_only_what_came_after_it(app: Flask, clock: Clock) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("hi", from_=ALICE)
    takeovers = Takeovers(store_of(app))
    alice = contact_of(app, ALICE)
    takeovers.take_over(alice, by="admin")
    clock.advance(1)
    phone.send("one", from_=ALICE)
    seen = max(m.id for m in phone.messages(ALICE))
    clock.advance(1)
    phone.send("two, while the person typed", from_=ALICE)
    takeovers.replied(alice, seen=seen)
    assert contact_row(app, ALICE).waiting_since == T0 + timedelta(minutes=2)
    takeovers.replied(alice, seen=None)
    assert contact_row(app, ALICE).waiting_since is None
    clock.advance(1)
    phone.send("three", from_=ALICE)
    assert contact_row(app, ALICE).waiting_since == T0 + timedelta(minutes=3)


def test_hand_back_ends_the_open_flow_and_the_bot_answers_again(app: Flask, clock: Clock) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("join", from_=ALICE)
    takeovers = Takeovers(store_of(app))
    alice = contact_of(app, ALICE)
    takeovers.take_over(alice, by="admin")
    phone.send("Ann", from_=ALICE)
    handed = takeovers.hand_back(alice)
    assert (handed.was_taken_over, handed.flow_ended) == (True, True)
    row = contact_row(app, ALICE)
    assert (row.taken_over_at, row.taken_over_by, row.waiting_since) == (None, None, None)
    with store_of(app).engine.connect() as connection:
        (run,) = connection.execute(select(flow_runs))
    assert run.status == "cancelled"
    assert phone.send("join", from_=ALICE).text == "Your name?"  # the bot again, from the start
    assert takeovers.listed() == []
    again = takeovers.hand_back(alice)
    assert (again.was_taken_over, again.flow_ended) == (False, False)


def test_taken_over_list_waiting_longest_first(app: Flask, clock: Clock) -> None:
    phone = Phone(app, TEST_TOKEN)
    carol = "+15550000003"
    for number in (ALICE, BOB, carol):
        phone.send("hi", from_=number)
    takeovers = Takeovers(store_of(app))
    for number in (carol, BOB, ALICE):
        takeovers.take_over(contact_of(app, number), by="admin")
        clock.advance(1)
    phone.send("Bob first", from_=BOB)
    clock.advance(1)
    phone.send("then Alice", from_=ALICE)
    listed = takeovers.listed()
    assert [row.number for row in listed] == [BOB, ALICE, carol]  # carol: nothing waits
    assert [row.waiting_since is not None for row in listed] == [True, True, False]


def test_the_taken_over_table_shows_the_contacts_name(app: Flask, admin: FlaskClient) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("hi", from_=ALICE)
    phone.send("hi", from_=BOB)
    save_profiles(store_of(app).engine, [ContactProfile(ALICE, name="Alice Liddell")])
    takeovers = Takeovers(store_of(app))
    takeovers.take_over(contact_of(app, ALICE), by="admin")
    takeovers.take_over(contact_of(app, BOB), by="admin")
    assert [row.name for row in takeovers.listed()] == ["Alice Liddell", ""]
    listing = page(admin, "/admin")
    taken = listing[listing.index("Taken over by a person") : listing.index("</section>")]
    assert f'{ALICE}</a> <span class="name">Alice Liddell</span>' in taken
    assert f"{BOB}</a></td>" in taken  # no name, no empty span


def test_a_take_over_holds_for_one_of_our_numbers_only(app: Flask) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("hi", from_=ALICE)
    phone.send("hi", from_=ALICE, to=OTHER)
    Takeovers(store_of(app)).take_over(contact_of(app, ALICE), by="admin")
    assert phone.send("hi", from_=ALICE).text == ""
    assert phone.send("hi", from_=ALICE, to=OTHER).text != ""


# --- the admin ------------------------------------------------------------------------------


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert log_in(client).status_code == 302
    return client


def test_take_over_reply_and_hand_back_from_the_admin(
    app: Flask, admin: FlaskClient, clock: Clock
) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("join", from_=ALICE)
    phone.send("hello", from_=BOB)
    thread = f"/admin/conversations/{contact_of(app, ALICE)}"
    html = page(admin, thread)
    assert "The bot answers this contact" in html and "Hand back" not in html
    assert "Taken over by a person" not in page(admin, "/admin")

    done = post(admin, thread + "/take-over").get_data(as_text=True)
    assert "Taken over: the bot no longer answers this contact" in done
    assert "Nothing waits for a reply" in done
    assert "is taken over already" in post(admin, thread + "/take-over").get_data(as_text=True)

    clock.advance(2)
    assert phone.send("Can I talk to a person?", from_=ALICE).text == ""
    clock.advance(65)
    html = page(admin, thread)
    assert "waiting 1 h 5 min</span> for a reply, since 2026-12-01 09:02 UTC" in html
    assert html.count("needs a reply") == 1
    listing = page(admin, "/admin")
    waiting = listing[listing.index("Taken over by a person") : listing.index("</section>")]
    assert ALICE in waiting and BOB not in waiting
    assert "waiting 1 h 5 min" in waiting and "by admin" in waiting
    assert 'class="tag warn">waiting</span>' in listing  # its row in the list too

    key = re.search(r'name="send_key" value="([^"]+)"', html)
    seen = re.search(r'name="seen" value="(\d+)"', html)
    assert key is not None and seen is not None
    sent = post(admin, thread + "/send", {"body": "Hi, Sam here.", "send_key": key.group(1)})
    assert "Queued as outbox 1" in sent.get_data(as_text=True)
    outbox = app.extensions["textback_outbox"]
    [entry] = outbox.rows.of_contact(OURS, ALICE)
    assert (entry.body, entry.state) == ("Hi, Sam here.", "queued")
    html = page(admin, thread)
    assert "Nothing waits for a reply" in html and "needs a reply" not in html
    assert 'class="tag">answered</span>' in page(admin, "/admin")

    handed = post(admin, thread + "/hand-back").get_data(as_text=True)
    assert "Handed back: the bot answers this contact again. Their open flow was ended." in handed
    assert "Taken over by a person" not in page(admin, "/admin")
    assert phone.send("hours?", from_=ALICE).text != ""
    assert "answers this contact already" in post(admin, thread + "/hand-back").get_data(
        as_text=True
    )


def test_a_reply_sent_before_a_new_message_was_seen_leaves_it_waiting(
    app: Flask, admin: FlaskClient, clock: Clock
) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("hi", from_=ALICE)
    thread = f"/admin/conversations/{contact_of(app, ALICE)}"
    post(admin, thread + "/take-over")
    phone.send("first question", from_=ALICE)
    html = page(admin, thread)
    seen = re.search(r'name="seen" value="(\d+)"', html)
    assert seen is not None
    clock.advance(1)
    phone.send("second question, while the page was open", from_=ALICE)
    post(admin, thread + "/send", {"body": "About the first:", "seen": seen.group(1)})
    html = page(admin, thread)
    assert html.count("needs a reply") == 1
    assert "since 2026-12-01 09:01 UTC" in html


def test_take_over_and_hand_back_need_the_csrf_token(app: Flask, admin: FlaskClient) -> None:
    Phone(app, TEST_TOKEN).send("hi", from_=ALICE)
    thread = f"/admin/conversations/{contact_of(app, ALICE)}"
    for action in ("/take-over", "/hand-back"):
        assert admin.post(thread + action, base_url=HTTPS).status_code == 400
        forged = {"csrf_token": "forged"}
        assert admin.post(thread + action, data=forged, base_url=HTTPS).status_code == 400
    assert Takeovers(store_of(app)).listed() == []
    form = {"csrf_token": token_in(page(admin, "/admin"))}
    missing = admin.post("/admin/conversations/999/take-over", data=form, base_url=HTTPS)
    assert missing.status_code == 404


# --- the command line -----------------------------------------------------------------------


def test_cli_takeover_and_handback(
    app: Flask, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    phone = Phone(app, TEST_TOKEN)
    phone.send("join", from_=ALICE)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, ["contacts", *args])

    taken = run("takeover", "(555) 000-0001")
    assert taken.exit_code == 0, taken.output
    assert taken.output == f"{ALICE} (with {OURS}) is taken over: the bot no longer answers them.\n"
    assert run("takeover", ALICE).output == f"{ALICE} (with {OURS}) was taken over already.\n"
    assert phone.send("Ann", from_=ALICE).text == ""
    assert contact_row(app, ALICE).taken_over_by == "cli"
    back = run("handback", ALICE)
    assert back.exit_code == 0, back.output
    assert back.output == (
        f"{ALICE} (with {OURS}) is handed back: the bot answers them again. "
        "Their open flow was ended.\n"
    )
    assert phone.send("join", from_=ALICE).text == "Your name?"
    assert "was not taken over" in run("handback", ALICE).output

    unknown = run("takeover", BOB)
    assert unknown.exit_code == 1
    assert unknown.output == f"textback: error: {BOB} has never texted any of our numbers\n"
    phone.send("hi", from_=ALICE, to=OTHER)
    both = run("takeover", ALICE)
    assert both.exit_code == 1
    assert both.output == (
        f"textback: error: {ALICE} has texted {OURS}, {OTHER}: give --our-number\n"
    )
    chosen = run("takeover", ALICE, "--our-number", OTHER)
    assert chosen.exit_code == 0, chosen.output
    assert phone.send("hi", from_=ALICE, to=OTHER).text == ""
    assert phone.send("hours?", from_=ALICE).text != ""


def test_conversation_state_is_untouched_by_take_over_and_kept_values_stay(
    app: Flask, clock: Clock
) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("join", from_=ALICE)
    phone.send("Ann", from_=ALICE)
    takeovers = Takeovers(store_of(app))
    alice = contact_of(app, ALICE)
    takeovers.take_over(alice, by="admin")
    phone.send("94107", from_=ALICE)  # not taken as the ZIP code
    with store_of(app).engine.connect() as connection:
        (run,) = connection.execute(select(flow_runs))
    assert (run.state, dict(run._mapping["values"])) == ("signup:2", {"name": "Ann"})
    takeovers.hand_back(alice)
    with store_of(app).engine.connect() as connection:
        (run,) = connection.execute(select(flow_runs))
    assert (run.status, dict(run._mapping["values"])) == ("cancelled", {"name": "Ann"})


def test_the_flag_costs_the_answer_no_query(tmp_path: Any) -> None:
    """Every SQL statement SQLite runs while answering: the take-over is read with the contact
    row, and written only by the first message that waits."""
    from sqlalchemy import event

    from textback import create_app

    app = create_app(
        {
            "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'traced.db'}",
            "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        }
    )
    statements: list[str] = []

    @event.listens_for(store_of(app).engine, "connect")
    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    store_of(app).engine.dispose()  # new connections, traced
    phone = Phone(app, TEST_TOKEN)
    phone.send("hi", from_=ALICE)

    def contact_statements(body: str) -> list[str]:
        statements.clear()
        phone.send(body, from_=ALICE)
        return [s.split()[0] for s in statements if "contacts" in s.split("WHERE")[0]]

    assert contact_statements("hello") == ["SELECT"]
    Takeovers(store_of(app)).take_over(contact_of(app, ALICE), by="admin")
    assert contact_statements("first waiting") == ["SELECT", "UPDATE"]
    assert contact_statements("second waiting") == ["SELECT"]
    store_of(app).engine.dispose()
