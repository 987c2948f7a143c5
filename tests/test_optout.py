"""Carrier rules: STOP, START and HELP come before anything else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from textback import Bot
from textback.core.optout import HELP_REPLY
from textback.core.optout import START_REPLY
from textback.core.optout import STOP_REPLY
from textback.storage.models import Contact
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .conftest import sample


def opted_out(app: Flask, number: str) -> bool:
    with app.extensions["textback"].store.engine.connect() as connection:
        return bool(
            connection.execute(select(Contact.opted_out).where(Contact.number == number)).scalar()
        )


def test_stop_silence_start_hello(phone: Phone) -> None:
    assert phone.send("STOP").text == STOP_REPLY
    assert phone.send("Hello").twiml.endswith("<Response />")
    assert phone.send("anything at all").text == ""
    assert phone.send("START").text == START_REPLY
    assert phone.send("Hello").text == "Hello back to you!"


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
def test_stop_words(phone: Phone, word: str) -> None:
    assert phone.send(word, from_="+15550002222").text == STOP_REPLY
    assert opted_out(phone.app, "+15550002222")


@pytest.mark.parametrize("word", ["start", "YES", "unstop", "Start!"])
def test_start_words(phone: Phone, word: str) -> None:
    phone.send("stop")
    assert phone.send(word).text == START_REPLY
    assert not opted_out(phone.app, "+15550001111")


@pytest.mark.parametrize("word", ["help", "INFO", "Help?"])
def test_help_answers_opted_out_or_not(phone: Phone, word: str) -> None:
    assert phone.send(word).text == HELP_REPLY
    phone.send("stop")
    assert phone.send(word).text == HELP_REPLY
    assert opted_out(phone.app, "+15550001111")


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
    assert called == []


def test_advanced_opt_out_is_recorded_but_not_answered_twice(phone: Phone) -> None:
    form = sample("stop-advanced-opt-out.form")
    response = phone.post("/twilio", form)
    assert response.status_code == 200
    assert response.get_data(as_text=True).endswith("<Response />")
    assert opted_out(phone.app, dict(form)["From"])


def test_opt_out_survives_a_restart(make_app: Callable[..., Flask]) -> None:
    Phone(make_app(), TEST_TOKEN).send("stop")
    again = Phone(make_app(), TEST_TOKEN)
    assert again.send("hello").text == ""


def test_words_and_texts_come_from_the_rules_file(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    (tmp_path / "textback.toml").write_text(
        '[optout]\nstop_words = ["stop", "arrêt"]\nstop_reply = "Bye."\n'
        'help_reply = "Acme: call 555-0100. Reply STOP to unsubscribe."\n'
    )
    phone = Phone(make_app(), TEST_TOKEN)
    assert phone.send("quit").text != "Bye."  # no longer a stop word
    assert phone.send("Arrêt!").text == "Bye."
    assert phone.send("help").text == "Acme: call 555-0100. Reply STOP to unsubscribe."
