"""docs/going-live.md's Python example runs as written (issue 11: "the docs' own example")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from textback.cli import main

from .prism import ACCOUNT
from .test_twilio_api import FakeTwilio
from .test_twilio_api import created_message
from .test_twilio_api import fake_twilio  # noqa: F401

DOC = Path(__file__).resolve().parent.parent / "docs" / "going-live.md"


def python_example() -> str:
    """The one ```python block of the page."""
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    return str(block)


def test_the_send_example_runs(
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio],  # noqa: F811
) -> None:
    for name, value in {
        "DATABASE_URL": database_url,
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "secret-token",
    }.items():
        monkeypatch.setenv(name, value)
    # The example sends from the number the recipient last texted: let them text first.
    texted = CliRunner().invoke(
        main, ["simulate", "hi", "--from", "(415) 555-0123", "--to", "+14155550100"]
    )
    assert texted.exit_code == 0, texted.output
    fake = fake_twilio(201, created_message("SM" + "a1" * 16))
    scope: dict[str, Any] = {}
    exec(python_example(), scope)
    assert (scope["sid"], scope["status"]) == ("SM" + "a1" * 16, "queued")
    data = fake.requests[0]["data"]
    assert (data["To"], data["From"], data["Body"]) == (
        "+14155550123",
        "+14155550100",
        "Your table is ready",
    )
    scope["store"].engine.dispose()
