"""A profile of textback's full path: signed webhooks through the WSGI app, in one process.

No server and no load generator: the requests are handed to the WSGI callable gunicorn would
call, so the profile shows textback's own costs (parsing, signature, storage, rules, TwiML).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from . import bodies
from .compare import textback_env


def environ(signature: str, body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/twilio",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_TWILIO_SIGNATURE": signature,
        "HTTP_USER_AGENT": "TwilioProxy/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "REMOTE_ADDR": "127.0.0.1",
    }


def profile(count: int = 5000, database_url: str | None = None) -> str:
    """Answer ``count`` signed webhooks under pyinstrument; its text report."""
    with tempfile.TemporaryDirectory(prefix="textback-profile-") as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'textback.db'}"
        os.environ.update(textback_env(url, Path(folder) / "instance"))
        from .apps import textback_app

        app = textback_app()
        requests = [environ(sig, body) for _, sig, body in bodies.signed_bodies("0badcafe", count)]
        statuses: list[str] = []

        def start_response(
            status: str, _headers: list[tuple[str, str]], _exc_info: Any = None, /
        ) -> Callable[[bytes], object]:
            statuses.append(status)
            return len

        for request in requests[:100]:  # warm up: first connections, caches
            b"".join(app(request, start_response))
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for request in requests[100:]:
            b"".join(app(request, start_response))
        profiler.stop()
        app.extensions["textback"].store.engine.dispose()
    if set(statuses) != {"200 OK"}:
        raise RuntimeError(f"unexpected statuses: {sorted(set(statuses))}")
    return str(profiler.output_text(unicode=True, color=False, show_all=False))
