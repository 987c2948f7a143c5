"""The Makefile's two commands: `make run` installs only what running needs, `make test` the
test extra too, both with uv when it can be had and pip otherwise (read from `make -n`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(tmp_path: Path, *args: str) -> list[str]:
    """The commands `make ARGS` would run for a fresh virtualenv in tmp_path."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *args, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def installs(lines: list[str]) -> list[str]:
    return [line for line in lines if "uv pip install" in line]


def test_run_installs_what_running_needs_only(tmp_path: Path) -> None:
    lines = planned(tmp_path, "run", "PORT=5123")
    [install] = installs(lines)
    assert "pip install --quiet -e ." in install  # the pip fallback installs the same
    assert "[test]" not in install
    assert lines[-1] == f"{tmp_path}/venv/bin/textback run --port 5123 "


def test_test_adds_the_test_extra(tmp_path: Path) -> None:
    [install] = installs(planned(tmp_path, "lint"))
    assert "-e '.[test]'" in install


def test_uv_first_then_pip(tmp_path: Path) -> None:
    [install] = installs(planned(tmp_path, "run"))
    assert install.index("install --quiet uv") < install.index("uv pip install")
    assert install.index("uv pip install") < install.index("uv is not available")
