"""The Makefile's two commands: `make run` installs only what running needs, `make test` the
test extra too, both with uv when it can be had and pip otherwise (read from `make -n`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


FAKE_UV = """#!/bin/sh
echo "$0 $*" >> "{log}"
"""


def fake_uv(path: Path, log: Path) -> Path:
    """A `uv` that only writes down how it was called."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_UV.format(log=log))
    path.chmod(0o755)
    return path


def install_run_deps(tmp_path: Path, path: str, **variables: str | Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(
        ["make", "--no-print-directory", f"VENV={venv}", f"{venv}/.installed-run"]
        + [f"{name}={value}" for name, value in variables.items()],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_the_uv_on_path_is_used(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    uv = fake_uv(tmp_path / "bin" / "uv", log)
    install_run_deps(tmp_path, f"{uv.parent}:{os.environ['PATH']}", UV_COPY=tmp_path / "none")
    assert (
        log.read_text()
        == f"{uv} pip install --quiet --python {tmp_path}/venv/bin/python pip -e .\n"
    )
    assert not (tmp_path / "venv" / "bin" / "uv").exists()


def test_a_kept_copy_of_uv_is_used_before_fetching_one(tmp_path: Path) -> None:
    python = Path(sys.base_prefix) / "bin" / "python3"  # outside this virtualenv and its uv
    path = f"{python.parent}:/usr/bin:/bin"
    if shutil.which("uv", path=path):
        pytest.skip(f"a uv is installed in {path}")
    log = tmp_path / "calls"
    kept = fake_uv(tmp_path / "cache" / "uv", log)
    install_run_deps(tmp_path, path, UV_COPY=kept, PYTHON=python)
    venv_uv = tmp_path / "venv" / "bin" / "uv"
    assert venv_uv.read_text() == kept.read_text()
    assert (
        log.read_text()
        == f"{venv_uv} pip install --quiet --python {tmp_path}/venv/bin/python pip -e .\n"
    )
