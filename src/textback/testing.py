"""A pytest plugin for testing textback bots: the ``phone`` fixture.

Installing textback registers it (entry point ``pytest11``). A test reads::

    def test_hello(phone):
        reply = phone.send("Hello", from_="+15550001111")
        assert reply.text == "Hello back to you!"

The app is built from your configuration (your ``textback.toml`` or ``TEXTBACK_RULES``, and the
``Bot`` your ``textback_bot`` fixture returns), with a throw-away database, and every message
goes through the real ``POST /twilio`` route with a real signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from .app import create_app
from .bot import Bot
from .simulator import DEFAULT_FROM
from .simulator import DEFAULT_TO
from .simulator import inbound_form
from .simulator import signed_request
from .simulator import status_form
from .twiml import parse_twiml

TEST_TOKEN = "textback-test-token"


@dataclass(frozen=True)
class PhoneReply:
    """What the server answered: HTTP status, the TwiML, and the messages in it."""

    status: int
    twiml: str
    messages: tuple[tuple[str, tuple[str, ...]], ...]
    sid: str

    @property
    def text(self) -> str:
        """The text of the reply (of all its messages, one per line); "" for no reply."""
        return "\n".join(text for text, _ in self.messages)

    @property
    def media(self) -> tuple[str, ...]:
        """The picture URLs in the reply."""
        return tuple(url for _, urls in self.messages for url in urls)


class Phone:
    """A fake phone that texts an app through its real webhook route, signing every request."""

    def __init__(self, app: Flask, token: str, *, public_url: str | None = None) -> None:
        self.app = app
        self.client = app.test_client()
        self.token = token
        self.base = public_url or "http://localhost"
        self.last_form: list[tuple[str, str]] = []

    def post(self, path: str, pairs: Sequence[tuple[str, str]], *, token: str | None = None) -> Any:
        """POST a signed form to ``path`` (signed with ``token``, the app's token by default)."""
        body, headers = signed_request(token or self.token, self.base + path, pairs)
        return self.client.post(path, data=body, headers=headers)

    def send(
        self,
        body: str,
        *,
        from_: str = DEFAULT_FROM,
        to: str = DEFAULT_TO,
        media: Sequence[tuple[str, str] | str] = (),
        sid: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> PhoneReply:
        """Text ``body`` to the app and return its reply."""
        pictures = [(m, "image/jpeg") if isinstance(m, str) else m for m in media]
        form = inbound_form(body, from_=from_, to=to, media=pictures, sid=sid, extra=extra)
        return self._deliver(form)

    def replay(self) -> PhoneReply:
        """Deliver the last message again, as Twilio does when it retries a webhook."""
        return self._deliver(self.last_form)

    def status(
        self, sid: str, status: str, *, reply_to: str | None = None, error_code: str | None = None
    ) -> int:
        """Post a delivery status callback; returns the HTTP status."""
        path = "/twilio/status" + (f"?for={reply_to}" if reply_to else "")
        response = self.post(path, status_form(sid, status, error_code=error_code))
        return int(response.status_code)

    def _deliver(self, form: list[tuple[str, str]]) -> PhoneReply:
        self.last_form = form
        response = self.post("/twilio", form)
        text = response.get_data(as_text=True)
        ok = response.status_code == 200
        sid = dict(form).get("MessageSid", "")
        return PhoneReply(response.status_code, text, parse_twiml(text) if ok else (), sid)


@pytest.fixture
def textback_config() -> dict[str, object]:
    """Override to add settings (the names of the environment variables) for the ``phone``."""
    return {}


@pytest.fixture
def textback_bot() -> Bot | None:
    """Override to return your ``Bot``, so the ``phone`` talks to your Python handlers too."""
    return None


@pytest.fixture
def textback_app(
    tmp_path: Path, textback_config: dict[str, object], textback_bot: Bot | None
) -> Iterator[Flask]:
    """The app the ``phone`` talks to, with a throw-away SQLite database and a test token."""
    config: dict[str, object] = {
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'textback-test.db'}",
        "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        "TEXTBACK_MODE": "development",
    }
    config.update(textback_config)
    app = create_app(config, bot=textback_bot)
    yield app
    app.extensions["textback"].store.engine.dispose()


@pytest.fixture
def phone(textback_app: Flask) -> Phone:
    """A fake phone texting your textback app through its real, signed webhook."""
    settings = textback_app.extensions["textback"].settings
    return Phone(textback_app, settings.signing_token or TEST_TOKEN, public_url=settings.public_url)
