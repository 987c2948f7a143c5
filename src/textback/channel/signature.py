"""Twilio webhook signatures: the public URL Twilio called, and the check of X-Twilio-Signature.

The HMAC itself is twilio's ``RequestValidator.compute_signature``; this module decides which URL
and which tokens to try, and compares in constant time. No Flask here.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from urllib.parse import quote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from twilio.request_validator import RequestValidator
from twilio.request_validator import get_signature_algorithm

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FormParams(dict[str, list[str]]):
    """Form parameters with every value of a repeated key, in the shape RequestValidator reads."""

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> FormParams:
        params = cls()
        for key, value in pairs:
            params.setdefault(key, []).append(value)
        return params

    def getall(self, name: str) -> list[str]:
        """All values of ``name`` (the method RequestValidator looks for first)."""
        return self[name]


def public_url(base: str, path: str, query_string: str = "") -> str:
    """The URL Twilio called: a configured public base plus the request's path and raw query.

    ``base`` is ``TEXTBACK_PUBLIC_URL`` (``https://abc.ngrok.app``) or the URL the request itself
    was made to (scheme and host, after trusted proxy headers). ``path`` is the decoded path;
    it is quoted back the way Twilio sends it. ``query_string`` is used as received.
    """
    url = base.rstrip("/") + quote(path, safe="/:@!$&'()*+,;=-._~%")
    return f"{url}?{query_string}" if query_string else url


def port_variants(url: str) -> list[str]:
    """The URL as given, then with its default port toggled (Twilio signs either form)."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None or parts.hostname is None:
        return [url]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    if port is None:
        other = prefix + f"{host}:{default}"
    elif port == default:
        other = prefix + host
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]


class SignatureChecker:
    """Checks X-Twilio-Signature against one or more auth tokens (for token rotation)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._validators = [RequestValidator(token) for token in tokens if token]
        if not self._validators:
            raise ValueError("a SignatureChecker needs at least one token")

    def is_valid(
        self,
        url: str,
        params: FormParams,
        signature: str | None,
        settings_header: str | None = None,
    ) -> bool:
        """True when ``signature`` was made by one of the tokens for ``url`` and ``params``.

        The URL as called is tried first, so the usual request costs one HMAC per token.
        """
        if not signature:
            return False
        algorithm = get_signature_algorithm(settings_header)
        expected = signature.encode()
        for candidate in _as_called_first(url):
            for validator in self._validators:
                try:
                    computed = validator.compute_signature(candidate, params, algorithm)
                except ValueError:
                    return False
                if hmac.compare_digest(computed.encode(), expected):
                    return True
        return False


def _as_called_first(url: str) -> Iterator[str]:
    """port_variants(url), the other form made only when the URL as called did not match."""
    yield url
    yield from port_variants(url)[1:]


def sign(token: str, url: str, pairs: Iterable[tuple[str, str]]) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and form, for our own tools."""
    return str(RequestValidator(token).compute_signature(url, FormParams.from_pairs(pairs)))
