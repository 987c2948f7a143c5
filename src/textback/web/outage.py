"""A database outage as this process sees it: one log line when it starts, one when it ends.

During an outage every request fails the same way; a traceback per request (150,000 lines in
10 s were seen) hides everything else in the log. Webhooks are kept in the outage journal and
answered at once (web/journaling.py), pages answer 503 with ``Retry-After``, and the log says
when the database went away, why, and when it came back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from textback.storage.health import describe

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # what a 503 asks clients (Twilio, a load balancer) to wait


class DatabaseOutage:
    """Whether the database is down as far as this process knows; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None

    @property
    def active(self) -> bool:
        """True from a failure until the database answers again."""
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        """The database did not answer: logs the start of an outage, once."""
        with self._lock:
            if self._since is not None:
                return
            self._since = self._clock()
        log.error(
            "database unavailable (%s): keeping webhooks in the journal (pages: 503) until it "
            "answers again",
            describe(exc),
        )

    def answered(self) -> None:
        """The database answered: logs the end of an outage, once. Costs nothing otherwise."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            lasted = self._clock() - self._since
            self._since = None
        log.warning("database answers again after %.1f s of outage", lasted)
