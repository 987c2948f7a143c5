"""Multi-step conversations over signed webhooks, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from textback import END
from textback import Bot
from textback import Conversation
from textback import Reply
from textback.channel.forms import inbound_form
from textback.channel.forms import signed_request
from textback.channel.twiml import parse_twiml
from textback.cli import main
from textback.core.optout import START_REPLY
from textback.core.optout import STOP_REPLY
from textback.queries.answers import csv_safe
from textback.storage.models import FlowAnswer
from textback.storage.models import FlowRun
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .conftest import LiveServer

SIGNUP = r"""
[[rule]]
keyword = "hours"
reply = "We're open 9-5."

[default]
reply = "Text JOIN to sign up."

[[flow]]
name = "signup"
trigger = "join"
expire_after = "24h"
done = "You're signed up, {name}! Reply STOP to unsubscribe."

[[flow.step]]
ask = "Welcome! What's your name?"
save = "name"

[[flow.step]]
ask = "Thanks {name}. What's your 5-digit ZIP code?"
save = "zip"
expect = '^\d{5}$'
retry = "Please send a 5-digit ZIP code, like 94107."

[[flow]]
name = "survey"
trigger = "survey"
done = "Thanks for the {rating}!"

[[flow.step]]
ask = "How would you rate us, 1-5?"
save = "rating"
"""
WELCOME = "Welcome! What's your name?"
ANN = "+15550001111"
BOB = "+15550002222"


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.time = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.time

    def advance(self, **delta: float) -> None:
        self.time += timedelta(**delta)


@pytest.fixture
def rules_file(tmp_path: Path) -> Callable[[str], str]:
    def write(text: str) -> str:
        path = tmp_path / "textback.toml"
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def flow_app(make_app: Callable[..., Flask], rules_file: Callable[[str], str]) -> Flask:
    return make_app(TEXTBACK_RULES=rules_file(SIGNUP))


@pytest.fixture
def phone(flow_app: Flask) -> Phone:
    return Phone(flow_app, TEST_TOKEN, number=ANN)


def runs(app: Flask) -> list[Any]:
    with app.extensions["textback"].store.engine.connect() as connection:
        return list(connection.execute(select(FlowRun).order_by(FlowRun.id)))


def answers(app: Flask) -> list[Any]:
    with app.extensions["textback"].store.engine.connect() as connection:
        return list(connection.execute(select(FlowAnswer).order_by(FlowAnswer.id)))


def statuses(app: Flask) -> list[tuple[str, str]]:
    return [(run.flow, run.status) for run in runs(app)]


def test_signup_with_a_bad_then_a_good_zip(phone: Phone) -> None:
    assert phone.send("Join!").text == WELCOME
    assert phone.send("Ann").text == "Thanks Ann. What's your 5-digit ZIP code?"
    assert phone.send("941").text == "Please send a 5-digit ZIP code, like 94107."
    assert phone.send(" 94107 ").text == "You're signed up, Ann! Reply STOP to unsubscribe."
    assert phone.send("hello").text == "Text JOIN to sign up."
    [run] = runs(phone.app)
    assert (run.flow, run.status, run.values) == (
        "signup",
        "completed",
        {"name": "Ann", "zip": "94107"},
    )
    assert run.ended_at is not None and run.expires_at is not None
    assert [(a.run_id, a.key, a.value) for a in answers(phone.app)] == [
        (run.id, "name", "Ann"),
        (run.id, "zip", "94107"),
    ]
    assert all(a.answered_at is not None for a in answers(phone.app))
    sources = [m.source for m in phone.messages() if m.direction == "outbound"]
    assert sources[:4] == [
        "flow signup step 1",
        "flow signup step 2",
        "flow signup step 2 retry",
        "flow signup done",
    ]


def test_flow_survives_a_restart(
    make_app: Callable[..., Flask], rules_file: Callable[[str], str]
) -> None:
    path = rules_file(SIGNUP)
    first = Phone(make_app(TEXTBACK_RULES=path), TEST_TOKEN, number=ANN)
    first.send("join")
    first.send("Ann")
    second = Phone(make_app(TEXTBACK_RULES=path), TEST_TOKEN, number=ANN)
    assert second.send("94107").text == "You're signed up, Ann! Reply STOP to unsubscribe."
    assert statuses(second.app) == [("signup", "completed")]


def test_flow_continues_after_the_http_server_restarts(
    make_app: Callable[..., Flask],
    rules_file: Callable[[str], str],
    live_server: Callable[[Flask], LiveServer],
) -> None:
    path = rules_file(SIGNUP)

    def text(server: LiveServer, body: str) -> str:
        form = inbound_form(body, from_=ANN, to="+15559990000")
        data, headers = signed_request(TEST_TOKEN, server.url + "/twilio", form)
        response = requests.post(server.url + "/twilio", data=data, headers=headers, timeout=30)
        assert response.status_code == 200
        return "\n".join(message for message, _ in parse_twiml(response.text))

    first = live_server(make_app(TEXTBACK_RULES=path))
    assert text(first, "join") == WELCOME
    assert text(first, "Ann").startswith("Thanks Ann.")
    first.stop()
    second = live_server(make_app(TEXTBACK_RULES=path))
    assert text(second, "94107") == "You're signed up, Ann! Reply STOP to unsubscribe."


def test_two_contacts_interleaved(phone: Phone) -> None:
    phone.send("join", from_=ANN)
    assert phone.send("join", from_=BOB).text == WELCOME
    phone.send("Ann", from_=ANN)
    assert phone.send("Bob", from_=BOB).text == "Thanks Bob. What's your 5-digit ZIP code?"
    assert phone.send("11111", from_=ANN).text.startswith("You're signed up, Ann!")
    assert phone.send("22222", from_=BOB).text.startswith("You're signed up, Bob!")
    assert sorted(run.values["zip"] + run.values["name"] for run in runs(phone.app)) == [
        "11111Ann",
        "22222Bob",
    ]


def test_an_idle_flow_expires(phone: Phone) -> None:
    clock = Clock()
    phone.app.extensions["textback"].store.clock = clock
    phone.send("join")
    clock.advance(hours=23)
    assert phone.send("Ann").text.startswith("Thanks Ann.")  # idle time, not total time
    clock.advance(hours=24, seconds=1)
    assert phone.send("94107").text == "Text JOIN to sign up."
    [run] = runs(phone.app)
    assert run.status == "expired" and run.values == {"name": "Ann"}
    assert phone.send("join").text == WELCOME
    assert statuses(phone.app) == [("signup", "expired"), ("signup", "open")]


@pytest.mark.parametrize(
    ("setting", "stop", "start"), [("twilio", "", ""), ("textback", STOP_REPLY, START_REPLY)]
)
def test_stop_mid_flow_ends_it_and_silences(
    make_app: Callable[..., Flask],
    rules_file: Callable[[str], str],
    setting: str,
    stop: str,
    start: str,
) -> None:
    app = make_app(TEXTBACK_RULES=rules_file(SIGNUP), TEXTBACK_CARRIER_REPLIES=setting)
    phone = Phone(app, TEST_TOKEN, number=ANN)
    phone.send("join")
    assert phone.stop().text == stop
    assert statuses(phone.app) == [("signup", "stopped")]
    assert phone.is_opted_out()
    assert phone.send("Ann").text == ""
    assert phone.start().text == start
    assert phone.send("Ann").text == "Text JOIN to sign up."  # the old flow does not resume
    assert statuses(phone.app) == [("signup", "stopped")]


@pytest.mark.parametrize("setting", ["twilio", "textback"])
def test_help_mid_flow_keeps_the_flow_and_its_expiry(
    make_app: Callable[..., Flask], rules_file: Callable[[str], str], setting: str
) -> None:
    app = make_app(TEXTBACK_RULES=rules_file(SIGNUP), TEXTBACK_CARRIER_REPLIES=setting)
    phone = Phone(app, TEST_TOKEN, number=ANN)
    clock = Clock()
    phone.app.extensions["textback"].store.clock = clock
    phone.send("join")
    clock.advance(hours=20)
    help_text = phone.send("help").text
    assert ("Reply STOP to unsubscribe" in help_text) is (setting == "textback")
    assert phone.send("Ann").text.startswith("Thanks Ann.")
    clock.advance(hours=24, seconds=1)
    assert phone.send("94107").text == "Text JOIN to sign up."
    assert statuses(phone.app) == [("signup", "expired")]


BOOKING = r"""
[[flow]]
name = "booking"
trigger = "book"
done = "Noted: {tonight}."

[[flow.step]]
ask = "A table for tonight? Reply YES or NO."
save = "tonight"
expect = '^(yes|no)$'
retry = "Please reply YES or NO."
"""


@pytest.mark.parametrize("setting", ["twilio", "textback"])
@pytest.mark.parametrize("answer", ["yes", "YES", "no"])
def test_a_flow_can_ask_yes_or_no(
    make_app: Callable[..., Flask], rules_file: Callable[[str], str], setting: str, answer: str
) -> None:
    app = make_app(TEXTBACK_RULES=rules_file(BOOKING), TEXTBACK_CARRIER_REPLIES=setting)
    phone = Phone(app, TEST_TOKEN, number=ANN)
    assert phone.send("book").text == "A table for tonight? Reply YES or NO."
    assert phone.send("maybe").text == "Please reply YES or NO."
    assert phone.send(answer).text == f"Noted: {answer}."
    assert statuses(phone.app) == [("booking", "completed")]
    assert not phone.is_opted_out()


def test_yes_from_an_opted_out_contact_resubscribes_and_no_flow_hears_it(
    make_app: Callable[..., Flask], rules_file: Callable[[str], str]
) -> None:
    app = make_app(TEXTBACK_RULES=rules_file(BOOKING), TEXTBACK_CARRIER_REPLIES="textback")
    phone = Phone(app, TEST_TOKEN, number=ANN)
    phone.send("book")
    phone.stop()
    assert phone.send("yes").text == START_REPLY
    assert not phone.is_opted_out()
    assert statuses(phone.app) == [("booking", "stopped")]


def test_a_python_state_hears_yes(make_app: Callable[..., Flask]) -> None:
    bot = Bot()

    @bot.on("book")
    def book(msg: object) -> Reply:
        return Reply("Tonight? YES or NO.", state="booking.tonight")

    @bot.on(state="booking.tonight")
    def tonight(msg: Any) -> Reply:
        return Reply(f"Noted: {msg.body}.", state=END)

    phone = Phone(make_app(bot=bot), TEST_TOKEN, number=ANN)
    phone.send("book")
    assert phone.send("Yes").text == "Noted: Yes."


def test_advanced_opt_out_yes_mid_flow_is_recorded_not_answered(phone: Phone) -> None:
    """Twilio's Advanced Opt-Out answered a YES itself (OptOutType=START): no second answer,
    and the flow waits for an answer of its own."""
    phone.send("join")
    assert phone.send("yes", extra=[("OptOutType", "START")]).twiml.endswith("<Response />")
    assert not phone.is_opted_out()
    assert phone.send("Ann").text.startswith("Thanks Ann.")


def test_an_operator_opt_out_ends_the_flow(phone: Phone) -> None:
    phone.send("join")
    phone.app.extensions["textback"].store.set_opted_out(phone.to, ANN, True)
    assert statuses(phone.app) == [("signup", "stopped")]
    assert phone.send("Ann").text == ""


def test_twilio_advanced_opt_out_mid_flow(phone: Phone) -> None:
    phone.send("join")
    assert phone.send("Stop it", extra=[("OptOutType", "STOP")]).text == ""
    assert phone.is_opted_out() and statuses(phone.app) == [("signup", "stopped")]


def test_a_flow_removed_from_the_rules_is_forgotten(
    make_app: Callable[..., Flask], rules_file: Callable[[str], str]
) -> None:
    first = Phone(make_app(TEXTBACK_RULES=rules_file(SIGNUP)), TEST_TOKEN, number=ANN)
    first.send("join")
    path = rules_file('[[rule]]\nkeyword = "ann"\nreply = "Hi Ann."\n')
    second = Phone(make_app(TEXTBACK_RULES=path), TEST_TOKEN, number=ANN)
    assert second.send("Ann").text == "Hi Ann."
    assert statuses(second.app) == [("signup", "expired")]


def test_leave_word_leaves(phone: Phone) -> None:
    phone.send("join")
    assert phone.send("Exit").text.startswith("OK, we've stopped here.")
    assert statuses(phone.app) == [("signup", "left")]
    assert phone.send("exit").text == "Text JOIN to sign up."  # no flow open: just a message


def test_rule_keyword_mid_flow_is_an_answer_by_default(phone: Phone) -> None:
    phone.send("join")
    assert phone.send("hours").text == "Thanks hours. What's your 5-digit ZIP code?"


def test_rule_keyword_mid_flow_can_leave(
    make_app: Callable[..., Flask], rules_file: Callable[[str], str]
) -> None:
    path = rules_file('[conversations]\nrule_keywords = "leave"\n' + SIGNUP)
    phone = Phone(make_app(TEXTBACK_RULES=path), TEST_TOKEN, number=ANN)
    phone.send("join")
    assert phone.send("Hours?").text == "We're open 9-5."
    assert statuses(phone.app) == [("signup", "left")]
    phone.send("join")
    assert phone.send("Ann").text.startswith("Thanks Ann.")  # not a keyword: an answer


def test_trigger_mid_flow_restarts_or_switches(phone: Phone) -> None:
    phone.send("join")
    phone.send("Ann")
    assert phone.send("JOIN").text == WELCOME
    assert statuses(phone.app) == [("signup", "left"), ("signup", "open")]
    assert phone.send("survey").text == "How would you rate us, 1-5?"
    assert phone.send("5").text == "Thanks for the 5!"
    assert statuses(phone.app) == [("signup", "left"), ("signup", "left"), ("survey", "completed")]


def test_a_retried_webhook_does_not_advance_twice(phone: Phone) -> None:
    phone.send("join")
    first = phone.send("Ann")
    again = phone.replay()
    assert again.twiml == first.twiml
    assert phone.send("94107").text.startswith("You're signed up, Ann!")
    assert [a.key for a in answers(phone.app)] == ["name", "zip"]


def order_bot() -> Bot:
    bot = Bot()

    @bot.on("order")
    def order(msg: Any) -> Reply:
        return Reply("Size? S/M/L", state="order.size")

    @bot.on(state="order.size")
    def size(msg: Any, conversation: Conversation) -> Reply:
        choice = msg.body.strip().upper()
        if choice not in ("S", "M", "L"):
            return Reply("Please answer S, M or L.")  # no state: stay in order.size
        conversation.values["size"] = choice
        return Reply(f"Thanks, one {choice} coming up.", state=END)

    @bot.on(re.compile(r"^remember (?P<note>.+)$", re.I))
    def remember(msg: Any, match: re.Match[str], conversation: Conversation) -> str:
        conversation.values["note"] = match["note"]
        return "Noted."

    @bot.on("recall")
    def recall(msg: Any, conversation: Conversation) -> str:
        return conversation.values.get("note", "Nothing noted.")

    @bot.on("lost")
    def lost(msg: Any) -> Reply:
        return Reply("Into the void.", state="nowhere")

    return bot


def test_python_conversation(make_app: Callable[..., Flask]) -> None:
    phone = Phone(make_app(bot=order_bot()), TEST_TOKEN, number=ANN)
    assert phone.send("order").text == "Size? S/M/L"
    assert phone.send("XL").text == "Please answer S, M or L."
    assert phone.send("order").text == "Please answer S, M or L."  # the state handler decides
    assert phone.send("m").text == "Thanks, one M coming up."
    [run] = runs(phone.app)
    assert (run.flow, run.status, run.values) == ("", "ended", {"size": "M"})
    assert [(a.key, a.value) for a in answers(phone.app)] == [("size", "M")]
    assert phone.send("m").text != "Thanks, one M coming up."


def test_python_handlers_keep_values_without_a_state(make_app: Callable[..., Flask]) -> None:
    phone = Phone(make_app(bot=order_bot()), TEST_TOKEN, number=ANN)
    assert phone.send("recall").text == "Nothing noted."
    assert phone.send("remember the milk").text == "Noted."
    second = Phone(make_app(bot=order_bot()), TEST_TOKEN, number=ANN)
    assert second.send("recall").text == "the milk"
    assert second.send("recall", from_=BOB).text == "Nothing noted."
    [run] = runs(phone.app)
    assert (run.flow, run.state, run.status, run.values) == ("", None, "open", {"note": "the milk"})


def test_python_conversation_expires_and_a_state_without_handler_ends(
    make_app: Callable[..., Flask],
) -> None:
    phone = Phone(make_app(bot=order_bot()), TEST_TOKEN, number=ANN)
    clock = Clock()
    phone.app.extensions["textback"].store.clock = clock
    phone.send("order")
    clock.advance(days=1, seconds=1)
    assert phone.send("M").text != "Thanks, one M coming up."
    phone.send("lost")
    assert phone.send("order").text == "Size? S/M/L"  # "nowhere" has no handler: usual answer
    assert [run.status for run in runs(phone.app)] == ["expired", "ended", "open"]


def test_end_flow(phone: Phone) -> None:
    store = phone.app.extensions["textback"].store
    assert store.end_flow(phone.to, ANN) is False
    phone.send("join")
    assert store.end_flow(phone.to, ANN) is True
    assert store.end_flow(phone.to, ANN) is False
    assert statuses(phone.app) == [("signup", "cancelled")]
    assert phone.send("Ann").text == "Text JOIN to sign up."


def test_answers_export(
    phone: Phone, database_url: str, rules_file: Callable[[str], str], tmp_path: Path
) -> None:
    phone.send("join")
    phone.send("Ann")
    phone.send("94107")
    phone.send("join", from_=BOB)
    phone.send('=HYPERLINK("http://evil")', from_=BOB)
    phone.send("exit", from_=BOB)
    phone.send("join", from_="+15550003333")  # still open: not listed
    env = {
        "DATABASE_URL": database_url,
        "TEXTBACK_RULES": rules_file(SIGNUP),
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
    }
    result = CliRunner().invoke(main, ["answers", "signup", "--csv"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "run_id,our_number,contact,status,started_at,ended_at,name,zip"
    assert lines[1].startswith(f"1,{phone.to},{ANN},completed,")
    assert lines[1].endswith(",Ann,94107")
    assert lines[2].startswith(f"2,{phone.to},{BOB},left,")
    assert lines[2].endswith(',"\'=HYPERLINK(""http://evil"")",')
    assert len(lines) == 3
    table = CliRunner().invoke(main, ["answers", "signup"], env=env)
    assert table.exit_code == 0 and "Ann" in table.output and "completed" in table.output
    unknown = CliRunner().invoke(main, ["answers", "nope"], env=env)
    assert unknown.exit_code == 1 and "no flow 'nope'" in unknown.output


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("+15550001111", "+15550001111"),
        ("-3", "-3"),
        ("+1 555 000", "+1 555 000"),
        ("Ann", "Ann"),
    ],
)
def test_csv_cells_cannot_run(cell: str, safe: str) -> None:
    assert csv_safe(cell) == safe
