"""The webhook fast path: what it answers itself, and that errors look like Flask's."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask import current_app

from textback.core.bot import Bot
from textback.core.message import Inbound
from textback.testing import TEST_TOKEN
from textback.testing import Phone


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

    def broken(*args: object) -> None:  # a handler's failure is answered 200: break our own code
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(app.extensions["textback"].store, "answer_inbound", broken)
    phone = Phone(app, TEST_TOKEN)
    with caplog.at_level(logging.ERROR, logger="textback"):
        reply = phone.send("boom")
    assert reply.status == 500
    assert reply.twiml == "500 Internal Server Error\n"
    assert "Traceback" not in reply.twiml
    assert "unexpected error while handling POST /twilio" in caplog.text
    assert caplog.records[-1].exc_info is not None


def test_a_body_without_a_length_goes_to_flask(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    response = app.test_client().post(
        "/twilio",
        data=b"MessageSid=SM1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        environ_overrides={"CONTENT_LENGTH": ""},
    )
    assert response.status_code == 403
    assert response.get_data(as_text=True) == "403 Forbidden: missing X-Twilio-Signature\n"
