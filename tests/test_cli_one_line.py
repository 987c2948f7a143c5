"""What the newer commands say to a mistake or a database that is down: one line on standard
error, no traceback, no SQLAlchemy paragraph."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from textback.cli import main

from .prism import ACCOUNT

DOWN = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1


@pytest.mark.parametrize(
    "args",
    [
        ["contacts"],
        ["contacts", "import", "{csv}"],
        ["contacts", "takeover", "+15550001111"],
        ["broadcast", "--group", "g", "--from", "+15559990000", "--yes", "Hi"],
        ["broadcasts"],
        ["start-flow", "signup", "--to", "+15550001111"],
        ["check"],
    ],
)
def test_a_database_that_is_down_is_one_line(tmp_path: Path, args: list[str]) -> None:
    people = tmp_path / "people.csv"
    people.write_text("phone,name\n+15550001111,Ann\n")
    env = {
        "DATABASE_URL": DOWN,
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "x" * 32,
    }
    result = CliRunner().invoke(main, [arg.format(csv=people) for arg in args], env=env)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("textback: error: cannot open the database")
    assert "Connection refused" in lines[0] and "sqlalche.me" not in lines[0]
