"""``textback init``: a project of one's own, whose own ``textback check`` and ``pytest`` pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from textback.cli.init import PROJECT_FILES
from textback.config import Settings

TEXTBACK = [sys.executable, "-m", "textback.cli"]
GO_LIVE = (
    "TWILIO_AUTH_TOKEN",
    "TEXTBACK_PUBLIC_URL",
    "DATABASE_URL",
    "TEXTBACK_SECRET_KEY",
    "TEXTBACK_ADMIN_PASSWORD",
    "TWILIO_ACCOUNT_SID",
)


def user_environment() -> dict[str, str]:
    """The environment without the developer's textback, Twilio and pytest settings."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEXTBACK_", "TWILIO_", "PYTEST_")) and name != "DATABASE_URL"
    }


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env={**user_environment(), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def textback(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run(cwd, *TEXTBACK, *args, **env)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    done = textback(tmp_path, "init", "mybot")
    assert done.returncode == 0, done.stderr
    return tmp_path / "mybot"


def test_init_writes_the_project_and_says_what_next(tmp_path: Path) -> None:
    done = textback(tmp_path, "init", "mybot")
    assert done.returncode == 0, done.stderr
    written = [f"mybot/{name}" for name, _ in PROJECT_FILES]
    assert done.stdout.splitlines() == [
        *(f"created {name}" for name in written),
        "next: cd mybot && textback run   (README.md has the next steps)",
    ]
    assert sorted(
        str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()
    ) == sorted(written)
    assert (tmp_path / "mybot" / "README.md").read_text().startswith("# mybot\n")


def test_init_without_a_folder_writes_here(tmp_path: Path) -> None:
    done = textback(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "created textback.toml"
    assert done.stdout.splitlines()[-1] == "next: textback run   (README.md has the next steps)"
    assert (tmp_path / "bot.py").is_file()


def test_the_projects_check_is_clean(project: Path) -> None:
    done = textback(project, "check", TEXTBACK_MODE="development")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert [line for line in lines if "warning" in line.lower()] == []
    assert "bot: bot:bot: 1 handler(s)" in lines
    assert lines[-1] == "ok"


def test_the_projects_own_tests_pass(project: Path) -> None:
    done = run(project, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^4 passed in ", done.stdout, re.MULTILINE), done.stdout


def test_the_projects_tests_fail_when_its_bot_does(project: Path) -> None:
    bot = project / "bot.py"
    bot.write_text(bot.read_text().replace("[::-1]", ""))
    done = run(project, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert done.returncode == 1
    assert "FAILED tests/test_bot.py::test_reverse" in done.stdout


def test_the_projects_bot_answers_from_its_folder(project: Path) -> None:
    done = textback(project, "simulate", "reverse drawer")
    assert (done.returncode, done.stdout, done.stderr) == (0, "reward\n", "")


RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed (the test extra)")
def test_the_projects_python_is_lint_clean(project: Path) -> None:
    done = run(project, str(RUFF), "check", "--isolated", "--select", "E,F,W,B,UP,SIM", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_init_twice_names_what_exists_and_changes_nothing(project: Path) -> None:
    before = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    done = textback(project.parent, "init", "mybot")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("textback: error: mybot: textback.toml, bot.py, ")
    assert "already exist; textback init never overwrites a file" in done.stderr
    assert {path: path.read_bytes() for path in project.rglob("*") if path.is_file()} == before


def test_init_writes_nothing_beside_a_users_own_file(tmp_path: Path) -> None:
    (tmp_path / "textback.toml").write_text("# mine\n")
    done = textback(tmp_path, "init")
    assert done.returncode == 1
    assert done.stderr == (
        "textback: error: textback.toml already exists; textback init never overwrites a "
        "file: give it a new folder\n"
    )
    assert [path.name for path in tmp_path.iterdir()] == ["textback.toml"]
    assert (tmp_path / "textback.toml").read_text() == "# mine\n"


def test_env_example_names_the_settings_for_going_live() -> None:
    text = (files("textback") / "project" / "env.example").read_text(encoding="utf-8")
    named = re.findall(r"^([A-Z_]+)=", text, re.MULTILINE)
    assert set(GO_LIVE) <= set(named)
    # each is a setting textback reads: a misspelt name would be silently ignored
    package = Path(str(files("textback")))
    source = "\n".join(path.read_text() for path in package.rglob("*.py"))
    assert [name for name in named if f'"{name}"' not in source] == []


def test_bot_py_in_the_folder_is_the_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.load(environ={}).bot_path is None
    (tmp_path / "bot.py").write_text("")
    assert Settings.load(environ={}).bot_path == "bot:bot"
    assert Settings.load(environ={"TEXTBACK_BOT": "other:bot"}).bot_path == "other:bot"
