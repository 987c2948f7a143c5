"""``GET /metrics`` for Prometheus: off the public internet unless a token is given.

With ``TEXTBACK_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``;
without it, only this machine may read (the request's address, after trusted proxies, is a
loopback one). ``TEXTBACK_METRICS=off`` removes the page. Refusals are 404s, so the page does
not announce itself.
"""

from __future__ import annotations

import hmac

from flask import Blueprint
from flask import Response
from flask import abort
from flask import request

from textback import metrics
from textback.queries.outbox_depth import outbox_gauges
from textback.web import textback
from textback.web.access import is_local_request

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
    body = metrics.exposition(lambda: outbox_gauges(engine))
    return Response(body, content_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})
