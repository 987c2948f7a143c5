"""Who may open the operator pages (/admin, /phone): shared by their blueprints."""

from __future__ import annotations

from flask import request
from flask import session

ADMIN_SESSION_KEY = "textback_admin"
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1"})


def is_admin() -> bool:
    """True when this browser session has logged in to the admin view."""
    return session.get(ADMIN_SESSION_KEY) is True


def is_local_request() -> bool:
    """True when the request comes from this machine (and no proxy said otherwise)."""
    return request.remote_addr in LOCAL_ADDRESSES
