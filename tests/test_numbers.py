"""``textback configure-number`` against Prism serving Twilio's API description."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from textback.cli import main

from .ngrok import ngrok_agent  # noqa: F401
from .ngrok import tunnel
from .prism import ACCOUNT
from .prism import cli_env
from .prism import prism  # noqa: F401
from .prism import run_cli


def prism_number(base: str) -> dict[str, Any]:
    """The number Prism's example account owns, as the API lists it."""
    answer = requests.get(
        f"{base}/2010-04-01/Accounts/{ACCOUNT}/IncomingPhoneNumbers.json",
        auth=(ACCOUNT, "secret-token"),
        timeout=10,
    )
    number: dict[str, Any] = answer.json()["incoming_phone_numbers"][0]
    return number


@pytest.mark.prism
def test_configure_number_prints_old_and_new_values(
    prism: str,  # noqa: F811
    database_url: str,
) -> None:
    number = prism_number(prism)
    result = run_cli(
        ["configure-number", number["phone_number"], "--url", "https://abc.ngrok.app/"],
        cli_env(prism, database_url),
    )
    assert result.exit_code == 0, result.output
    before = number["sms_url"] or "(empty)"
    assert f"SmsUrl: https://abc.ngrok.app/twilio  (was: {before})" in result.output
    before = number["status_callback"] or "(empty)"
    assert f"StatusCallback: https://abc.ngrok.app/twilio/status  (was: {before})" in result.output
    assert "TEXTBACK_PUBLIC_URL=https://abc.ngrok.app" in result.output
    warned = "unable to receive SMS" in result.output
    assert warned is not number["capabilities"]["sms"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--url", "https://a.example", "--tunnel"], "not both"),
        ([], "no public URL"),
        (["--url", "ftp://a.example"], "is not a public URL"),
    ],
)
def test_configure_number_needs_one_public_url(
    database_url: str, args: list[str], problem: str
) -> None:
    env = cli_env("http://127.0.0.1:9", database_url)
    result = CliRunner().invoke(main, ["configure-number", "+15559990000", *args], env=env)
    assert result.exit_code != 0
    assert problem in result.output


@pytest.mark.prism
def test_configure_unknown_number_lists_the_accounts_numbers(
    prism: str,  # noqa: F811
    database_url: str,
) -> None:
    owned = prism_number(prism)["phone_number"]
    unknown = "+15550009999" if owned != "+15550009999" else "+15550008888"
    result = CliRunner().invoke(
        main,
        ["configure-number", unknown, "--url", "https://abc.ngrok.app"],
        env=cli_env(prism, database_url),
    )
    assert result.exit_code == 1
    assert f"{unknown} is not a number of account {ACCOUNT} (its numbers: {owned})" in (
        result.output
    )


@pytest.mark.prism
def test_configure_number_with_tunnel(
    prism: str,  # noqa: F811
    database_url: str,
    ngrok_agent: Callable[[list[dict[str, Any]]], str],  # noqa: F811
) -> None:
    api = ngrok_agent([tunnel("https://cafe.ngrok.app", "https")])
    number = prism_number(prism)["phone_number"]
    result = run_cli(
        ["configure-number", number, "--tunnel"],
        cli_env(prism, database_url, TEXTBACK_NGROK_API=api),
    )
    assert result.exit_code == 0, result.output
    assert f"{number}: messages now go to https://cafe.ngrok.app/twilio" in result.output
