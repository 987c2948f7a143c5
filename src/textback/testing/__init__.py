"""A pytest plugin for testing textback bots: the ``phone`` fixture.

Installing textback registers it (entry point ``pytest11``). A test reads::

    def test_hello(phone):
        reply = phone.send("Hello", from_="+15550001111")
        assert reply.text == "Hello back to you!"

The app is built from your configuration (your ``textback.toml`` or ``TEXTBACK_RULES``, and the
``Bot`` your ``textback_bot`` fixture returns), with a throw-away database, and every message
goes through the real ``POST /twilio`` route with a real signature. ``textback.toml`` is looked
for in the current directory, then in pytest's root directory (where your ``pyproject.toml``
is), so ``pytest`` finds it from any folder of your project.

Besides ``send``, the phone has helpers for pictures (``mms``), the carrier words (``stop``,
``start``), delivery reports (``status``, ``report``), Twilio's retries (``replay``) and for
looking at what was stored (``messages``, ``is_opted_out``). A slow handler's reply is run
and delivered before ``send`` returns: its TwiML holds the ack, ``reply.followups`` the reply.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

if TYPE_CHECKING:
    from flask import Flask

    from textback.core.bot import Bot
    from textback.testing.fake_phone import Followup
    from textback.testing.fake_phone import Phone
    from textback.testing.fake_phone import PhoneReply

__all__ = ["TEST_TOKEN", "Followup", "Phone", "PhoneReply"]

TEST_TOKEN = "textback-test-token"
RULES_FILE = "textback.toml"


def __getattr__(name: str) -> Any:
    # Phone needs Flask and SQLAlchemy: loaded when a test uses it, not when pytest starts.
    if name in ("Followup", "Phone", "PhoneReply"):
        from textback.testing import fake_phone

        return getattr(fake_phone, name)
    raise AttributeError(f"module 'textback.testing' has no attribute {name!r}")


@pytest.fixture
def textback_config() -> dict[str, object]:
    """Override to add settings (the names of the environment variables) for the ``phone``."""
    return {}


@pytest.fixture
def textback_bot() -> Bot | None:
    """Override to return your ``Bot``, so the ``phone`` talks to your Python handlers too."""
    return None


def project_rules(root: Path) -> str | None:
    """The rules file a test run uses when TEXTBACK_RULES is not set.

    ``textback.toml`` in the current directory, as ``textback run`` finds it; else the one in
    pytest's root directory, so tests started from a subfolder use the project's rules too.
    """
    if os.environ.get("TEXTBACK_RULES") or Path(RULES_FILE).is_file():
        return None
    candidate = root / RULES_FILE
    return str(candidate) if candidate.is_file() else None


@pytest.fixture
def textback_app(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    textback_config: dict[str, object],
    textback_bot: Bot | None,
) -> Iterator[Flask]:
    """The app the ``phone`` talks to, with a throw-away SQLite database and a test token."""
    config: dict[str, object] = {
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'textback-test.db'}",
        "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        "TEXTBACK_MODE": "development",
    }
    rules = project_rules(request.config.rootpath)
    if rules:
        config["TEXTBACK_RULES"] = rules
    config.update(textback_config)
    from textback.app import create_app

    app = create_app(config, bot=textback_bot)
    yield app
    app.extensions["textback"].store.engine.dispose()


@pytest.fixture
def phone(textback_app: Flask) -> Phone:
    """A fake phone texting your textback app through its real, signed webhook."""
    from textback.testing.fake_phone import Phone

    settings = textback_app.extensions["textback"].settings
    return Phone(textback_app, settings.signing_token or TEST_TOKEN, public_url=settings.public_url)
