"""Numbers as people type them become E.164 before textback looks them up or sends (issue 11)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from textback.channel.e164 import e164
from textback.cli import main
from textback.config import Settings
from textback.errors import ConfigError
from textback.errors import InvalidNumber

from .prism import ACCOUNT
from .prism import cli_env
from .prism import prism  # noqa: F401
from .prism import run_cli
from .test_twilio_api import FakeTwilio
from .test_twilio_api import created_message
from .test_twilio_api import fake_twilio  # noqa: F401


@pytest.mark.parametrize(
    ("typed", "region", "number"),
    [
        ("(808) 925-5327", "US", "+18089255327"),
        ("808.925.5327", "US", "+18089255327"),
        ("5550001111", "US", "+15550001111"),  # 555 numbers are fiction, and still possible
        ("+1 555 000 1111", "US", "+15550001111"),
        ("+15550001111", "GB", "+15550001111"),  # a + number ignores the region
        ("020 7183 8750", "GB", "+442071838750"),
        ("020 7183 8750", "gb", "+442071838750"),
        ("whatsapp:(415) 555-0100", "US", "whatsapp:+14155550100"),
        ("12345", "US", "12345"),  # a short code stays as it is
    ],
)
def test_numbers_become_e164(typed: str, region: str, number: str) -> None:
    assert e164(typed, region) == number


@pytest.mark.parametrize("typed", ["", "hello", "12", "5550001", "+999123", "020 7183 8750"])
def test_what_cannot_be_a_number_is_a_clear_error(typed: str) -> None:
    with pytest.raises(InvalidNumber) as caught:
        e164(typed, "US")
    assert str(caught.value).startswith(f"{typed!r} is not a")
    assert str(caught.value).endswith("TEXTBACK_DEFAULT_REGION=US")


def test_default_region_setting() -> None:
    assert Settings.load(environ={}).default_region == "US"
    assert Settings.load({"TEXTBACK_DEFAULT_REGION": "gb"}, environ={}).default_region == "GB"
    with pytest.raises(ConfigError, match="TEXTBACK_DEFAULT_REGION='XX': give a two-letter"):
        Settings.load({"TEXTBACK_DEFAULT_REGION": "xx"}, environ={})


# --- the commands -------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}


def invoke(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_simulate_and_messages_read_national_numbers(env: dict[str, str]) -> None:
    invoke(env, "simulate", "Hello", "--from", "(555) 000-2222", "--to", "555.999.0000")
    code, output = invoke(env, "messages", "--contact", "5550002222", "--json")
    assert code == 0
    records = [json.loads(line) for line in output.splitlines()]
    assert [(r["direction"], r["from"], r["to"]) for r in records] == [
        ("inbound", "+15550002222", "+15559990000"),
        ("outbound", "+15559990000", "+15550002222"),
    ]


def test_messages_with_a_number_in_another_region(env: dict[str, str]) -> None:
    british = {**env, "TEXTBACK_DEFAULT_REGION": "GB"}
    invoke(british, "simulate", "Hi", "--from", "07700 900123")
    code, output = invoke(british, "messages", "--contact", "07700 900123")
    assert code == 0 and output.count("+447700900123") == 2


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["messages", "--contact", "12"], "'12' is not a whole phone number"),
        (["messages", "--limit", "0"], "0 is not in the range x>=1"),
        (["messages", "--limit", "-1"], "-1 is not in the range x>=1"),
        (["simulate", "hi", "--from", "hello"], "'hello' is not a phone number"),
    ],
)
def test_bad_numbers_and_limits_are_refused(
    env: dict[str, str], args: list[str], problem: str
) -> None:
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code in (1, 2)
    assert problem in result.output
    assert "Traceback" not in result.output


def test_limit_keeps_the_latest(env: dict[str, str]) -> None:
    invoke(env, "simulate", "one")
    invoke(env, "simulate", "two")
    code, output = invoke(env, "messages", "--limit", "1")
    assert code == 0 and len(output.splitlines()) == 1


def test_send_reads_national_numbers(
    env: dict[str, str],
    fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio],  # noqa: F811
) -> None:
    fake = fake_twilio(201, created_message("SM" + "8" * 32))
    env = {**env, "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "secret-token"}
    code, output = invoke(env, "send", "(555) 000-1111", "Hi", "--from", "555-999-0000")
    assert code == 0, output
    assert (fake.requests[0]["data"]["To"], fake.requests[0]["data"]["From"]) == (
        "+15550001111",
        "+15559990000",
    )


def test_send_refuses_a_bad_number_before_any_request(
    env: dict[str, str],
    fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio],  # noqa: F811
) -> None:
    fake = fake_twilio(201, created_message("SM" + "9" * 32))
    env = {**env, "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "secret-token"}
    result = CliRunner().invoke(main, ["send", "555-1", "Hi", "--from", "+15559990000"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("textback: error: '555-1' is not a whole phone number")
    assert fake.requests == []


@pytest.mark.prism
def test_configure_number_in_national_format_as_the_docs_show(
    prism: str,  # noqa: F811
    database_url: str,
) -> None:
    # docs/going-live.md: Prism's example account owns +18089255327.
    result = run_cli(
        ["configure-number", "(808) 925-5327", "--url", "https://ab12.ngrok.app"],
        cli_env(prism, database_url),
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "+18089255327: messages now go to https://ab12.ngrok.app/twilio\n"
    )
