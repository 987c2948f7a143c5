"""The webhook end to end through the app: answers, the app context, errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask import current_app

from textback.channel.forms import inbound_form
from textback.core.bot import Bot
from textback.core.message import Inbound
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .conftest import sample


def test_index_says_it_works(make_app: Callable[..., Flask]) -> None:
    response = make_app().test_client().get("/")
    assert response.status_code == 200
    assert response.get_data(as_text=True).strip() == "It works!"


@pytest.mark.parametrize("body", ["Hello", "hello", " HELLO ", "Hello!", "hello 👋", "HeLLo?!"])
def test_hello_in_any_form_gets_the_greeting(phone: Phone, body: str) -> None:
    reply = phone.send(body)
    assert reply.status == 200
    assert reply.text == "Hello back to you!"


@pytest.mark.parametrize("body", ["Hi", "hello there", "", "say hello", "😀"])
def test_anything_else_gets_the_default(phone: Phone, body: str) -> None:
    assert phone.send(body).text == "Hi! Not quite sure what you meant, but okay."


def test_answer_is_twiml_from_messaging_response(phone: Phone) -> None:
    response = phone.post("/twilio", inbound_form("Hello"))
    assert response.mimetype in ("application/xml", "text/xml")
    assert response.get_data(as_text=True) == (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Message>Hello back to you!</Message></Response>"
    )


def test_captured_sample_is_answered(phone: Phone) -> None:
    response = phone.post("/twilio", sample("sms.form"))
    assert response.status_code == 200
    assert "Hello back to you!" in response.get_data(as_text=True)


def test_whatsapp_sample_is_answered(phone: Phone) -> None:
    response = phone.post("/twilio", sample("whatsapp.form"))
    assert response.status_code == 200
    assert "Not quite sure" in response.get_data(as_text=True)


def test_a_handler_runs_inside_the_app_context(make_app: Callable[..., Flask]) -> None:
    bot = Bot()

    @bot.on("which app")
    def which(msg: Inbound) -> str:
        return current_app.name

    phone = Phone(make_app(bot=bot), TEST_TOKEN)
    assert phone.send("which app").text == "textback"


def test_a_bug_is_a_plain_500_with_the_traceback_logged(
    make_app: Callable[..., Flask],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app()

    def broken(*args: object, **kwargs: object) -> None:  # a handler's failure is answered 200
        raise RuntimeError("a bug of ours")  # so break our own code

    monkeypatch.setattr(app.extensions["textback"].store, "record_inbound_many", broken)
    phone = Phone(app, TEST_TOKEN)
    with caplog.at_level(logging.ERROR, logger="textback"):
        reply = phone.send("boom")
    assert reply.status == 500
    assert reply.twiml == "500 Internal Server Error\n"
    assert "Traceback" not in reply.twiml
    assert "unexpected error while handling POST /twilio" in caplog.text
    assert caplog.records[-1].exc_info is not None


def test_a_body_without_a_length_is_empty(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    response = app.test_client().post(
        "/twilio",
        data=b"MessageSid=SM1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        environ_overrides={"CONTENT_LENGTH": ""},
    )
    # PEP 3333: no Content-Length and no wsgi.input_terminated means no body is read
    assert response.status_code == 403
    assert response.get_data(as_text=True) == "403 Forbidden: missing X-Twilio-Signature\n"
