"""The rules file's [[flow]] and [conversations] tables: what loads, and what is refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from textback.cli import main
from textback.core.flows import ANSWER
from textback.core.flows import LEAVE
from textback.errors import RulesError
from textback.rulesfile.flow_rules import parse_duration
from textback.rulesfile.rules import load_rules

FLOW = """
[[flow]]
name = "signup"
trigger = "join"
done = "Done, {name}."

[[flow.step]]
ask = "Name?"
save = "name"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "textback.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        (" 24h ", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "0h", "1.5h", "3w", "-1d", "24 hours"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="like 90s, 30m, 24h or 7d"):
        parse_duration(text)


def test_a_flow_loads_with_defaults_and_overrides(tmp_path: Path) -> None:
    rules = load_rules(
        write(
            tmp_path,
            '[conversations]\nleave = ["quit now", "bye"]\nexpire_after = "2h"\n'
            + FLOW
            + FLOW.replace('"signup"', '"other"').replace('"join"', '["other", "two"]'),
        )
    )
    signup, other = rules.flows
    assert rules.conversations.expire_after == timedelta(hours=2)
    assert signup.settings.expire_after == timedelta(hours=2)
    assert signup.settings.rule_keywords == ANSWER
    assert signup.settings.leave.match("Bye!") is not None
    assert other.trigger.match("TWO") is not None
    assert rules.flow("other") is other and rules.flow("nope") is None


def test_per_flow_settings(tmp_path: Path) -> None:
    text = FLOW.replace(
        'done = "Done, {name}."',
        'done = "Done."\nexpire_after = "30m"\nrule_keywords = "leave"\nleave = ["back"]',
    )
    [flow] = load_rules(write(tmp_path, text)).flows
    assert flow.settings.expire_after == timedelta(minutes=30)
    assert flow.settings.rule_keywords == LEAVE
    assert flow.settings.leave.match("exit") is None and flow.settings.leave.match("back")


BAD = [
    (
        FLOW.replace("save =", "sve ="),
        "flow 1 ('signup'), step 1: unknown key 'sve' (did you mean 'save'?)",
    ),
    (
        FLOW.replace("done =", "don ="),
        "flow 1 ('signup'): unknown key 'don' (did you mean 'done'?)",
    ),
    (FLOW + FLOW.replace('"join"', '"again"'), "flow 2 ('signup'): duplicate flow name 'signup'"),
    (
        FLOW + FLOW.replace('"signup"', '"other"'),
        "flow 2 ('other'): trigger 'join' already starts flow 'signup'",
    ),
    (
        FLOW.replace('ask = "Name?"', 'ask = "Hi {name}, name?"'),
        "flow 1 ('signup'), step 1: unknown name {name}",
    ),
    (
        FLOW + '[[flow.step]]\nask = "Zip?"\nsave = "zip"\nexpect = \'^(\\d{5}$\'\n',
        "flow 1 ('signup'), step 2: bad expect '^(\\\\d{5}$': missing ), unterminated subpattern",
    ),
    (
        FLOW.replace('done = "Done, {name}."', 'done = "Done, {nam}."'),
        "flow 1 ('signup'), done: unknown name {nam}",
    ),
    (
        FLOW + '[[flow.step]]\nask = "Again?"\nsave = "name"\n',
        "flow 1 ('signup'), step 2: save = 'name': an earlier step already saves 'name'",
    ),
    (
        FLOW.replace('save = "name"', 'save = "from"'),
        "flow 1 ('signup'), step 1: save = 'from' is taken by the message's own {from}",
    ),
    (
        FLOW.replace('done = "Done, {name}."', 'done = "Done."\nexpire_after = "1 week"'),
        "flow 1 ('signup'): expire_after: bad duration '1 week'",
    ),
    ('[conversations]\nexpire_after = "0s"\n' + FLOW, "[conversations]: expire_after: bad dur"),
    (  # past datetime's range: a run's expiry could not be written
        '[conversations]\nexpire_after = "3000000d"\n' + FLOW,
        "[conversations]: expire_after: bad duration '3000000d': at most 3650d (ten years)",
    ),
    (  # past timedelta's own range
        FLOW.replace(
            'done = "Done, {name}."', 'done = "Done."\nexpire_after = "' + "9" * 20 + 'd"'
        ),
        "flow 1 ('signup'): expire_after: bad duration '" + "9" * 20 + "d': at most 3650d",
    ),
    (
        '[conversations]\nleave = ["cancel"]\n' + FLOW,
        "[conversations]: leave word 'cancel' is a carrier opt-out/help keyword",
    ),
    (
        FLOW.replace('done = "Done, {name}."', 'done = "Done."\nleave = ["Quit!"]'),
        "flow 1 ('signup'): leave word 'Quit!' is a carrier opt-out/help keyword",
    ),
    (
        '[conversations]\nrule_keywords = "ignore"\n' + FLOW,
        "[conversations]: rule_keywords: Input should be 'answer' or 'leave'",
    ),
    (
        '[conversations]\nleve = ["x"]\n',
        "[conversations]: unknown key 'leve' (did you mean 'leave'",
    ),
    (FLOW.split("[[flow.step]]")[0], "flow 1 ('signup'): a flow needs at least one [[flow.step]]"),
    (FLOW.replace('trigger = "join"', 'trigger = "stop"'), "flow 1 ('signup'): trigger 'stop' is"),
    (FLOW.replace('name = "signup"\n', ""), "flow 1: missing key 'name'"),
    (FLOW.replace('save = "name"', 'save = "first name"'), "step 1: save = 'first name' must be"),
    (
        FLOW.replace('save = "name"', 'save = "name"\nmedia = ["ftp://x"]'),
        "flow 1 ('signup'), step 1: media: media URL 'ftp://x' must start with https://",
    ),
    ('flow = "signup"\n', "flow: write flows as [[flow]] tables"),
    (FLOW.replace('name = "signup"', 'name = ""'), "flow 1 (''): name: name = '': give the flow"),
    (
        FLOW.replace('name = "signup"', 'name = "a:b"'),
        "flow 1 ('a:b'): name: name = 'a:b': at most",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_flows_name_file_flow_and_step(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_a_later_step_may_use_an_earlier_answer(tmp_path: Path) -> None:
    text = FLOW + '[[flow.step]]\nask = "{name}, zip?"\nsave = "zip"\nmedia = ["https://x/{name}"]'
    [flow] = load_rules(write(tmp_path, text)).flows
    assert [step.save for step in flow.steps] == ["name", "zip"]


def test_check_reports_flows(tmp_path: Path) -> None:
    env = {"TEXTBACK_INSTANCE": str(tmp_path / "instance")}
    write(tmp_path, FLOW)
    good = CliRunner().invoke(main, ["check"], env=env)
    assert good.exit_code == 0 and "0 rule(s), 1 flow(s)" in good.output
    write(tmp_path, FLOW.replace("save =", "sve ="))
    bad = CliRunner().invoke(main, ["check"], env=env)
    assert bad.exit_code == 1
    assert "textback.toml: flow 1 ('signup'), step 1: unknown key 'sve'" in bad.output
