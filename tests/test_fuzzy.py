"""Forgiving keywords: ``fuzzy = true`` accepts a bounded number of typos."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from textback.cli import main
from textback.core.matchers import Keyword
from textback.core.matchers import allowed_typos
from textback.errors import RulesError
from textback.rulesfile.rules import load_rules
from textback.testing import TEST_TOKEN
from textback.testing import Phone


@pytest.mark.parametrize(
    ("word", "allowed"),
    [
        ("hi", 0),
        ("yes", 0),
        ("menu", 1),
        ("hours", 1),
        ("refund", 1),
        ("opening", 2),
        ("appointment", 2),
    ],
)
def test_the_typos_allowed_grow_with_the_word(word: str, allowed: int) -> None:
    assert allowed_typos(word) == allowed


@pytest.mark.parametrize(
    ("body", "matches"),
    [
        ("hours", True),
        ("Hours?", True),
        ("huors", True),  # two letters swapped
        ("hour", True),  # one missing
        ("hoursx", True),  # one added
        ("hoirs", True),  # one changed
        ("hrs", False),  # two missing
        ("house", False),  # two changed
        ("", False),
    ],
)
def test_a_fuzzy_keyword_takes_near_misses(body: str, matches: bool) -> None:
    assert (Keyword(["hours"], fuzzy=True).match(body) is not None) is matches
    assert (Keyword(["hours"]).match(body) is not None) is (body.lower().strip("?") == "hours")


def test_short_words_stay_exact() -> None:
    assert Keyword(["hi"], fuzzy=True).match("ho") is None


def test_fuzzy_is_for_keywords_only(tmp_path: Path) -> None:
    path = tmp_path / "textback.toml"
    path.write_text('[[rule]]\ncontains = "menu"\nfuzzy = true\nreply = "x"\n')
    with pytest.raises(RulesError, match="fuzzy = true is for keyword and keywords rules only"):
        load_rules(path)


def test_replay_shows_what_turning_fuzzy_on_would_change(
    make_app: Callable[..., Flask], tmp_path: Path, database_url: str
) -> None:
    exact, forgiving = tmp_path / "exact.toml", tmp_path / "fuzzy.toml"
    exact.write_text('[[rule]]\nkeyword = "hours"\nreply = "9-5"\n')
    forgiving.write_text('[[rule]]\nkeyword = "hours"\nfuzzy = true\nreply = "9-5"\n')
    phone = Phone(make_app(TEXTBACK_RULES=str(exact)), TEST_TOKEN)
    assert phone.send("hours").text == "9-5"
    assert phone.send("huors").text == "Hi! Not quite sure what you meant, but okay."
    env = {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}
    result = CliRunner().invoke(
        main, ["replay", "--rules", str(forgiving), "--json", "--ignore-source"], env=env
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    ((difference,),) = [document["differences"]]
    assert difference["body"] == "huors" and difference["new"]["text"] == "9-5"
    assert difference["new"]["source"] == "rule 1 (keyword hours (fuzzy))"


def near_miss_phone(make_app: Callable[..., Flask], tmp_path: Path) -> Phone:
    rules = tmp_path / "textback.toml"
    rules.write_text(
        '[[rule]]\nkeyword = "stoop"\nfuzzy = true\nreply = "Our stoop sale is on."\n\n'
        '[[rule]]\nkeyword = "shop"\nreply = "The shop opens at 9."\n'
    )
    return Phone(make_app(TEXTBACK_RULES=str(rules), TEXTBACK_SENDER_NAME="Acme"), TEST_TOKEN)


@pytest.mark.parametrize("body", ["stoo", "Stpo!", "unsubscibe", "hlep"])
def test_a_misspelt_carrier_word_gets_the_help_text_not_a_fuzzy_rule(
    make_app: Callable[..., Flask], tmp_path: Path, body: str
) -> None:
    phone = near_miss_phone(make_app, tmp_path)
    reply = phone.send(body, from_="+15550003333")
    assert reply.text.startswith("Acme: ") and "Reply STOP to unsubscribe" in reply.text
    assert not phone.is_opted_out("+15550003333")  # a near miss is never the command


def test_an_exact_rule_still_answers_a_word_near_a_carrier_word(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    phone = near_miss_phone(make_app, tmp_path)
    assert phone.send("shop").text == "The shop opens at 9."  # one letter from STOP
    assert phone.send("stoop").text == "Our stoop sale is on."  # exact, if fuzzy
    assert phone.send("stooop").text == "Our stoop sale is on."  # a near miss of stoop only
