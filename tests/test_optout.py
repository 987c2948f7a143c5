"""Carrier rules: STOP, START and HELP come before anything else, on SQLite and PostgreSQL.

Who answers them is TEXTBACK_CARRIER_REPLIES: by default Twilio does (textback records the
change and answers an empty <Response/>); with ``textback``, textback sends the confirmations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from textback import Bot
from textback.core.optout import START_REPLY
from textback.core.optout import STOP_REPLY
from textback.errors import ConfigError
from textback.storage.models import Contact
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .conftest import sample

OUR_NUMBER = "+15550006666"
UNNAMED_HELP = (
    f"Automated replies from {OUR_NUMBER}. Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)
EMPTY = "<Response />"


def opted_out(app: Flask, number: str) -> bool:
    with app.extensions["textback"].store.engine.connect() as connection:
        return bool(
            connection.execute(select(Contact.opted_out).where(Contact.number == number)).scalar()
        )


@pytest.fixture
def answering(make_app: Callable[..., Flask]) -> Phone:
    """A phone texting a server that answers carrier commands itself (a short code)."""
    return Phone(make_app(TEXTBACK_CARRIER_REPLIES="textback"), TEST_TOKEN, to=OUR_NUMBER)


# --- who answers: Twilio by default, textback when told ------------------------------------


def test_by_default_twilio_answers_and_textback_records(phone: Phone) -> None:
    stopped = phone.stop()
    assert stopped.twiml.endswith(EMPTY) and phone.is_opted_out()
    assert phone.send("Hello").twiml.endswith(EMPTY)  # opted out: nothing else either
    assert phone.send("help").twiml.endswith(EMPTY)
    assert phone.start().twiml.endswith(EMPTY) and not phone.is_opted_out()
    assert phone.send("Hello").text == "Hello back to you!"
    assert phone.send("HELP").twiml.endswith(EMPTY)  # Twilio sends its help text
    sources = [row.source for row in phone.messages() if row.direction == "outbound"]
    assert sources == ["rule 1 (keyword hello)"]  # no confirmation stored, none sent


def test_textback_answers_when_told(answering: Phone) -> None:
    assert answering.stop().text == STOP_REPLY
    assert answering.send("Hello").twiml.endswith(EMPTY)
    assert answering.send("anything at all").text == ""
    assert answering.start().text == START_REPLY
    assert answering.send("Hello").text == "Hello back to you!"


def test_carrier_replies_setting_is_checked(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigError, match="TEXTBACK_CARRIER_REPLIES='both': use twilio"):
        make_app(TEXTBACK_CARRIER_REPLIES="both")


@pytest.mark.parametrize("setting", ["twilio", "textback"])
@pytest.mark.parametrize("kind", ["STOP", "START", "HELP"])
def test_what_twilio_answered_is_never_answered_again(
    make_app: Callable[..., Flask], setting: str, kind: str
) -> None:
    phone = Phone(make_app(TEXTBACK_CARRIER_REPLIES=setting), TEST_TOKEN)
    form = [
        (key, kind if key in ("OptOutType", "Body") else value)
        for key, value in sample("stop-advanced-opt-out.form")
    ]
    response = phone.post("/twilio", form)
    assert response.status_code == 200
    assert response.get_data(as_text=True).endswith(EMPTY)
    assert opted_out(phone.app, dict(form)["From"]) is (kind == "STOP")


# --- the standard words can't be removed (defect 4) ----------------------------------------


@pytest.mark.parametrize(
    "word",
    [
        "stop",
        "Stop.",
        "stop 🙏",
        "STOPALL",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",
        "opt-out",
        "  S T O P  ",
    ],
)
def test_stop_words(answering: Phone, word: str) -> None:
    assert answering.send(word, from_="+15550002222").text == STOP_REPLY
    assert opted_out(answering.app, "+15550002222")


@pytest.mark.parametrize("custom", ["[]", '["remove"]', '["stop"]'])
@pytest.mark.parametrize("word", ["STOP", "cancel", "quit"])
def test_a_rules_file_cannot_take_the_stop_words_away(
    tmp_path: Path, make_app: Callable[..., Flask], custom: str, word: str
) -> None:
    (tmp_path / "textback.toml").write_text(f"[optout]\nstop_words = {custom}\n")
    phone = Phone(make_app(), TEST_TOKEN)
    assert phone.send(word).twiml.endswith(EMPTY)
    assert phone.is_opted_out()


@pytest.mark.parametrize("table", ["start_words = []", "help_words = []"])
def test_a_rules_file_cannot_take_start_or_help_away(
    tmp_path: Path, make_app: Callable[..., Flask], table: str
) -> None:
    (tmp_path / "textback.toml").write_text(f"[optout]\n{table}\n")
    phone = Phone(make_app(TEXTBACK_CARRIER_REPLIES="textback"), TEST_TOKEN, to=OUR_NUMBER)
    assert phone.send("info").text == UNNAMED_HELP
    phone.stop()
    assert phone.send("unstop").text == START_REPLY
    assert not phone.is_opted_out()


def test_words_and_texts_from_the_rules_file_add_to_the_standard(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    (tmp_path / "textback.toml").write_text(
        '[optout]\nstop_words = ["arrêt"]\nstart_words = ["reprendre"]\n'
        'stop_reply = "Bye."\nhelp_reply = "Acme: call 555-0100. Reply STOP to unsubscribe."\n'
    )
    phone = Phone(make_app(TEXTBACK_CARRIER_REPLIES="textback"), TEST_TOKEN)
    assert phone.send("Arrêt!").text == "Bye."
    assert phone.send("reprendre").text == START_REPLY
    assert phone.send("quit").text == "Bye."  # still a stop word
    assert phone.send("help").text == "Acme: call 555-0100. Reply STOP to unsubscribe."


# --- START, YES and UNSTOP are commands only for an opted-out contact (defect 5) -------------


@pytest.mark.parametrize("word", ["start", "YES", "unstop", "Start!"])
def test_start_words_resubscribe_an_opted_out_contact(answering: Phone, word: str) -> None:
    answering.stop()
    assert answering.send(word).text == START_REPLY
    assert not opted_out(answering.app, answering.number)


@pytest.mark.parametrize("word", ["start", "YES", "unstop"])
def test_start_words_from_a_subscribed_contact_are_ordinary(answering: Phone, word: str) -> None:
    assert answering.send(word).text.startswith("Hi! Not quite sure")
    [inbound, outbound] = answering.messages()
    assert (inbound.source, outbound.source) == ("default", "default")


def test_yes_reaches_a_handler_and_a_rule(tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    (tmp_path / "textback.toml").write_text('[[rule]]\nkeyword = "yes"\nreply = "Great!"\n')
    bot = Bot()

    @bot.on("unstop")
    def unstop(msg: object) -> str:
        return "handled"

    for setting in ("twilio", "textback"):
        phone = Phone(make_app(bot=bot, TEXTBACK_CARRIER_REPLIES=setting), TEST_TOKEN)
        assert phone.send("Yes!").text == "Great!"
        assert phone.send("unstop").text == "handled"
        assert not phone.is_opted_out()


def test_advanced_opt_out_start_from_a_subscribed_contact_is_recorded_not_answered(
    phone: Phone,
) -> None:
    reply = phone.send("yes", extra=[("OptOutType", "START")])
    assert reply.twiml.endswith(EMPTY)
    assert not phone.is_opted_out()
    [inbound] = phone.messages()
    assert inbound.source == "optout start (answered by Twilio)"


# --- HELP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["help", "INFO", "Help?"])
def test_help_answers_opted_out_or_not(answering: Phone, word: str) -> None:
    assert answering.send(word).text == UNNAMED_HELP
    answering.stop()
    assert answering.send(word).text == UNNAMED_HELP
    assert opted_out(answering.app, answering.number)


def test_the_texts_name_the_sender(make_app: Callable[..., Flask]) -> None:
    app = make_app(TEXTBACK_CARRIER_REPLIES="textback", TEXTBACK_SENDER_NAME=" Acme  Bakery ")
    phone = Phone(app, TEST_TOKEN)
    assert phone.send("help").text == (
        "Acme Bakery: automated replies to your texts. Reply STOP to unsubscribe. "
        "Msg&Data Rates May Apply."
    )
    assert phone.stop().text == f"Acme Bakery: {STOP_REPLY}"
    assert phone.start().text == f"Acme Bakery: {START_REPLY}"


def test_an_unnamed_sender_is_named_by_the_number_texted(answering: Phone) -> None:
    whatsapp = f"whatsapp:{OUR_NUMBER}"
    assert answering.send("help", from_="whatsapp:+15550001111", to=whatsapp).text == (UNNAMED_HELP)
    assert "textback" not in answering.send("help").text


def test_sender_name_is_checked(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigError, match="TEXTBACK_SENDER_NAME"):
        make_app(TEXTBACK_SENDER_NAME="Acme\x1b[2J")
    with pytest.raises(ConfigError, match="at most 40"):
        make_app(TEXTBACK_SENDER_NAME="x" * 41)


# --- the rest ------------------------------------------------------------------------------


def test_stop_in_a_sentence_is_not_a_command(phone: Phone) -> None:
    assert phone.send("please don't stop").text.startswith("Hi! Not quite sure")


def test_opt_out_is_per_contact_and_number(phone: Phone) -> None:
    phone.send("stop", from_="+15550000001", to="+15559990000")
    assert phone.send("hello", from_="+15550000001", to="+15559990000").text == ""
    assert phone.send("hello", from_="+15550000001", to="+15559990001").text != ""
    assert phone.send("hello", from_="+15550000002", to="+15559990000").text != ""


def test_no_handler_reaches_an_opted_out_contact(make_app: Callable[..., Flask]) -> None:
    bot = Bot()
    called: list[str] = []

    @bot.fallback
    def anything(msg: object) -> str:
        called.append("x")
        return "handler"

    phone = Phone(make_app(bot=bot), TEST_TOKEN)
    phone.send("stop")
    assert phone.send("hi").text == ""
    assert phone.send("yes").text == ""  # re-subscribes; Twilio confirms it
    assert called == []
    assert phone.send("hi").text == "handler"


def test_opt_out_survives_a_restart(make_app: Callable[..., Flask]) -> None:
    Phone(make_app(), TEST_TOKEN).send("stop")
    again = Phone(make_app(), TEST_TOKEN)
    assert again.send("hello").text == ""
