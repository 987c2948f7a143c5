"""Who may open the operator pages (/admin, /phone): shared by their blueprints."""

from __future__ import annotations

import hmac
import secrets

from flask import Response
from flask import g
from flask import request
from flask import session

from textback.storage import admin_sessions
from textback.web import textback

ADMIN_SESSION_KEY = "textback_admin"
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1"})


def is_admin() -> bool:
    """True when this browser holds an admin login that is still good (asked once a request).

    The cookie only carries a token; the database says whether it was logged out, is older
    than 12 hours, or was made with a password that is no longer the configured one.
    """
    if "textback_is_admin" not in g:
        g.textback_is_admin = _login_is_good()
    return bool(g.textback_is_admin)


def _login_is_good() -> bool:
    token = session.get(ADMIN_SESSION_KEY)
    service = textback()
    password_key = service.settings.admin_password_key
    if not isinstance(token, str) or not token or password_key is None:
        return False
    return admin_sessions.is_valid(service.store.engine, token, password_key)


def is_local_request() -> bool:
    """True when the request comes from this machine (and no proxy said otherwise)."""
    return request.remote_addr in LOCAL_ADDRESSES


def session_token(key: str) -> str:
    """The session's CSRF token kept under ``key`` (made on first use)."""
    token = session.get(key)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[key] = token
    return token


def token_matches(key: str, given: str) -> bool:
    """Whether ``given`` is the session's token under ``key``, compared in constant time."""
    expected = session.get(key)
    return (
        isinstance(expected, str)
        and bool(expected)
        and hmac.compare_digest(expected.encode(), given.encode())
    )


def harden(response: Response, policy: str, *, cacheable: bool) -> Response:
    """The headers every operator page carries: ``policy`` as its CSP, no sniffing, no
    referrer, no framing, and (unless ``cacheable``, for static files) no caching."""
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if not cacheable:
        response.headers["Cache-Control"] = "no-store"
    return response
