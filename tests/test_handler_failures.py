"""A handler that fails loses no message: stored, logged once, answered 200 (issue 11, defect 9)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from textback import Bot
from textback import Conversation
from textback import Inbound
from textback import Reply
from textback.cli import main
from textback.errors import ConfigError
from textback.errors import HandlerError
from textback.errors import RulesError
from textback.rulesfile.rules import parse_rules
from textback.testing import TEST_TOKEN
from textback.testing import Phone

NUMBER = "+15550004321"
SECRET = "my card is 4111"


def failing_bot() -> Bot:
    """Handlers that fail in each way a handler can: raising, or returning no reply."""
    bot = Bot()

    @bot.on("boom")
    def boom(msg: Inbound) -> str:
        raise RuntimeError("the database of my own is down")

    @bot.on("number")  # type: ignore[type-var]
    def number(msg: Inbound) -> int:
        return 42

    @bot.on("badreply")
    def badreply(msg: Inbound) -> Reply:
        return Reply(["not", "text"])  # type: ignore[arg-type]

    @bot.on("size")
    def size(msg: Inbound) -> Reply:
        return Reply("Size? S/M/L", state="order.size")

    @bot.on(state="order.size")
    def chosen(msg: Inbound, conversation: Conversation) -> Reply:
        if msg.body == "XL":
            raise KeyError(msg.body)
        return Reply(f"Size {msg.body}.", state=None)

    @bot.fallback
    def anything(msg: Inbound) -> str:
        if SECRET in msg.body:
            raise ValueError(f"cannot read {msg.body!r}")
        return "fine"

    return bot


@pytest.fixture
def phone(make_app: Callable[..., Flask]) -> Phone:
    return Phone(make_app(bot=failing_bot()), TEST_TOKEN, number=NUMBER)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("body", "handler", "problem"),
    [
        ("boom", "boom", "RuntimeError"),
        ("number", "number", "must return str, Reply or None, not int"),
        ("badreply", "badreply", "Reply text must be a str"),
    ],
)
def test_a_failing_handler_is_stored_logged_once_and_answered_200(
    phone: Phone, caplog: pytest.LogCaptureFixture, body: str, handler: str, problem: str
) -> None:
    reply = phone.send(body)
    assert reply.status == 200
    assert reply.twiml.endswith("<Response />")  # no error reply unless one is configured
    stored = phone.messages()
    assert [(row.direction, row.body, row.source) for row in stored] == [
        ("inbound", body, f"error: handler {handler}")
    ]
    [record] = errors(caplog)
    assert f"failed in handler {handler}" in record.getMessage()
    assert NUMBER not in record.getMessage()
    assert record.exc_info is not None  # with its traceback, which says what went wrong
    assert problem in caplog.text
    assert caplog.text.count("Traceback") == 1


def test_a_retry_gets_the_same_answer_and_logs_nothing_more(
    phone: Phone, caplog: pytest.LogCaptureFixture
) -> None:
    first = phone.send("boom")
    again = phone.replay()
    assert (again.status, again.twiml) == (200, first.twiml)
    assert len(errors(caplog)) == 1
    assert len(phone.messages()) == 1


def test_the_log_line_shows_no_body_and_no_whole_number(
    phone: Phone, caplog: pytest.LogCaptureFixture
) -> None:
    assert phone.send(f"hi, {SECRET}").status == 200
    [record] = errors(caplog)
    line = record.getMessage()
    assert "failed in handler anything (ValueError)" in line
    assert SECRET not in line and NUMBER not in line
    assert phone.messages()[0].source == "error: handler anything"


def test_the_configured_error_reply_is_sent_and_stored(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    (tmp_path / "textback.toml").write_text(
        '[default]\nerror_reply = "Sorry, something went wrong. Try again later."\n'
    )
    phone = Phone(make_app(bot=failing_bot()), TEST_TOKEN, number=NUMBER)
    reply = phone.send("boom")
    assert (reply.status, reply.text) == (200, "Sorry, something went wrong. Try again later.")
    inbound, outbound = phone.messages()
    assert inbound.source == outbound.source == "error: handler boom"
    assert outbound.body == "Sorry, something went wrong. Try again later."
    assert phone.send("anything else").text == "fine"  # and the others answer as before


def test_the_bots_error_reply_without_a_rules_file(make_app: Callable[..., Flask]) -> None:
    bot = Bot(error_reply="Oops, try again.")
    bot.on("boom")(failing_bot().routes[0].handler)
    phone = Phone(make_app(bot=bot), TEST_TOKEN, number=NUMBER)
    assert phone.send("boom").text == "Oops, try again."
    assert phone.send("hello").text == "Hello back to you!"  # the built-in rules still answer


def test_a_bots_error_reply_must_fit() -> None:
    with pytest.raises(ConfigError, match=r"error_reply=\.\.\.\) is 1,601 characters long"):
        Bot(error_reply="x" * 1601)


def test_a_failing_state_handler_keeps_the_conversation(phone: Phone) -> None:
    assert phone.send("size").text == "Size? S/M/L"
    failed = phone.send("XL")
    assert (failed.status, failed.text) == (200, "")
    assert phone.messages()[-1].source == "error: state chosen"
    assert phone.send("M").text == "Size M."  # still in the state: the contact can try again


def test_messages_shows_which_handler_failed(
    phone: Phone, database_url: str, tmp_path: Path
) -> None:
    phone.send("boom")
    env = {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}
    result = CliRunner().invoke(main, ["messages"], env=env, catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.rstrip().endswith(" boom [error: handler boom]")


def test_dispatch_raises_handler_error_with_the_cause() -> None:
    with pytest.raises(HandlerError, match="handler boom failed: RuntimeError") as caught:
        failing_bot().dispatch(Inbound(sid="SM1", from_=NUMBER, to="+15559990000", body="boom"))
    assert caught.value.source == "handler boom"
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_default_table_with_only_an_error_reply_keeps_the_default_reply() -> None:
    rules = parse_rules({"default": {"error_reply": "Sorry!"}}, "textback.toml")
    assert (rules.default, rules.error_reply) == (None, "Sorry!")
    outcome = Bot().dispatch(Inbound(sid="SM1", from_=NUMBER, to="+15559990000", body="zzz"))
    assert outcome.source == "default"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"error_reply": "Sorry {from}"}, "error_reply takes no {placeholders}"),
        ({"error_reply": 3}, "error_reply: Input should be a valid string"),
        ({"media": ["https://x.test/a.png"]}, "media needs a reply"),
    ],
)
def test_a_bad_error_reply_is_refused(table: dict[str, object], problem: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules({"default": table}, "textback.toml")
    assert str(caught.value).startswith("textback.toml: [default]: ")
    assert problem in str(caught.value)
