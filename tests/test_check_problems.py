"""`textback check` says what is wrong with the user's bot or rules in one line (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from textback.app import import_bot
from textback.cli import main

TEXTBACK = [sys.executable, "-m", "textback.cli"]


def check(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`textback check` as a user runs it, in ``tmp_path``; stdout and stderr together."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEXTBACK_", "TWILIO_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.db'}",
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        **settings,
    }
    return subprocess.run(
        [*TEXTBACK, "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


BAD_BOTS = {
    "unknown parameter": (
        "from textback import Bot\nbot = Bot()\n\n\n@bot.on('x')\ndef x(msg, foo):\n"
        "    return 'x'\n",
        "TEXTBACK_BOT='{module}:bot': handler 'x' ({module}.py:5): unknown parameter 'foo'; "
        "after the message a handler may ask for match, conversation and contact",
    ),
    "raises on import": (
        "from textback import Bot\nbot = Bot()\nlimit = int('ten')\n",
        "TEXTBACK_BOT='{module}:bot': importing '{module}' failed: ValueError: invalid literal "
        "for int() with base 10: 'ten' ({module}.py:3)",
    ),
    "syntax error": (
        "from textback import Bot\nbot = Bot(\n",
        "TEXTBACK_BOT='{module}:bot': importing '{module}' failed: SyntaxError: '(' was never "
        "closed ({module}.py, line 2)",
    ),
    "missing import": (
        "import textback_no_such_module\n",
        "TEXTBACK_BOT='{module}:bot': cannot import '{module}': "
        "No module named 'textback_no_such_module'",
    ),
    "not a bot": (
        "bot = 'hello'\n",
        "TEXTBACK_BOT='{module}:bot': 'bot' in '{module}' is not a Bot but str "
        "(make one with bot = Bot())",
    ),
    "no such name": (
        "from textback import Bot\nrobot = Bot()\n",
        "TEXTBACK_BOT='{module}:bot': '{module}' has no 'bot'",
    ),
}


def test_an_unknown_parameter_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    source, expected = BAD_BOTS["unknown parameter"]
    (tmp_path / "brokenbot.py").write_text(source)
    result = check(tmp_path, TEXTBACK_BOT="brokenbot:bot")  # a real process: what a user sees
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "textback: error: " + expected.format(module="brokenbot") + "\n"


@pytest.mark.parametrize("case", list(BAD_BOTS))
def test_a_broken_bot_is_one_line(tmp_path: Path, case: str) -> None:
    source, expected = BAD_BOTS[case]
    module = "brokenbot_" + case.replace(" ", "_")  # imported once per test session
    (tmp_path / f"{module}.py").write_text(source)
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.db'}",
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TEXTBACK_BOT": f"{module}:bot",
    }
    result = CliRunner().invoke(main, ["check"], env=env, catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "textback: error: " + expected.format(module=module) + "\n"


def test_a_good_bot_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "goodbot_all_parameters.py").write_text(
        "from textback import Bot\nbot = Bot()\n\n@bot.on('x')\ndef x(msg, match, conversation):"
        "\n    return 'x'\n"
    )
    assert len(import_bot("goodbot_all_parameters:bot").routes) == 1
