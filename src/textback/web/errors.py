"""Errors of the pages as one line of plain text; never a traceback in a response.

A database that does not answer is not a bug: 503 with ``Retry-After``, logged once per outage
(web/outage.py). Anything else unexpected is logged with its traceback and answered 500.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask import Response
from flask import request
from werkzeug.exceptions import HTTPException

from textback.storage.health import is_unavailable
from textback.web.health import outage
from textback.web.health import plain
from textback.web.outage import RETRY_AFTER_SECONDS

log = logging.getLogger(__name__)


def http_error(exc: HTTPException) -> Response:
    """404, 405 and the like as one line of plain text."""
    return plain(f"{exc.code} {exc.name}", exc.code or 500)


def unexpected_error(exc: Exception) -> Response:
    """503 while the database is down; else a bug of ours: logged with its traceback."""
    if is_unavailable(exc):
        outage().failed(exc)
        response = plain("503 Service Unavailable: the database is not answering", 503)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    log.exception("unexpected error while handling %s %s", request.method, request.path)
    return plain("500 Internal Server Error", 500)


def init_app(app: Flask) -> None:
    """Answer every error of ``app``'s pages in plain text."""
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
