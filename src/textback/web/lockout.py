"""The admin login's lockout: ``LIMIT`` failed logins per client address, then 429.

The count is kept with `limits` (the library under flask-limiter) in the storage named by
``TEXTBACK_LIMITER_STORAGE``: by default textback's database (storage/login_failures.py), which
every worker and server sees; or any limits storage URI (``redis://host:6379``).

An attempt is counted *before* its password is checked and given back when it succeeds.
flask-limiter's ``deduct_when`` only tests the count before the view and adds the failure
after it, so attempts running at the same time all pass the test and all get their password
checked; counting first means that no more than ``LIMIT`` wrong passwords are ever checked in
a window, however many attempts arrive at once.
"""

from __future__ import annotations

import math
import time

from flask import Flask
from limits import parse
from limits.errors import ConfigurationError
from limits.storage import Storage
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Engine

from textback.config import DATABASE_LIMITER_STORAGE
from textback.errors import ConfigError
from textback.storage.login_failures import DatabaseStorage

LIMIT = parse("5 per 15 minutes")
SCOPE = "textback-admin-login"
EXTENSION = "textback_lockout"


class Lockout:
    """Failed logins per client address, counted in a limits storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._limiter = FixedWindowRateLimiter(storage)

    def begin(self, address: str) -> bool:
        """Count an attempt from ``address`` as a failure; False when it is locked out
        (then its password must not be checked)."""
        return self._limiter.hit(LIMIT, SCOPE, address)

    def succeeded(self, address: str) -> None:
        """The attempt counted by ``begin`` had the right password: it is not a failure."""
        self.storage.incr(LIMIT.key_for(SCOPE, address), LIMIT.get_expiry(), amount=-1)

    def seconds_left(self, address: str) -> int:
        """How long until ``address``'s window ends (for a Retry-After header)."""
        expiry = self.storage.get_expiry(LIMIT.key_for(SCOPE, address))
        return max(math.ceil(expiry - time.time()), 1)

    def failures(self, address: str) -> int:
        """The failures (and attempts under way) counted for ``address`` in its window."""
        return self.storage.get(LIMIT.key_for(SCOPE, address))


def storage_for(setting: str, engine: Engine) -> Storage:
    """The storage named by TEXTBACK_LIMITER_STORAGE: the database, or a limits storage URI."""
    if setting == DATABASE_LIMITER_STORAGE:
        return DatabaseStorage(engine)
    try:
        storage = storage_from_string(setting)
    except ConfigurationError as exc:
        raise ConfigError(f"TEXTBACK_LIMITER_STORAGE={setting!r}: {exc}") from exc
    if not isinstance(storage, Storage):  # an async+ URI: this server is synchronous
        raise ConfigError(f"TEXTBACK_LIMITER_STORAGE={setting!r}: use a synchronous storage")
    return storage


def init_app(app: Flask, setting: str, engine: Engine) -> Lockout:
    """Give ``app`` its lockout (``lockout_of(app)``)."""
    lockout = Lockout(storage_for(setting, engine))
    app.extensions[EXTENSION] = lockout
    return lockout


def lockout_of(app: Flask) -> Lockout:
    """The lockout made by ``init_app``, or now, on the first login, for the database's storage
    (which has nothing to check at start: the admin pages leave this module, and limits,
    unloaded until then). Two first logins at once may each make one; both count in the same
    table."""
    lockout = app.extensions.get(EXTENSION)
    if lockout is None:
        service = app.extensions["textback"]
        lockout = init_app(app, service.settings.limiter_storage, service.store.engine)
    assert isinstance(lockout, Lockout)
    return lockout
