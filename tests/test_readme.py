"""The README's tour, run as a new user runs it: its promises are what the commands print.

The ``console`` blocks of the "A five-minute tour" section are read from README.md itself: each
``$ `` line is a command, the lines after it what it prints (stdout and stderr, as a terminal
shows them). The commands run one after the other in a scratch folder, in a shell, with the
installed ``textback`` and ``pytest`` first on the PATH and none of the developer's settings.
A command naming ``127.0.0.1:5000`` gets a ``textback run`` served on a free port instead.
Only what truly varies is normalised: times, durations, SIDs, the port and the scratch path.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from importlib.resources import files
from pathlib import Path

import pytest
import requests

from tests.served import free_port

README = Path(__file__).resolve().parents[1] / "README.md"
TOUR = "## A five-minute tour"
README_PORT = "127.0.0.1:5000"
README_HOME = "/home/you"  # where the README's user runs the tour
PROJECT = files("textback") / "project"
VARIES = (
    (re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"\bin \d+\.\d+s\b"), "in <seconds>"),
    (re.compile(r"\b(SM|MM)[0-9a-f]{32}\b"), r"\1<sid>"),
)


@dataclass
class Command:
    """One ``$ `` line of a console block and the lines the README shows it printing."""

    line: str
    printed: list[str] = field(default_factory=list)


def tour_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(TOUR)
    end = text.find("\n## ", start + len(TOUR))
    return text[start : end if end != -1 else len(text)]


def fenced_blocks(text: str, language: str) -> list[str]:
    """The contents of the ```language fenced blocks of ``text``, in order."""
    pattern = re.compile(rf"^```{re.escape(language)}\n(.*?)^```$", re.MULTILINE | re.DOTALL)
    return [match.group(1) for match in pattern.finditer(text)]


def tour_commands() -> list[Command]:
    commands: list[Command] = []
    for block in fenced_blocks(tour_section(), "console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(Command(line[2:]))
            elif not commands:
                raise AssertionError(f"a console block in the tour starts without `$ `: {line!r}")
            else:
                commands[-1].printed.append(line)
    return commands


def normalised(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, replacement in VARIES:
            line = pattern.sub(replacement, line)
        out.append(line.rstrip())
    return out


def user_environment(home: Path) -> dict[str, str]:
    """A shell's environment with the installed textback first on the PATH, and none of the
    developer's textback, Twilio or pytest settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEXTBACK_", "TWILIO_", "PYTEST_")) and name != "DATABASE_URL"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["COLUMNS"] = "80"  # pytest's progress line is as wide as the terminal
    return env


class Tour:
    """The scratch folder the tour runs in, its current folder and its server, if any."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.cwd = home
        self.env = user_environment(home)
        self.server: subprocess.Popen[str] | None = None
        self.port = 0

    def run(self, line: str) -> list[str]:
        """Run one command line as the user would; what it printed, normalised."""
        words = shlex.split(line, comments=True)
        if words[0] == "cd":
            self.cwd = (self.cwd / words[1]).resolve()
            return []
        if README_PORT in line:
            line = line.replace(README_PORT, f"127.0.0.1:{self.serve()}")
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
            check=False,
        )
        printed = done.stdout.replace(str(self.home), README_HOME)
        if self.port:
            printed = printed.replace(f"127.0.0.1:{self.port}", README_PORT)
        return normalised(printed.splitlines())

    def serve(self) -> int:
        """`textback run` in the current folder, started the first time the tour needs it."""
        if self.server is None:
            self.port = free_port()
            self.server = subprocess.Popen(
                ["textback", "run", "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_for(f"http://127.0.0.1:{self.port}/", self.server)
        return self.port

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.communicate(timeout=30)


def wait_for(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"textback run exited: {stderr}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def tour(tmp_path: Path) -> Iterator[Tour]:
    home = tmp_path / "you"
    home.mkdir()
    running = Tour(home)
    yield running
    running.close()


def test_the_tour_has_commands_to_check() -> None:
    lines = [command.line for command in tour_commands()]
    assert lines[0] == "textback init mybot"
    assert any(README_PORT in line for line in lines)  # one step talks to a served textback


def test_the_tour_prints_what_the_readme_shows(tour: Tour) -> None:
    drift = []
    for command in tour_commands():
        shown = normalised(command.printed)
        printed = tour.run(command.line)
        if printed != shown:
            diff = difflib.unified_diff(shown, printed, "README.md", "printed", lineterm="", n=1)
            drift.append(f"$ {command.line}\n" + "\n".join(diff))
    if drift:
        pytest.fail(
            "the README's tour differs from what its commands print:\n\n" + "\n\n".join(drift),
            pytrace=False,
        )


@pytest.mark.parametrize(
    ("language", "template"),
    [("toml", "textback.toml"), ("python", "bot.py.txt"), ("python", "test_bot.py.txt")],
)
def test_the_tours_files_are_what_textback_init_writes(language: str, template: str) -> None:
    written = (PROJECT / template).read_text(encoding="utf-8")
    shown = fenced_blocks(tour_section(), language)
    assert any(written.startswith(block) for block in shown), (
        f"the tour shows no {language} block that {template} starts with"
    )
