"""A start loads only what answering needs: Alembic when the schema must change, limits at the
first admin login, granian only under ``textback serve``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from textback.storage.engine import head_revision
from textback.storage.engine import listed_head
from textback.storage.engine import make_engine

# What `textback run` used to load at every start without needing it for the first answer.
# (The outbox's queue and the twilio client, huey and requests, are loaded at start by the
# journal's module, web/journaling.py, for now.)
LAZY = ("alembic", "mako", "limits", "granian")

START = """
import sys
from textback.app import create_app
from textback.cli.serving import embedded_worker

app = create_app()
embedded_worker(app)  # no credentials: says so, loads no twilio client
client = app.test_client()
answer = client.get("/")
assert answer.text == "It works!\\n", (answer.status, answer.text)
print(" ".join(name for name in {lazy!r} if name in sys.modules))
"""


def start(tmp_path: Path) -> list[str]:
    """The lazy modules a development start (with its outbox check) loaded, in a new process."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWILIO_", "TEXTBACK_", "DATABASE_"))
    }
    environ.update(TEXTBACK_MODE="development", DATABASE_URL=f"sqlite:///{tmp_path / 'tb.db'}")
    done = subprocess.run(
        [sys.executable, "-c", START.format(lazy=LAZY)],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_start_on_an_up_to_date_database_loads_none_of_the_lazy_parts(tmp_path: Path) -> None:
    assert start(tmp_path) == ["alembic", "mako"]  # the first start creates the schema
    assert start(tmp_path) == []


def test_the_listed_head_is_alembics() -> None:
    engine = make_engine("sqlite://")
    assert listed_head() == head_revision(engine) is not None


def migration(revision: str, down: str, *, annotated: bool = False) -> str:
    types = (": str", ": str | None") if annotated else ("", "")
    return f'"""a step"""\nrevision{types[0]} = {revision}\ndown_revision{types[1]} = {down}\n'


@pytest.mark.parametrize(
    ("files", "head"),
    [
        ({"1.py": migration('"a"', "None"), "2.py": migration('"b"', "'a'")}, "b"),
        ({"1.py": migration('"a"', "None"), "2.py": migration("'b'", '"a"', annotated=True)}, "b"),
        ({"1.py": migration('"a"', "None"), "__init__.py": ""}, "a"),
        # two heads, or a merge Alembic knows better: Alembic decides
        ({"1.py": migration('"a"', "None"), "2.py": migration('"b"', "None")}, None),
        (
            {
                "1.py": migration('"a"', "None"),
                "2.py": migration('"b"', "'a'"),
                "3.py": migration('"c"', "'a'"),
                "4.py": migration('"d"', "('b', 'c')"),
            },
            "d",
        ),
        ({"1.py": migration("make_id()", "None")}, None),
    ],
)
def test_listed_head_reads_the_revision_lines(
    tmp_path: Path, files: dict[str, str], head: str | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert listed_head(tmp_path) == head
