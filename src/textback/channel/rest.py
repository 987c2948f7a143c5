"""Twilio's REST API, through twilio's own ``Client``, and sending a message with it.

Credentials come from the settings: ``TWILIO_ACCOUNT_SID`` with ``TWILIO_AUTH_TOKEN``, or an API
key pair (``TWILIO_API_KEY``, ``TWILIO_API_SECRET``) with the account SID. ``TWILIO_API_BASE_URL``
sends every request to another Twilio-compatible API (a mock such as Prism, or a compatible
provider) by rewriting the scheme and host of each request URL in an ``http_client`` of ours;
the twilio library itself is left as it is.

Whatever Twilio refuses becomes a TwilioApiError with one clear line; error 21610 (the recipient
has replied STOP) also marks the contact opted out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from typing import TypeVar
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from textback.channel.credentials import rest_credentials
from textback.config import Settings
from textback.errors import ConfigError
from textback.errors import TextbackError

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
OPTED_OUT = 21610
BAD_CREDENTIALS = 20003
NOT_FOUND = 20404
REQUEST_TIMEOUT = 30.0
T = TypeVar("T")


class TwilioApiError(TextbackError):
    """Twilio (or the API in TWILIO_API_BASE_URL) refused or could not be reached: one line."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio's HTTP client, sending each request to ``base_url`` instead of Twilio's host.

    The path and query are kept, so ``https://api.twilio.com/2010-04-01/Accounts/...`` becomes
    ``http://127.0.0.1:4010/2010-04-01/Accounts/...`` for a base of ``http://127.0.0.1:4010``.
    A base with a path (``https://proxy.example/twilio``) prefixes it.
    """

    def __init__(self, base_url: str, *, timeout: float = REQUEST_TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self.base = urlsplit(base_url.rstrip("/"))

    def rewrite(self, url: str) -> str:
        """``url`` with the scheme and host (and path prefix) of the base URL."""
        parts = urlsplit(url)
        return urlunsplit(
            parts._replace(
                scheme=self.base.scheme,
                netloc=self.base.netloc,
                path=self.base.path + parts.path,
            )
        )

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """Make the request twilio asked for, at the base URL."""
        return super().request(method, self.rewrite(url), *args, **kwargs)

    @property
    def last_response(self) -> Response | None:
        """The last response received (twilio keeps it under a test-only name)."""
        return getattr(self, "_test_only_last_response", None)


def http_client_for(settings: Settings) -> BaseUrlHttpClient:
    """The HTTP client for the API in ``settings.api_base_url``."""
    base = settings.api_base_url or TWILIO_API
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
        raise ConfigError(
            f"TWILIO_API_BASE_URL={base!r}: give the scheme and host of the API, like {TWILIO_API}"
        )
    return BaseUrlHttpClient(base)


def rest_client(settings: Settings, http_client: TwilioHttpClient | None = None) -> Client:
    """A twilio ``Client`` for the configured account; ConfigError when credentials are missing
    (rest_credentials)."""
    credentials = rest_credentials(settings)
    return Client(
        credentials.username,
        credentials.password,
        account_sid=credentials.account_sid,
        http_client=http_client or http_client_for(settings),
        environment={},  # everything comes from the settings, not twilio's own variables
    )


def _problem_detail(client: Client) -> str:
    """The explanation a non-Twilio error body carries (Prism's ``detail`` and validation)."""
    response = getattr(client.http_client, "last_response", None)
    if response is None:
        return ""
    try:
        payload = json.loads(response.text)
    except (TypeError, ValueError):
        return ""
    if not isinstance(payload, dict) or "code" in payload:
        return ""
    problems = [
        str(item.get("message"))
        for item in payload.get("validation") or []
        if isinstance(item, dict) and item.get("message")
    ]
    detail = "; ".join(problems) or str(payload.get("detail") or payload.get("title") or "")
    return detail


def explain(exc: TwilioRestException, settings: Settings, detail: str = "") -> str:
    """One line saying what Twilio refused and what to do about it."""
    status = int(exc.status or 0)
    code = int(exc.code) if isinstance(exc.code, int) else None
    where = f" (HTTP {status}" + (f", error {code})" if code and code != status else ")")
    message = str(exc.msg or "").split(": ", 1)[-1].strip().rstrip(".")
    if detail:
        message = detail.rstrip(".")
    if status == 401 or code == BAD_CREDENTIALS:
        who = "TWILIO_API_KEY/TWILIO_API_SECRET" if settings.api_key_sid else "TWILIO_AUTH_TOKEN"
        return (
            f"{settings.api_base_url} refused the credentials{where}: "
            f"check TWILIO_ACCOUNT_SID and {who}"
        )
    if code == OPTED_OUT:
        return (
            f"the recipient has replied STOP to this number, so Twilio will not message them{where}"
            "; they are marked opted out until they text START"
        )
    if status == 404 or code == NOT_FOUND:
        return f"not found{where}: {message or exc.uri}"
    more = f" - {exc.more_info}" if getattr(exc, "more_info", None) else ""
    return f"Twilio refused the request{where}: {message or 'no explanation given'}{more}"


def call(client: Client, settings: Settings, action: Callable[[], T]) -> T:
    """Run ``action`` against the API; failures become TwilioApiError."""
    try:
        return action()
    except TwilioRestException as exc:
        line = explain(exc, settings, _problem_detail(client))
        code = int(exc.code) if isinstance(exc.code, int) else None
        raise TwilioApiError(line, status=exc.status, code=code) from None
    except TwilioException as exc:
        raise TwilioApiError(f"Twilio's API failed: {' '.join(str(exc).split())}") from None
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise TwilioApiError(f"cannot reach {settings.api_base_url}: {reason}") from None
