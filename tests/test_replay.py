"""``textback replay``: yesterday's messages against tomorrow's rules, changing nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import func
from sqlalchemy import select

from textback.cli import main
from textback.core.bot import Bot
from textback.core.message import Inbound
from textback.core.replay import Change
from textback.core.replay import Exchange
from textback.core.replay import replay
from textback.rulesfile.rules import parse_rules
from textback.storage.engine import make_engine
from textback.storage.tables import messages
from textback.testing import TEST_TOKEN
from textback.testing import Phone

ANN, BOB = "+15550001111", "+15550002222"

OLD_RULES = """
[[rule]]
keyword = "hello"
reply = "Hello back to you!"

[[rule]]
keywords = ["hours", "open"]
reply = "We're open 9-5."

[[flow]]
name = "signup"
trigger = "join"
done = "Thanks {name}!"

[[flow.step]]
ask = "What's your name?"
save = "name"
"""

# hours changed; hello removed (now the default); the flow asks one more question.
NEW_RULES = """
[[rule]]
keywords = ["hours", "open"]
reply = "We're open 8-6."

[[flow]]
name = "signup"
trigger = "join"
done = "Thanks {name} from {zip}!"

[[flow.step]]
ask = "What's your name?"
save = "name"

[[flow.step]]
ask = "And your ZIP code?"
save = "zip"
"""


def test_replay_lists_what_the_new_rules_answer_differently_and_changes_nothing(
    make_app: Callable[..., Flask], tmp_path: Path, database_url: str
) -> None:
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(OLD_RULES)
    new.write_text(NEW_RULES)
    app = make_app(TEXTBACK_RULES=str(old))
    phone = Phone(app, TEST_TOKEN)
    # Two contacts, interleaved: each one's conversation must be replayed in its own order.
    assert phone.send("join", from_=ANN).text == "What's your name?"
    assert phone.send("hours", from_=BOB).text == "We're open 9-5."
    assert phone.send("Ann", from_=ANN).text == "Thanks Ann!"
    assert phone.send("hello", from_=BOB).text == "Hello back to you!"
    assert phone.send("hours", from_=ANN).text == "We're open 9-5."

    engine = make_engine(database_url)
    with engine.connect() as connection:
        before = connection.execute(select(func.count()).select_from(messages)).scalar()
    env = {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}
    runner = CliRunner()

    same = runner.invoke(main, ["replay", "--rules", str(old)], env=env, catch_exceptions=False)
    assert same.exit_code == 0, same.output
    assert same.output.endswith(f"5 message(s) replayed against {old}: no differences\n")

    result = runner.invoke(
        main, ["replay", "--rules", str(new), "--json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    assert document["replayed"] == 5
    found = {(d["from"], d["body"]): d for d in document["differences"]}
    assert set(found) == {(ANN, "Ann"), (BOB, "hours"), (BOB, "hello"), (ANN, "hours")}
    assert found[(ANN, "Ann")]["new"]["text"] == "And your ZIP code?"
    assert found[(ANN, "Ann")]["old"] == {
        "text": "Thanks Ann!",
        "media": [],
        "source": "flow signup done",
    }
    # Ann is still in the flow under the new rules, so "hours" is her ZIP answer now.
    assert found[(ANN, "hours")]["new"]["text"] == "Thanks Ann from hours!"
    assert found[(BOB, "hours")]["new"]["text"] == "We're open 8-6."
    assert found[(BOB, "hello")]["change"] == Change.REPLY.value
    assert found[(BOB, "hello")]["new"]["source"] == "default"
    assert document["counts"] == {"other reply": 4}

    text = runner.invoke(main, ["replay", "--rules", str(new)], env=env, catch_exceptions=False)
    assert text.exit_code == 1
    assert "  was: We're open 9-5.  (rule 2 (keyword hours/open))" in text.output
    assert "  now: We're open 8-6.  (rule 1 (keyword hours/open))" in text.output
    assert text.output.splitlines()[-1] == (
        f"5 message(s) replayed against {new}: 4 answered differently (4 other reply)"
    )

    one = runner.invoke(main, ["replay", "--rules", str(new), "--contact", BOB, "--json"], env=env)
    assert {d["body"] for d in json.loads(one.output)["differences"]} == {"hours", "hello"}
    flow = runner.invoke(
        main, ["replay", "--rules", str(new), "--flow", "signup", "--json"], env=env
    )
    assert [d["body"] for d in json.loads(flow.output)["differences"]] == ["Ann", "hours"]
    later = datetime.now(UTC) + timedelta(hours=1)
    nothing = runner.invoke(
        main, ["replay", "--rules", str(new), "--since", later.isoformat()], env=env
    )
    assert nothing.exit_code == 0 and "0 message(s) replayed" in nothing.output

    with engine.connect() as connection:
        after = connection.execute(select(func.count()).select_from(messages)).scalar()
    assert after == before  # nothing sent, nothing stored
    engine.dispose()


def _exchange(sid: int, body: str, at: datetime, text: str, source: str) -> Exchange:
    msg = Inbound(f"SM{sid:032x}", ANN, "+15559990000", body)
    return Exchange(msg, at, text, (), source)


def test_a_conversation_that_expired_is_not_resumed() -> None:
    rules = parse_rules(
        {
            "flow": [
                {
                    "name": "signup",
                    "trigger": "join",
                    "expire_after": "1h",
                    "done": "Thanks {name}!",
                    "step": [{"ask": "Name?", "save": "name"}],
                }
            ],
            "default": {"reply": "Sorry?"},
        },
        "rules.toml",
    )
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    history = [
        _exchange(1, "join", start, "Name?", "flow signup step 1"),
        _exchange(2, "Ann", start + timedelta(hours=2), "Sorry?", "default"),
    ]
    results = list(replay(history, bot=Bot(), rules=rules))
    assert [difference for _, difference in results] == [None, None]


def test_a_handler_that_raises_is_reported_not_fatal() -> None:
    bot = Bot()

    @bot.on("boom")
    def boom(msg: Inbound) -> str:
        raise RuntimeError("no database here")

    rules = parse_rules({}, "rules.toml")
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    history = [_exchange(1, "boom", start, "", "handler boom")]
    ((_, difference),) = list(replay(history, bot=bot, rules=rules))
    assert difference is not None and difference.change is Change.ERROR
    assert difference.source == "RuntimeError: no database here"


@pytest.mark.parametrize(
    ("old_text", "new_reply", "change"),
    [
        ("", "Sorry?", Change.ANSWERED),
        ("Hi", "", Change.SILENCED),
        ("Hi", "Sorry?", Change.REPLY),
    ],
)
def test_kinds_of_change(old_text: str, new_reply: str, change: Change) -> None:
    rules = parse_rules({"default": {"reply": new_reply}}, "rules.toml")
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    history = [_exchange(1, "anything", start, old_text, "default")]
    ((_, difference),) = list(replay(history, bot=Bot(), rules=rules))
    assert difference is not None and difference.change is change


@pytest.mark.parametrize("setting", ["twilio", "textback"])
def test_replay_answers_carrier_commands_as_the_server_does(
    make_app: Callable[..., Flask], tmp_path: Path, database_url: str, setting: str
) -> None:
    phone = Phone(make_app(TEXTBACK_CARRIER_REPLIES=setting), TEST_TOKEN)
    phone.send("help")
    phone.stop()
    phone.send("hello")
    phone.send("yes")
    env = {
        "DATABASE_URL": database_url,
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TEXTBACK_CARRIER_REPLIES": setting,
    }
    result = CliRunner().invoke(main, ["replay"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.endswith(
        "4 message(s) replayed against (built-in rules): no differences\n"
    )
