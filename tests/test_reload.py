"""Live reload: the rules file and the bot as they are on disk, never a broken one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask import Flask

from tests.served import free_port
from textback.reloading import Reloader
from textback.testing import TEST_TOKEN
from textback.testing import Phone

RULES = '[[rule]]\nkeyword = "hours"\nreply = "{reply}"\n'


def touch_later(path: Path, seconds: int) -> None:
    """Give the file a clearly newer mtime (file systems may keep whole seconds only)."""
    stamp = time.time() + seconds
    os.utime(path, (stamp, stamp))


def test_a_changed_rules_file_is_answered_from_and_a_broken_one_refused(
    make_app: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.format(reply="9-5"))
    app = make_app(TEXTBACK_RULES=str(rules))
    phone = Phone(app, TEST_TOKEN)
    reloader = Reloader(app.extensions["textback"], bot_path=None)
    assert phone.send("hours").text == "9-5"
    assert reloader.check() is False  # nothing changed

    rules.write_text(RULES.format(reply="8-6"))
    touch_later(rules, 1)
    assert reloader.check() is True
    assert phone.send("hours").text == "8-6"

    rules.write_text('[[rule]]\nkeyword = "hours"\nrepyl = "oops"\n')
    touch_later(rules, 2)
    with caplog.at_level(logging.ERROR, logger="textback.reloading"):
        assert reloader.check() is False
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    (record,) = [r for r in errors if r.name == "textback.reloading"]
    assert (
        "the old ones stay" in record.getMessage() and "unknown key 'repyl'" in record.getMessage()
    )
    assert record.exc_info is None  # one line, no traceback
    assert phone.send("hours").text == "8-6"

    rules.write_text(RULES.format(reply="10-4"))
    touch_later(rules, 3)
    assert reloader.check() is True
    assert phone.send("hours").text == "10-4"


def test_a_rules_file_written_after_start_is_picked_up(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app()  # no TEXTBACK_RULES and no textback.toml in the folder (the tests' cwd)
    phone = Phone(app, TEST_TOKEN)
    reloader = Reloader(app.extensions["textback"], bot_path=None)
    assert phone.send("hours").text == "Hi! Not quite sure what you meant, but okay."
    (tmp_path / "textback.toml").write_text(RULES.format(reply="open now"))
    assert reloader.check() is True
    assert phone.send("hours").text == "open now"


def test_a_changed_bot_module_is_reloaded_and_a_failing_one_kept_out(
    make_app: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "reloadbot.py"
    source = "\n".join(
        [
            "from textback import Bot",
            "bot = Bot()",
            '@bot.on("ping")',
            "def ping(msg):",
            '    return "{0}"',
            "",
        ]
    )
    module.write_text(source.format("pong"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "reloadbot", raising=False)
    app = make_app(TEXTBACK_BOT="reloadbot:bot")
    phone = Phone(app, TEST_TOKEN)
    reloader = Reloader(app.extensions["textback"], bot_path="reloadbot:bot")
    assert phone.send("ping").text == "pong"

    module.write_text(source.format("PONG"))
    touch_later(module, 1)
    assert reloader.check() is True
    assert phone.send("ping").text == "PONG"

    module.write_text(source.format("x") + "raise RuntimeError('half-written')\n")
    touch_later(module, 2)
    assert reloader.check() is False
    assert phone.send("ping").text == "PONG"


def simulate(cwd: Path, env: dict[str, str], url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "textback.cli", "simulate", "hours", "--url", url],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def eventually(read: Callable[[], str], expected: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    seen = read()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.3)
        seen = read()
    return seen


def test_textback_run_answers_from_the_file_as_it_is_now(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEXTBACK_", "TWILIO_")) and key != "DATABASE_URL"
    }
    env["TEXTBACK_INSTANCE"] = str(tmp_path / "instance")
    server = subprocess.Popen(
        [sys.executable, "-m", "textback.cli", "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, "textback run exited"
            try:
                requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "textback run did not answer"
                time.sleep(0.2)
        webhook = f"{url}/twilio"
        assert simulate(tmp_path, env, webhook) == "Hi! Not quite sure what you meant, but okay."
        rules = tmp_path / "textback.toml"
        rules.write_text(RULES.format(reply="We're open 9-5."))
        read = lambda: simulate(tmp_path, env, webhook)  # noqa: E731
        assert eventually(read, "We're open 9-5.") == "We're open 9-5."
        rules.write_text('[[rule]]\nkeyword = "hours"\n')  # no reply: does not pass check
        touch_later(rules, 5)
        time.sleep(2)  # four times the watch interval
        assert simulate(tmp_path, env, webhook) == "We're open 9-5."
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    assert "the rules were not reloaded, the old ones stay" in stderr
    assert "Traceback" not in stderr
