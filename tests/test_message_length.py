"""Twilio's 1,600-character limit: refused in the rules file, cut in replies, refused in sends
(issue 11, defect 11)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import regex
from click.testing import CliRunner
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from textback import Bot
from textback import Inbound
from textback.cli import main
from textback.core.body_length import MAX_BODY
from textback.core.body_length import body_length
from textback.core.body_length import cut_to_fit
from textback.errors import InvalidMessage
from textback.errors import RulesError
from textback.outbound.send import send_message
from textback.rulesfile.rules import load_rules
from textback.storage.store import Store
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .prism import ACCOUNT
from .test_twilio_api import OUR_NUMBER
from .test_twilio_api import THEM
from .test_twilio_api import FakeTwilio
from .test_twilio_api import api_settings
from .test_twilio_api import created_message
from .test_twilio_api import fake_twilio  # noqa: F401
from .test_twilio_api import store  # noqa: F401

THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"  # 👍🏽: two code points, four UTF-16 units
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧: a ZWJ sequence, eight units
E_ACUTE = "e\u0301"  # é as e + a combining accent


# --- counting and cutting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [("", 0), ("a" * 1600, 1600), ("é" * 1600, 1600), ("😀" * 800, 1600), (FAMILY, 8)],
)
def test_length_counts_an_emoji_twice(text: str, length: int) -> None:
    assert body_length(text) == length


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("a" * 1600, "a" * 1600),
        ("a" * 1601, "a" * 1600),
        ("😀" * 801, "😀" * 800),
        ("a" + "😀" * 800, "a" + "😀" * 799),  # never half a surrogate pair
        ("a" * 1598 + THUMBS_UP_MEDIUM, "a" * 1598),  # never the emoji without its skin tone
        ("a" * 1596 + FAMILY, "a" * 1596),  # never part of a ZWJ sequence
        ("a" * 1599 + E_ACUTE, "a" * 1599),  # never a letter without its accent
        ("e" + "\u0301" * 2000, "e" + "\u0301" * 1599),  # one huge cluster: cut on a code point
    ],
)
def test_cut_falls_between_characters(text: str, cut: str) -> None:
    assert cut_to_fit(text) == cut


@given(st.text(min_size=1500, max_size=1800))
def test_cut_is_a_prefix_that_fits_and_ends_on_a_cluster(text: str) -> None:
    cut = cut_to_fit(text)
    assert text.startswith(cut) and body_length(cut) <= MAX_BODY
    if body_length(text) <= MAX_BODY:
        assert cut == text
    elif body_length(regex.match(r"\X", text).group()) <= MAX_BODY:  # type: ignore[union-attr]
        assert (
            regex.findall(r"\X", cut)
            == regex.findall(r"\X", text)[: len(regex.findall(r"\X", cut))]
        )
        assert cut  # something is always sent


# --- the rules file -----------------------------------------------------------------------------

LONG = "x" * 1601


@pytest.mark.parametrize(
    ("toml", "where"),
    [
        (f'[[rule]]\nkeyword = "terms"\nreply = "{LONG}"\n', "rule 1 (keyword 'terms'): reply"),
        (f'[[rule]]\nkeyword = "t"\nreply = "{"😀" * 801}"\n', "rule 1 (keyword 't'): reply"),
        (f'[[rule]]\nkeyword = "t"\nreply = "{{body}} {LONG}"\n', "rule 1 (keyword 't'): reply"),
        (f'[default]\nreply = "{LONG}"\n', "[default]: reply"),
        (f'[default]\nerror_reply = "{LONG}"\n', "[default]: error_reply"),
        (
            f'[[flow]]\nname = "s"\ntrigger = "join"\n[[flow.step]]\nask = "{LONG}"\nsave = "n"\n',
            "flow 1 ('s'), step 1: ask",
        ),
        (
            f'[[flow]]\nname = "s"\ntrigger = "join"\ndone = "{LONG}"\n'
            '[[flow.step]]\nask = "Name?"\nsave = "n"\n',
            "flow 1 ('s'), done: done",
        ),
        (f'[conversations]\nleave_reply = "{LONG}"\n', "[conversations]: leave_reply"),
    ],
)
def test_a_reply_too_long_for_twilio_is_refused_on_load(
    tmp_path: Path, toml: str, where: str
) -> None:
    path = tmp_path / "textback.toml"
    path.write_text(toml)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(f"{path}: {where} is 1,60")
    assert "Twilio accepts at most 1,600" in str(caught.value)


def test_a_reply_of_exactly_the_limit_loads(tmp_path: Path) -> None:
    path = tmp_path / "textback.toml"
    path.write_text(f'[[rule]]\nkeyword = "t"\nreply = "{"😀" * 800}"\n')
    assert len(load_rules(path).routes) == 1


def test_check_names_file_rule_and_length(tmp_path: Path) -> None:
    (tmp_path / "textback.toml").write_text(f'[[rule]]\nkeyword = "terms"\nreply = "{LONG}"\n')
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "TEXTBACK_INSTANCE": str(tmp_path)}
    result = CliRunner().invoke(main, ["check"], env=env, catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr == (
        "textback: error: textback.toml: rule 1 (keyword 'terms'): reply is 1,601 characters "
        "long; Twilio accepts at most 1,600 (an emoji counts two)\n"
    )


# --- replies made when a message comes --------------------------------------------------------


def test_a_template_reply_too_long_is_cut_with_a_warning(
    tmp_path: Path, make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "textback.toml").write_text('[default]\nreply = "You said: {body}"\n')
    phone = Phone(make_app(), TEST_TOKEN)
    body = "ab" * 800
    reply = phone.send(body)
    assert reply.status == 200
    assert reply.text == ("You said: " + body)[:1600]
    outbound = phone.messages()[-1]
    assert outbound.body == reply.text  # the log shows what was sent
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "cut to 1,600 characters" in warning.getMessage()
    assert "1,610 characters" in warning.getMessage()
    assert body not in warning.getMessage()


def test_a_handler_reply_too_long_is_cut_between_emoji(make_app: Callable[..., Flask]) -> None:
    bot = Bot()

    @bot.on("thanks")
    def thanks(msg: Inbound) -> str:
        return "a" + THUMBS_UP_MEDIUM * 500

    reply = Phone(make_app(bot=bot), TEST_TOKEN).send("thanks")
    assert reply.text == "a" + THUMBS_UP_MEDIUM * 399
    assert body_length(reply.text) == 1597


# --- sending ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "the message is empty"),
        ("   ", "the message is empty"),
        ("x" * 1601, "the message is 1,601 characters long; Twilio accepts at most 1,600"),
        ("😀" * 801, "the message is 1,602 characters long"),
    ],
)
def test_send_refuses_before_any_request(
    store: Store,  # noqa: F811
    fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio],  # noqa: F811
    body: str,
    problem: str,
) -> None:
    fake = fake_twilio(201, created_message("SM" + "5" * 32))
    with pytest.raises(InvalidMessage, match=problem):
        send_message(api_settings(), store, to=THEM, body=body, from_=OUR_NUMBER)
    assert fake.requests == []
    assert store.recent_messages() == []


def test_send_takes_a_picture_without_text(
    store: Store,  # noqa: F811
    fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio],  # noqa: F811
) -> None:
    fake = fake_twilio(201, created_message("MM" + "6" * 32))
    media = ["https://example.com/menu.png"]
    send_message(api_settings(), store, to=THEM, body="", from_=OUR_NUMBER, media=media)
    assert fake.requests[0]["data"]["MediaUrl"] == media
    assert "Body" not in fake.requests[0]["data"]


def test_send_command_refuses_in_one_line(
    tmp_path: Path,
    database_url: str,
    fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio],  # noqa: F811
) -> None:
    fake = fake_twilio(201, created_message("SM" + "7" * 32))
    env = {
        "DATABASE_URL": database_url,
        "TEXTBACK_INSTANCE": str(tmp_path),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "secret-token",
    }
    result = CliRunner().invoke(main, ["send", THEM, "", "--from", OUR_NUMBER], env=env)
    assert (result.exit_code, result.stderr) == (
        1,
        "textback: error: the message is empty: give a text, or a picture with --media\n",
    )
    assert fake.requests == []
