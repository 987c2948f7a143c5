"""``GET /``, ``GET /healthz`` and ``GET /readyz``: is this server up, and can it answer?

``/healthz`` is the process: 200 whenever it can answer HTTP at all (a liveness probe; restart
the process when it fails). ``/readyz`` is the database: 200 when it answers ``SELECT 1``, else
503 with the reason and ``Retry-After`` (a readiness probe; send no traffic here meanwhile).
Its next lines report the outbox's queue and the outage journal's entries waiting.
"""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import current_app

from textback.storage.health import database_problem
from textback.web import textback
from textback.web.journaling import JOURNALING_KEY
from textback.web.journaling import Journaling
from textback.web.outage import RETRY_AFTER_SECONDS
from textback.web.outage import DatabaseOutage

bp = Blueprint("health", __name__)

OUTAGE_KEY = "textback.outage"  # app.extensions: this process's DatabaseOutage


def plain(text: str, status: int) -> Response:
    """A one-line text/plain response."""
    return Response(text + "\n", status=status, mimetype="text/plain")


def outage() -> DatabaseOutage:
    """The current app's view of a database outage."""
    tracker = current_app.extensions[OUTAGE_KEY]
    assert isinstance(tracker, DatabaseOutage)
    return tracker


@bp.get("/")
def index() -> Response:
    """A plain answer for people who open the server's address in a browser."""
    return plain("It works!", 200)


@bp.get("/healthz")
def healthz() -> Response:
    """200: the process is up."""
    return plain("ok", 200)


@bp.get("/readyz")
def readyz() -> Response:
    """200 when the database answers; 503 with the reason when it does not. The queue the
    outbox's workers read is reported on a second line (its problem alone is no 503: answering
    webhooks needs only the database)."""
    from textback.outbound.queue import queue_report  # huey, loaded when first asked

    service = textback()
    problem = database_problem(service.store.engine)
    _, queue_line = queue_report(service.settings.queue_url)
    lines = f"{queue_line}\n{journal_line()}"
    if problem is None:
        outage().answered()
        return plain(f"ok\n{lines}", 200)
    response = plain(
        f"503 Service Unavailable: the database does not answer: {problem}\n{lines}", 503
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def journal_line() -> str:
    """``journal: 3 entries waiting to be replayed``: the outage journal (docs/outage.md).
    Entries waiting are replayed from now on, if they were not already."""
    journaling = current_app.extensions[JOURNALING_KEY]
    assert isinstance(journaling, Journaling)
    try:
        waiting = journaling.waiting()
        rejected = journaling.journal.rejected()
    except OSError as exc:
        return f"journal: cannot be read: {exc}"
    if waiting:
        journaling.start()  # under a server that did not replay at start (gunicorn): now
    line = f"journal: {waiting} entries waiting to be replayed"
    if rejected:
        line += (
            # /readyz answers anyone: the folder is not named (TEXTBACK_INSTANCE says it)
            f", {rejected} rejected (kept in journal-rejected.jsonl in the instance folder)"
        )
    return line
