"""``textback serve``: granian (a Rust HTTP server) running textback's WSGI app.

The master process checks the configuration, the rules file and the schema once, then forks the
workers; each worker builds its own app (and database pool) after the fork, without touching
the database, so a worker that is restarted while the database is down boots and recovers when
it is back. Granian parses HTTP in Rust; a request reaches a worker's Python threads once its
headers are in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from granian.constants import HTTPModes
from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.server import MPServer

from textback.errors import TextbackError

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

# Python threads per worker that run requests, and the requests a worker admits at once. A
# request holds its thread while it reads its body, so a client that sends its body slowly (or
# stalls) holds one; with 128 per worker, hundreds of such clients are needed to make webhooks
# wait, and the pool only grows to what the load needs (idle threads end after 30 s). Requests
# beyond it wait for a free one.
REQUEST_THREADS = 128
# Headers are read by granian in Rust, not in a Python thread; a client that has not sent its
# headers within this time is disconnected (Twilio sends them at once).
HEADER_READ_TIMEOUT_MS = 10_000
# SIGTERM and SIGHUP let requests in flight finish; a worker still busy after this is killed.
GRACEFUL_TIMEOUT_S = 10
# On SIGHUP the new worker starts this long before the old one is told to stop.
RESPAWN_DELAY_S = 2.0
BACKLOG = 2048
WORKER_TARGET = "textback.cli.server:worker_app"


@dataclass(frozen=True)
class Bind:
    """Where ``textback serve`` listens: ``HOST:PORT``; an IPv6 host in brackets."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Bind:
        host, colon, port = text.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r} is not HOST:PORT, like 127.0.0.1:8000")
        return cls(host, int(port))


def worker_app() -> Flask:
    """The app of one worker, built after the fork (granian calls this in every new worker)."""
    from textback.app import create_app
    from textback.web.journaling import JOURNALING_KEY

    app = create_app(check_schema=False)
    # What a server stopped during a database outage left: replayed once the database answers.
    app.extensions[JOURNALING_KEY].start_if_waiting()
    return app


class TextbackServer(MPServer):
    """Granian's process manager, refusing a SIGHUP whose new workers could not start.

    New workers re-read the rules file; if it (or the configuration) is now broken, each new
    worker would fail at boot and granian would stop the whole server. The old workers keep
    serving instead, and the problem is logged in one line.
    """

    def signal_handler_reload(self, *args: Any, **kwargs: Any) -> None:
        from textback.app import create_app

        try:
            app = create_app(check_schema=False)
        except TextbackError as exc:
            log.error("SIGHUP ignored, the workers keep running: %s", exc)
            return
        except Exception:  # a reload must never take the running server down
            log.exception("SIGHUP ignored, the workers keep running")
            return
        app.extensions["textback"].store.engine.dispose()
        log.info("SIGHUP: replacing the workers one at a time")
        super().signal_handler_reload(*args, **kwargs)  # type: ignore[no-untyped-call]


class ChosenThreads(logging.Filter):
    """Drops granian's start-up advice to use fewer threads: REQUEST_THREADS is chosen so that
    slow clients cannot take every thread (see above), and the pool grows only as needed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Configuration allows spawning up to")


# granian's own lines go through the root logger, in textback's format (setup_logging).
_LOGGING = {
    "filters": {"chosen_threads": {"()": ChosenThreads}},
    "loggers": {
        "_granian": {
            "handlers": [],
            "level": "INFO",
            "propagate": True,
            "filters": ["chosen_threads"],
        },
        "granian.access": {"handlers": [], "level": "WARNING", "propagate": True},
    },
}


def serve(*, bind: Bind, workers: int) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP replaces the workers without dropping requests."""
    server = TextbackServer(
        WORKER_TARGET,
        address=bind.host,
        port=bind.port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        http=HTTPModes.http1,  # what Twilio and reverse proxies speak to an upstream
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        blocking_threads=REQUEST_THREADS,
        backpressure=REQUEST_THREADS,
        backlog=BACKLOG,
        respawn_failed_workers=True,
        respawn_interval=RESPAWN_DELAY_S,
        workers_kill_timeout=GRACEFUL_TIMEOUT_S,
        log_dictconfig=_LOGGING,
    )
    server.serve()
