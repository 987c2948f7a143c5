"""The `textback` command, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import text

from tests.served import free_port
from tests.served import wait_for
from textback.channel.forms import inbound_form
from textback.channel.signature import sign
from textback.cli import main
from textback.storage.engine import head_revision
from textback.storage.engine import make_engine

TEXTBACK = [sys.executable, "-m", "textback.cli"]


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}


def invoke(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_simulate_in_process_then_messages_json(env: dict[str, str]) -> None:
    assert invoke(env, "simulate", "Hello") == (0, "Hello back to you!\n")
    code, output = invoke(env, "simulate", "what?", "--from", "+15551230000")
    assert (code, output) == (0, "Hi! Not quite sure what you meant, but okay.\n")
    code, output = invoke(env, "messages", "--json")
    assert code == 0
    records = [json.loads(line) for line in output.splitlines()]
    assert [(r["direction"], r["body"]) for r in records] == [
        ("inbound", "Hello"),
        ("outbound", "Hello back to you!"),
        ("inbound", "what?"),
        ("outbound", "Hi! Not quite sure what you meant, but okay."),
    ]
    assert records[0]["sid"].startswith("SM") and records[1]["sid"] == ""
    assert {"sid", "direction", "from", "to", "body", "status", "created_at"} <= set(records[0])
    code, output = invoke(env, "messages", "--contact", "+15551230000", "--limit", "1")
    assert code == 0 and "Hi! Not quite sure" in output and "Hello" not in output


def test_messages_cannot_drive_the_terminal(env: dict[str, str]) -> None:
    invoke(env, "simulate", "\x1b[2Jhi\rthere\nfake line", "--from", "+15551230000")
    code, output = invoke(env, "messages", "--contact", "+15551230000")
    assert code == 0 and "\x1b" not in output and "\r" not in output
    assert "\\x1b[2Jhi\\x0dthere⏎fake line" in output
    assert len(output.splitlines()) == 2  # the message and its reply, one line each


def test_simulate_raw_prints_twiml(env: dict[str, str]) -> None:
    code, output = invoke(env, "simulate", "Hello", "--raw")
    assert code == 0 and output.startswith("<?xml") and "<Message>Hello back" in output


def test_check_accepts_a_good_setup(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "textback.toml").write_text('[[rule]]\nkeyword = "hi"\nreply = "yo"\n')
    code, output = invoke({**env, "TWILIO_AUTH_TOKEN": "t"}, "check")
    assert code == 0
    assert "textback.toml: 1 rule(s)" in output and output.endswith("ok\n")


def test_check_names_the_problem(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "textback.toml").write_text('[[rule]]\nkeyword = "hi"\nrepyl = "yo"\n')
    result = CliRunner().invoke(main, ["check"], env=env)
    assert result.exit_code == 1
    assert "textback.toml: rule 1 (keyword 'hi'): " in result.output
    assert "unknown key 'repyl' (did you mean 'reply'?)" in result.output
    assert "Traceback" not in result.output


def test_check_imports_the_bot(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "checkbot.py").write_text(
        "from textback import Bot\nbot = Bot()\nbot.on('hi')(lambda msg: 'yo')\nnot_a_bot = 1\n"
    )
    code, output = invoke({**env, "TEXTBACK_BOT": "checkbot:bot"}, "check")
    assert code == 0 and "bot: checkbot:bot: 1 handler(s)" in output
    for setting, problem in [
        ("nope:bot", "cannot import 'nope'"),
        ("checkbot:not_a_bot", "is not a Bot"),
    ]:
        result = CliRunner().invoke(main, ["check"], env={**env, "TEXTBACK_BOT": setting})
        assert result.exit_code == 1 and problem in result.output, result.output


NEVER_ANSWERING = """
[[rule]]
keyword = "hours"
reply = "9-5"

[[rule]]
keyword = "stop"
reply = "Stopping?"

[[rule]]
keywords = ["Hours!", "open", "opt out"]
reply = "We're open 9-5."

[[rule]]
keyword = "join"
reply = "Text JOIN."

[[rule]]
name = "greeting"
keyword = "hi"
reply = "Hi."

[[rule]]
keyword = "yes"
reply = "Great."

[[flow]]
name = "signup"
trigger = ["join", "hello"]

[[flow.step]]
ask = "Your name?"
save = "name"
"""
NEVER_ANSWERING_BOT = """
from textback import Bot
bot = Bot()
bot.on("hi", name="wave")(lambda msg: "yo")
bot.on("Info", name="info")(lambda msg: "about us")
bot.on("HI", name="again")(lambda msg: "yo again")
bot.on("hello", name="hello")(lambda msg: "hello")
"""


def test_check_warns_about_keywords_that_never_answer(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "textback.toml").write_text(NEVER_ANSWERING)
    (tmp_path / "neverbot.py").write_text(NEVER_ANSWERING_BOT)
    code, output = invoke(
        {**env, "TEXTBACK_BOT": "neverbot:bot", "TWILIO_AUTH_TOKEN": "t"}, "check"
    )
    assert code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: neverbot:bot: handler 'info': INFO is a carrier word; this handler never answers",
        "warning: neverbot:bot: handler 'again': 'hi' is answered first by handler 'wave' "
        "(neverbot:bot); this handler never answers",
        "warning: textback.toml: flow 1 ('signup'): 'hello' is answered first by handler "
        "'hello' (neverbot:bot); this flow never starts with 'hello'",
        "warning: textback.toml: rule 2 (keyword 'stop'): STOP is a carrier word; "
        "this rule never answers",
        "warning: textback.toml: rule 3 (keywords 'Hours!'…): 'hours' is answered first by "
        "rule 1 (keyword 'hours'); this rule never answers 'hours'",
        "warning: textback.toml: rule 3 (keywords 'Hours!'…): OPT OUT is a carrier word; "
        "this rule never answers 'opt out'",
        "warning: textback.toml: rule 4 (keyword 'join'): 'join' is answered first by flow 1 "
        "('signup'); this rule never answers",
        "warning: textback.toml: rule 5 (name 'greeting'): 'hi' is answered first by handler "
        "'wave' (neverbot:bot); this rule never answers",
    ]


def test_check_says_who_answers_carrier_commands(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "TWILIO_AUTH_TOKEN": "t", "TEXTBACK_MODE": "production"}
    code, output = invoke(env, "check")
    assert code == 0
    assert "carrier commands: answered by Twilio, recorded by textback" in output
    assert "warning" not in output
    (tmp_path / "textback.toml").write_text('[optout]\nhelp_reply = "Acme: call 555-0100."\n')
    code, output = invoke(env, "check")
    assert "warning: textback.toml: [optout]: help_reply never sent: Twilio answers" in output
    (tmp_path / "textback.toml").unlink()
    env["TEXTBACK_CARRIER_REPLIES"] = "textback"
    code, output = invoke(env, "check")
    assert code == 0 and "carrier commands: answered by textback" in output
    assert "warning: TEXTBACK_SENDER_NAME is not set: the HELP reply names the number" in output
    code, output = invoke({**env, "TEXTBACK_SENDER_NAME": "Acme Bakery"}, "check")
    assert code == 0 and "warning" not in output
    code, output = invoke({**env, "TEXTBACK_MODE": "development"}, "check")
    assert code == 0 and "TEXTBACK_SENDER_NAME" not in output


def test_check_refuses_a_word_in_two_commands(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "textback.toml").write_text('[optout]\nstart_words = ["stop"]\n')
    result = CliRunner().invoke(main, ["check"], env=env)
    assert result.exit_code == 1
    assert result.output == (
        "textback: error: textback.toml: [optout]: start_words: 'stop' is a standard STOP "
        "word; a word can be one carrier command only\n"
    )


def test_check_in_production_without_token_fails(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["check"], env={**env, "TEXTBACK_MODE": "production"})
    assert result.exit_code == 1 and "TWILIO_AUTH_TOKEN is not set" in result.output


def test_db_upgrade_and_schema_behind(env: dict[str, str]) -> None:
    assert invoke(env, "db", "upgrade")[0] == 0
    code, output = invoke(env, "db", "current")
    engine = make_engine(env["DATABASE_URL"])
    head = head_revision(engine)
    assert code == 0 and f"current: {head}" in output
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    try:
        result = CliRunner().invoke(main, ["simulate", "Hello"], env=env)
        assert result.exit_code == 1
        assert "run `textback db upgrade`" in result.output
        code, output = invoke(env, "check")
        assert code == 1
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"UPDATE alembic_version SET version_num = '{head}'"))
        engine.dispose()


def textback(cwd: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TEXTBACK, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )


ServerStarter = Callable[[list[str], dict[str, str], int], str]


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerStarter]:
    """Start `textback ARGS` as a server process; returns its URL once it answers."""
    processes: list[subprocess.Popen[str]] = []

    def start(args: list[str], environ: dict[str, str], port: int) -> str:
        process = subprocess.Popen(
            [*TEXTBACK, *args], cwd=tmp_path, env=environ, stderr=subprocess.PIPE, text=True
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for(url, process)
        return url

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=20)


def test_run_then_simulate_against_it(tmp_path: Path, server_process: ServerStarter) -> None:
    port = free_port()
    environ = {**os.environ, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}
    url = server_process(["run", "--port", str(port)], environ, port)
    done = textback(tmp_path, environ, "simulate", "Hello", "--url", url + "/twilio")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello back to you!\n"
    forged = requests.post(
        url + "/twilio",
        data=inbound_form("Hello"),
        headers={"X-Twilio-Signature": sign("wrong", url + "/twilio", [])},
        timeout=10,
    )
    assert forged.status_code == 403


def test_serve_refuses_without_token(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "TEXTBACK_"))}
    done = textback(tmp_path, environ, "serve", "--bind", f"127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "TWILIO_AUTH_TOKEN is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_answers_signed_webhooks(tmp_path: Path, server_process: ServerStarter) -> None:
    port = free_port()
    environ = {
        **os.environ,
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TWILIO_AUTH_TOKEN": "prod-token",
        "TEXTBACK_PUBLIC_URL": "https://sms.example.com",
    }
    url = server_process(["serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"], environ, port)
    form = inbound_form("Hello")
    signature = sign("prod-token", "https://sms.example.com/twilio", form)
    answer = requests.post(
        url + "/twilio", data=form, headers={"X-Twilio-Signature": signature}, timeout=10
    )
    assert answer.status_code == 200 and "Hello back to you!" in answer.text
    wrong = sign("prod-token", url + "/twilio", form)
    assert (
        requests.post(
            url + "/twilio", data=form, headers={"X-Twilio-Signature": wrong}, timeout=10
        ).status_code
        == 403
    )
