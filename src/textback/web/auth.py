"""Who may open ``/admin``: the login, the CSRF token of its forms, the lockout, the headers.

- No ``TEXTBACK_ADMIN_PASSWORD``: ``/admin`` is off (404) in production; in development it is
  open to requests from this machine only (403 for others).
- With a password: a login form; the session cookie is HttpOnly, SameSite=Lax and (in
  production) Secure; logging in starts a fresh session; logging out is a POST. The login
  itself is kept in the database (textback.admin_sessions): logging out ends it for every
  copy of the cookie, and changing the password ends every login.
- Every POST carries the session's CSRF token in a ``csrf_token`` form field.
- Failed logins are counted per client address (lockout.py): after 5 failures in 15 minutes
  the login answers 429, even to the right password, until the window has passed. The count
  lives in the database by default, so every worker and server sees it
  (``TEXTBACK_LIMITER_STORAGE=redis://host:6379`` keeps it in Redis instead).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint
from flask import Response
from flask import abort
from flask import current_app
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import TooManyRequests
from werkzeug.security import check_password_hash

from textback.storage import admin_sessions
from textback.web import textback
from textback.web.access import ADMIN_SESSION_KEY
from textback.web.access import harden
from textback.web.access import is_admin
from textback.web.access import is_local_request
from textback.web.access import session_token
from textback.web.access import token_matches

log = logging.getLogger(__name__)

bp = Blueprint("admin_auth", __name__, template_folder="templates")

CSRF_SESSION_KEY = "textback_admin_csrf"
CSRF_FIELD = "csrf_token"
LOCKED_OUT = "Too many failed logins from your address: wait 15 minutes and try again."
WRONG_PASSWORD = "Wrong password."
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
OPEN_ENDPOINTS = frozenset({"admin_auth.login_form", "admin_auth.login", "admin.static"})


def csrf_token() -> str:
    """This session's token for the admin forms (made on first use)."""
    return session_token(CSRF_SESSION_KEY)


def csrf_ok() -> bool:
    return token_matches(CSRF_SESSION_KEY, request.form.get(CSRF_FIELD, ""))


def guard() -> ResponseReturnValue | None:
    """Before every admin request: the access rules above, then the CSRF check of a POST."""
    settings = textback().settings
    if settings.admin_password_hash is None:
        if not settings.development:
            abort(404)
        if not is_local_request():
            abort(403)
    elif request.endpoint not in OPEN_ENDPOINTS and not is_admin():
        if request.method != "GET":
            abort(403)
        return redirect(url_for("admin_auth.login_form", next=request.full_path.rstrip("?")))
    if request.method == "POST" and not csrf_ok():
        abort(400, "The form's CSRF token is missing or out of date: reload the page.")
    return None


def secure_headers(response: Response) -> Response:
    """A strict CSP (no script at all), no sniffing, no referrer, no caching of pages.

    Registered for the whole app, so that answers made before a view is chosen (a 405 for
    a GET on a POST-only action) carry the headers too.
    """
    if request.path != "/admin" and not request.path.startswith("/admin/"):
        return response
    return harden(response, CONTENT_SECURITY_POLICY, cacheable=request.endpoint == "admin.static")


bp.before_request(guard)
bp.after_app_request(secure_headers)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site, never another site."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("admin.conversations")


@bp.get("/admin/login")
def login_form() -> ResponseReturnValue:
    """The login form; without a password to check there is nothing to log in to."""
    if textback().settings.admin_password_hash is None or is_admin():
        return redirect(safe_next(request.args.get("next")))
    return render_template(
        "admin/login.html", csrf_token=csrf_token(), next=request.args.get("next", ""), error=None
    )


@bp.post("/admin/login")
def login() -> ResponseReturnValue:
    """Check the password; a success starts a new session, a failure counts toward lockout."""
    settings = textback().settings
    password_hash, password_key = settings.admin_password_hash, settings.admin_password_key
    if password_hash is None or password_key is None:
        return redirect(url_for("admin.conversations"))
    from textback.web.lockout import lockout_of  # limits, loaded at the first login

    target = request.form.get("next", "")
    address = request.remote_addr or "unknown"
    lockout = lockout_of(current_app)
    if not lockout.begin(address):
        log.warning("admin login refused from %s: locked out", address)
        raise TooManyRequests()
    if not check_password_hash(password_hash, request.form.get("password", "")):
        log.warning("admin login failed from %s", address)
        page = render_template(
            "admin/login.html", csrf_token=csrf_token(), next=target, error=WRONG_PASSWORD
        )
        return page, 401
    lockout.succeeded(address)
    session.clear()  # a new session: nothing set before the login survives it
    session[ADMIN_SESSION_KEY] = admin_sessions.start(textback().store.engine, password_key)
    csrf_token()
    log.info("admin logged in from %s", address)
    return redirect(safe_next(target))


@bp.post("/admin/logout")
def logout() -> ResponseReturnValue:
    """End the login for good: a copy of the cookie no longer works either."""
    token = session.get(ADMIN_SESSION_KEY)
    if isinstance(token, str) and token:
        admin_sessions.end(textback().store.engine, token)
    session.clear()
    if textback().settings.admin_password_hash is None:
        return redirect(url_for("admin.conversations"))
    return redirect(url_for("admin_auth.login_form"))


@bp.errorhandler(TooManyRequests)
def locked_out(_error: TooManyRequests) -> ResponseReturnValue:
    from textback.web.lockout import lockout_of

    page = render_template("admin/login.html", csrf_token=csrf_token(), next="", error=LOCKED_OUT)
    wait = lockout_of(current_app).seconds_left(request.remote_addr or "unknown")
    return page, 429, {"Retry-After": str(wait)}
