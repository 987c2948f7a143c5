"""The webhook route end to end: seed parity, refusals, edge cases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from textback.channel.forms import inbound_form
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
