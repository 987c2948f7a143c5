"""``GET /metrics`` for Prometheus: off the public internet unless a token is given.

With ``TEXTBACK_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``;
without it, only this machine may read (the request's address, after trusted proxies, is a
loopback one). ``TEXTBACK_METRICS=off`` removes the page. Refusals are 404s, so the page does
not announce itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from flask import Blueprint
from flask import Response
from flask import abort
from flask import current_app
from flask import request

from textback import metrics
from textback.queries.outbox_depth import Gauge
from textback.queries.outbox_depth import outbox_gauges
from textback.web import textback
from textback.web.access import is_local_request
from textback.web.journaling import JOURNALING_KEY
from textback.web.journaling import Journaling

bp = Blueprint("metrics", __name__)


def _may_read() -> bool:
    settings = textback().settings
    if not settings.metrics_enabled:
        return False
    token = settings.metrics_token
    if token is None:
        return is_local_request()
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@bp.get("/metrics")
def scrape() -> Response:
    """The counters of every process on this machine, and gauges read from the database."""
    if not _may_read():
        abort(404)
    engine = textback().store.engine
    body = metrics.exposition(lambda: [*outbox_gauges(engine), *journal_gauges()])
    return Response(body, content_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def journal_gauges() -> Iterator[Gauge]:
    """The outage journal's entries: waiting to be replayed, and rejected (kept for a person)."""
    journaling = current_app.extensions[JOURNALING_KEY]
    assert isinstance(journaling, Journaling)
    try:
        counts = {
            "waiting": float(journaling.waiting()),
            "rejected": float(journaling.journal.rejected()),
        }
    except OSError:
        return
    yield ("textback_journal", "Outage journal entries: waiting, rejected.", "state", counts)
