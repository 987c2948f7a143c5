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


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("phone,name\n+15550001111,Ren\xe9e\n".encode("latin-1"), "not UTF-8 text"),
        (b"\xff\xfep\x00h\x00o\x00n\x00e\x00", "not UTF-8 text"),
        (b"phone,name\n+15550001111," + b"x" * 200_000 + b"\n", "not a CSV file: field larger"),
    ],
)
def test_an_import_of_a_file_that_is_not_csv_text_is_one_line(
    tmp_path: Path, database_url: str, content: bytes, problem: str
) -> None:
    people = tmp_path / "people.csv"
    people.write_bytes(content)
    env = {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}
    result = CliRunner().invoke(main, ["contacts", "import", str(people)], env=env)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith(
        f"textback: error: {people}: {problem}"
    )


@pytest.mark.parametrize("at", ["9999-12-31T23:59-12:00", "0001-01-01T00:00+01:00"])
@pytest.mark.parametrize("command", ["broadcast", "send"])
def test_a_time_out_of_range_is_one_line(tmp_path: Path, at: str, command: str) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "x" * 32,
    }
    people = tmp_path / "people.csv"
    people.write_text("phone,name,groups\n+15550001111,Ann,g\n")
    assert CliRunner().invoke(main, ["contacts", "import", str(people)], env=env).exit_code == 0
    args = {
        "broadcast": ["broadcast", "Hi", "--group", "g", "--yes", "--no-wait"],
        "send": ["send", "+15550001111", "Hi"],
    }[command]
    result = CliRunner().invoke(main, [*args, "--from", "+15559990000", "--at", at], env=env)
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"textback: error: --at {at!r} is out of range: give one before the year 9999\n"
    )
