"""``textback simulate``: one realistic, signed webhook, in-process or to a running server."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import requests

from textback.channel.e164 import e164
from textback.channel.forms import DEFAULT_FROM
from textback.channel.forms import DEFAULT_TO
from textback.channel.forms import inbound_form
from textback.channel.forms import signed_request
from textback.channel.twiml import parse_twiml
from textback.config import Settings
from textback.errors import ConfigError


def simulate(
    body: str,
    *,
    from_: str | None = None,
    to: str | None = None,
    media: Sequence[str] = (),
    url: str | None = None,
) -> tuple[int, str, str]:
    """Send ``body`` as Twilio would; returns (HTTP status, response text, reply text).

    The signature is made with the configured token (or the development token) for the URL
    Twilio would call: ``TEXTBACK_PUBLIC_URL`` + ``/twilio`` when set, else ``url``.
    """
    overrides = None if os.environ.get("TEXTBACK_MODE") else {"TEXTBACK_MODE": "development"}
    settings = Settings.load(overrides)
    token = settings.signing_token
    if token is None:
        raise ConfigError("no token to sign with: set TWILIO_AUTH_TOKEN")
    form = inbound_form(
        body,
        from_=e164(from_, settings.default_region) if from_ else DEFAULT_FROM,
        to=e164(to, settings.default_region) if to else DEFAULT_TO,
        media=[(m, "image/jpeg") for m in media],
    )
    if url is None:
        from textback.app import create_app

        # create_app's start-up warnings (the development token...) speak to whoever starts a
        # server; an in-process simulation starts none, and would print them with every reply.
        announcements = logging.getLogger("textback.app")
        level = announcements.level
        announcements.setLevel(logging.ERROR)
        try:
            app = create_app(overrides)
        finally:
            announcements.setLevel(level)
        public = (settings.public_url or "http://localhost") + "/twilio"
        payload, headers = signed_request(token, public, form)
        try:
            response = app.test_client().post("/twilio", data=payload, headers=headers)
            text = response.get_data(as_text=True)
            status = response.status_code
        finally:
            app.extensions["textback"].store.engine.dispose()
    else:
        public = settings.public_url + "/twilio" if settings.public_url else url
        payload, headers = signed_request(token, public, form)
        try:
            answer = requests.post(url, data=payload, headers=headers, timeout=20)
        except requests.RequestException as exc:
            raise ConfigError(f"cannot reach {url}: {exc}") from None
        text, status = answer.text, answer.status_code
    reply = "\n".join(t for t, _ in parse_twiml(text)) if status == 200 else ""
    return status, text, reply
