"""The Python API, tested without a web server."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from textback import Bot
from textback import Inbound
from textback import Reply
from textback.errors import HandlerError
from textback.errors import InvalidHandler
from textback.rulesfile.rules import load_rules
from textback.testing import TEST_TOKEN
from textback.testing import Phone

SID = "SM" + "0123456789abcdef" * 2


def inbound(body: str) -> Inbound:
    return Inbound(sid="SM1", from_="+15550001111", to="+15559990000", body=body)


def test_keyword_handler_and_default() -> None:
    bot = Bot()

    @bot.on("hello")
    def hello(msg: Inbound) -> str:
        return "Hello back to you!"

    assert bot.dispatch(inbound(" Hello! ")).reply == Reply("Hello back to you!")
    assert bot.dispatch(inbound("hello there")).reply.text.startswith("Hi! Not quite sure")
    assert bot.dispatch(inbound("Hello")).source == "handler hello"


def test_decorator_returns_the_function() -> None:
    bot = Bot()

    def hello(msg: Inbound) -> str:
        return "x"

    assert bot.on("hello")(hello) is hello
    assert hello(inbound("hi")) == "x"


def test_a_string_is_never_a_regex() -> None:
    bot = Bot()
    bot.on("hi")(lambda msg: "matched")
    assert bot.dispatch(inbound("this")).source == "default"
    assert bot.dispatch(inbound("h.")).source == "default"


def test_regex_handler_gets_the_match() -> None:
    bot = Bot()

    @bot.on(re.compile(r"^order (\d+)$", re.I))
    def order(msg: Inbound, match: re.Match[str]) -> Reply:
        return Reply(f"Order {match.group(1)}", media=["https://x.test/o.png"])

    outcome = bot.dispatch(inbound("ORDER 12"))
    assert outcome.reply == Reply("Order 12", ["https://x.test/o.png"])


def test_list_of_keywords() -> None:
    bot = Bot()
    bot.on(["hours", "open"], name="hours")(lambda msg: "9-5")
    assert bot.dispatch(inbound("OPEN?")).source == "handler hours"


def test_none_means_no_reply() -> None:
    bot = Bot()
    bot.on("quiet")(lambda msg: None)
    outcome = bot.dispatch(inbound("quiet"))
    assert outcome.reply.is_empty


def test_fallback_handler() -> None:
    bot = Bot()

    @bot.fallback
    def echo(msg: Inbound) -> str:
        return f"You said {msg.body}"

    assert bot.dispatch(inbound("anything")).reply.text == "You said anything"


def test_unknown_parameter_fails_at_registration() -> None:
    def handler(msg: Inbound, ctx: object) -> str:
        return "x"

    with pytest.raises(InvalidHandler) as caught:
        Bot().on("x")(handler)
    where = f"{handler.__code__.co_filename}:{handler.__code__.co_firstlineno}"
    assert str(caught.value) == (
        f"handler 'handler' ({where}): unknown parameter 'ctx'; "
        "after the message a handler may ask for match, conversation and contact"
    )
    assert isinstance(caught.value, TypeError)  # what calling it wrongly would raise


def test_a_handler_without_the_message_fails_at_registration() -> None:
    with pytest.raises(InvalidHandler, match="must take the message as its first parameter"):
        Bot().fallback(lambda: "x")


def test_wrong_return_type_is_a_clear_error() -> None:
    bot = Bot()
    bot.on("x")(lambda msg: 42)  # type: ignore[type-var]
    with pytest.raises(HandlerError, match="must return str, Reply or None, not int"):
        bot.dispatch(inbound("x"))


def test_on_needs_trigger_or_state() -> None:
    with pytest.raises(InvalidHandler):
        Bot().on()


def test_code_handlers_come_before_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[rule]]\nkeyword = "menu"\nreply = "file"\n[default]\nreply = "file default"\n'
    )
    rules = load_rules(path)
    bot = Bot()
    bot.on("menu")(lambda msg: "code")
    assert (
        bot.dispatch(inbound("menu"), rules=rules.routes, default=rules.default).reply.text
        == "code"
    )
    outcome = bot.dispatch(inbound("zzz"), rules=rules.routes, default=rules.default)
    assert outcome.reply.text == "file default"


def test_inbound_from_form_keeps_every_parameter() -> None:
    form = [
        ("MessageSid", SID),
        ("From", "+1"),
        ("To", "+2"),
        ("Body", "hi"),
        ("NumMedia", "2"),
        ("MediaUrl0", "https://a"),
        ("MediaContentType0", "image/png"),
        ("MediaUrl1", "https://b"),
        ("MediaContentType1", "image/jpeg"),
        ("New", "v"),
    ]
    msg = Inbound.from_form(form)
    assert (msg.sid, msg.from_, msg.to, msg.body) == (SID, "+1", "+2", "hi")
    assert [(m.url, m.content_type) for m in msg.media] == [
        ("https://a", "image/png"),
        ("https://b", "image/jpeg"),
    ]
    assert msg.params["New"] == "v"
    with pytest.raises(AttributeError):
        msg.body = "changed"  # type: ignore[misc]


def test_bot_through_the_app(make_app: Callable[..., Flask]) -> None:
    bot = Bot()

    @bot.on(re.compile(r"^order (\d+)$", re.I))
    def order(msg: Inbound, match: re.Match[str]) -> Reply:
        return Reply(f"Order {match.group(1)} for {msg.from_}", media=["https://x.test/a.png"])

    phone = Phone(make_app(bot=bot), TEST_TOKEN)
    reply = phone.send("order 5", from_="+15557654321")
    assert reply.text == "Order 5 for +15557654321"
    assert reply.media == ("https://x.test/a.png",)
    assert phone.send("Hello").text == "Hello back to you!"


def test_textback_bot_setting_imports_the_bot(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    (tmp_path / "mybot_for_test.py").write_text(
        "from textback import Bot\nbot = Bot()\n\n@bot.on('ping')\ndef ping(msg):\n"
        "    return 'pong from code'\n"
    )
    phone = Phone(make_app(TEXTBACK_BOT="mybot_for_test:bot"), TEST_TOKEN)
    assert phone.send("ping").text == "pong from code"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("nomodule_xyz:bot", "cannot import"),
        ("json:dumps", "is not a Bot"),
        ("justname", "module:attribute"),
    ],
)
def test_bad_textback_bot_setting(make_app: Callable[..., Flask], path: str, problem: str) -> None:
    from textback.errors import ConfigError

    with pytest.raises(ConfigError, match=problem):
        make_app(TEXTBACK_BOT=path)
