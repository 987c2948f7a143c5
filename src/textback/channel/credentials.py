"""The credentials for Twilio's REST API in the settings, checked without loading the twilio
client: a server that has none (``textback run`` in a fresh checkout) says so and starts quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

from textback.config import Settings
from textback.errors import ConfigError


@dataclass(frozen=True)
class RestCredentials:
    """Who textback is to the REST API: an API key pair, or the account SID and auth token."""

    username: str
    password: str
    account_sid: str


def rest_credentials(settings: Settings) -> RestCredentials:
    """The configured credentials; ConfigError (saying what to set) when they are missing.

    An API key pair wins over the auth token. The development token is never a credential.
    """
    account = settings.account_sid
    if not account:
        raise ConfigError(
            "TWILIO_ACCOUNT_SID is not set: Twilio's REST API needs the account SID (AC...) "
            "and TWILIO_AUTH_TOKEN, or an API key pair (TWILIO_API_KEY, TWILIO_API_SECRET)"
        )
    if settings.api_key_sid and settings.api_key_secret:
        return RestCredentials(settings.api_key_sid, settings.api_key_secret, account)
    if settings.auth_tokens and not settings.dev_token:
        return RestCredentials(account, settings.auth_tokens[0], account)
    raise ConfigError(
        "no credentials for Twilio's REST API: set TWILIO_AUTH_TOKEN, or an API key pair "
        "(TWILIO_API_KEY and TWILIO_API_SECRET)"
    )
