"""The rules file: what it means, and what it says when it is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from textback.core.bot import Bot
from textback.core.message import Inbound
from textback.errors import RulesError
from textback.rulesfile.rules import load_rules
from textback.testing import Phone

EXAMPLE = """
[[rule]]
keyword = "hello"
reply = "Hello back to you!"

[[rule]]
keywords = ["hours", "open"]
reply = "We're open 9-5, {from}."

[[rule]]
pattern = '^order\\s+(?P<id>\\d+)$'
reply = "Order {id} is on its way."

[[rule]]
contains = "menu"
reply = "Here it is."
media = ["https://example.com/menu.png"]

[[rule]]
keyword = "shh"
reply = ""

[[rule]]
keyword = "braces"
reply = "Use {{curly}} braces & <angles> for {body}"

[default]
reply = "Hi! Not quite sure what you meant, but okay."
"""


def answer(path: Path, body: str) -> tuple[str, tuple[str, ...], str]:
    rules = load_rules(path)
    msg = Inbound(sid="SM1", from_="+15550001111", to="+15559990000", body=body)
    outcome = Bot().dispatch(msg, rules=rules.routes, default=rules.default)
    return outcome.reply.text, outcome.reply.media, outcome.source


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "textback.toml"
    path.write_text(EXAMPLE)
    return path


@pytest.mark.parametrize(
    ("body", "text", "media"),
    [
        ("hello", "Hello back to you!", ()),
        ("HOURS?", "We're open 9-5, +15550001111.", ()),
        ("open", "We're open 9-5, +15550001111.", ()),
        ("Order 42", "Order 42 is on its way.", ()),
        (" order   7 ", "Order 7 is on its way.", ()),
        ("order 42 please", "Hi! Not quite sure what you meant, but okay.", ()),
        ("What's on the MENU today", "Here it is.", ("https://example.com/menu.png",)),
        ("shh", "", ()),
        ("braces", "Use {curly} braces & <angles> for braces", ()),
        ("something", "Hi! Not quite sure what you meant, but okay.", ()),
    ],
)
def test_example_rules(example: Path, body: str, text: str, media: tuple[str, ...]) -> None:
    assert answer(example, body)[:2] == (text, media)


def test_first_matching_rule_wins(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[rule]]\ncontains = "pizza"\nreply = "first"\n\n'
        '[[rule]]\nkeyword = "pizza"\nreply = "second"\n'
    )
    assert answer(path, "pizza") == ("first", (), "rule 1 (contains 'pizza')")


def test_named_rule_is_the_source(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[[rule]]\nname = "greeting"\nkeyword = "hi"\nreply = "yo"\n')
    assert answer(path, "hi")[2] == "greeting"


@pytest.mark.parametrize(
    ("content", "where", "problem"),
    [
        (
            '[[rule]]\nkeyword = "hi"\nreply = "x"\n[[rule]]\nkeyword = "a"\nreplay = "x"\n',
            "rule 2 (keyword 'a')",
            "unknown key 'replay'",
        ),
        ('[[rule]]\nkeyword = "hi"\n', "rule 1 (keyword 'hi')", "missing key 'reply'"),
        ('[[rule]]\nreply = "x"\n', "rule 1", "needs exactly one of keyword"),
        (
            '[[rule]]\nkeyword = "a"\ncontains = "b"\nreply = "x"\n',
            "rule 1",
            "found keyword and contains",
        ),
        (
            "[[rule]]\npattern = '(unclosed'\nreply = \"x\"\n",
            "rule 1 (pattern '(unclosed')",
            "bad pattern",
        ),
        (
            "[[rule]]\npattern = '^(?P<id>\\d+)$'\nreply = \"Order {idd}\"\n",
            "rule 1",
            "unknown name {idd}",
        ),
        ('[[rule]]\nkeyword = "hi"\nreply = "Hi {name}"\n', "rule 1", "unknown name {name}"),
        ('[[rule]]\nkeyword = "hi"\nreply = "Hi {"\n', "rule 1", "literal brace"),
        ('[[rule]]\nkeyword = "hi"\nreply = "Hi {0}"\n', "rule 1", "not a plain name"),
        ('[[rule]]\nkeyword = "hi"\nreply = 5\n', "rule 1", "reply"),
        ('[[rule]]\nkeyword = "!!"\nreply = "x"\n', "rule 1", "letter or digit"),
        (
            '[[rule]]\nkeyword = "hi"\nreply = "x"\nmedia = ["ftp://x/y.png"]\n',
            "rule 1",
            "must start with https://",
        ),
        ('[default]\nreply = "x"\ncolour = "red"\n', "[default]", "unknown key 'colour'"),
        ('[optout]\nstop_word = ["x"]\n', "[optout]", "unknown key 'stop_word'"),
        (
            '[optout]\nstart_words = ["Stop"]\n',
            "[optout]",
            "start_words: 'Stop' is a standard STOP word; a word can be one carrier command only",
        ),
        ('[optout]\nstop_words = ["yes"]\n', "[optout]", "'yes' is a standard START word"),
        ('[optout]\nhelp_words = ["opt-out"]\n', "[optout]", "'opt-out' is a standard STOP"),
        ('[optout]\nstop_words = ["info"]\n', "[optout]", "'info' is a standard HELP word"),
        (
            '[optout]\nstop_words = ["halt"]\nhelp_words = ["HALT"]\n',
            "[optout]",
            "help_words: 'HALT' is also in stop_words",
        ),
        ('[optout]\nstop_words = ["!!"]\n', "[optout]", "'!!' has no letters or digits"),
        ('[rules]\nkeyword = "x"\n', "", "unknown table 'rules'"),
        ('[[rule]\nkeyword = "x"\n', "", "not valid TOML"),
    ],
)
def test_bad_rules_files_name_file_rule_and_problem(
    tmp_path: Path, content: str, where: str, problem: str
) -> None:
    path = tmp_path / "textback.toml"
    path.write_text(content)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert caught.value.where.startswith(where)
    assert problem in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="file not found"):
        load_rules(tmp_path / "nope.toml")


def test_rules_file_in_working_directory_is_used(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    (tmp_path / "textback.toml").write_text('[[rule]]\nkeyword = "ping"\nreply = "pong"\n')
    phone = Phone(make_app(), "textback-test-token")
    assert phone.send("Ping!").text == "pong"
    # A rules file replaces the built-in rules: no [default] means the bot's default.
    assert phone.send("hello").text == "Hi! Not quite sure what you meant, but okay."


def test_textback_rules_setting_names_the_file(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[[rule]]\nkeyword = "ping"\nreply = "pong {from}"\n')
    phone = Phone(make_app(TEXTBACK_RULES=str(path)), "textback-test-token")
    assert phone.send("ping", from_="+15551234567").text == "pong +15551234567"


def test_bad_rules_file_stops_the_app(tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    (tmp_path / "textback.toml").write_text('[[rule]]\nkeyword = "x"\nrepyl = "y"\n')
    with pytest.raises(RulesError, match=r"textback.toml: rule 1 .*unknown key 'repyl'"):
        make_app()
