"""The WSGI adapter of Twilio's webhooks: ``POST /twilio`` and ``POST /twilio/status``.

Every request reaches ``WebhookApp`` first (inside ProxyFix when proxies are trusted); it
serves the two webhook paths itself and hands every other path to Flask, which serves the pages.
For a webhook it does the I/O and nothing else: it reads the body safely (at most the limit plus
one byte, whether it comes with a Content-Length or chunked) and works out the public URL Twilio
called; then, in the worker's answer thread when the server runs requests in threads
(answer_loop.py; a batch of the webhooks that came in meanwhile), it asks the sans-I/O core
(channel/webhook.py) what each request is and calls the service; and it writes the response.
No Flask request object is made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextlib import nullcontext
from functools import lru_cache
from http import HTTPStatus
from typing import IO
from typing import TYPE_CHECKING

from werkzeug.wsgi import get_host

from textback import metrics
from textback.channel.signature import SIGNATURE_HEADER
from textback.channel.signature import SIGNATURE_SETTINGS_HEADER
from textback.channel.signature import public_url
from textback.channel.twiml import CONTENT_TYPE
from textback.channel.webhook import Refusal
from textback.channel.webhook import StatusReport
from textback.channel.webhook import Webhook
from textback.config import Settings
from textback.core.message import Inbound
from textback.service import Textback
from textback.storage.health import is_unavailable
from textback.web.answer_loop import AnswerLoop
from textback.web.answer_loop import HttpResponse
from textback.web.answer_loop import Job
from textback.web.journaling import Journaling
from textback.web.outage import RETRY_AFTER_SECONDS
from textback.web.outage import DatabaseOutage

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger(__name__)

WEBHOOK_KEY = "textback.webhook"  # app.extensions: the app's WebhookApp
MESSAGE_PATH = "/twilio"
STATUS_PATH = "/twilio/status"
TWIML_TYPE = f"{CONTENT_TYPE}; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
READ_SIZE = 16 * 1024
# The textback_webhook_refusals label of each refusal status: a few fixed values.
REFUSAL_LABELS = {
    400: "malformed",
    403: "signature",
    405: "method",
    413: "too_large",
    415: "media_type",
}


def _keep_message(msg: Inbound, base: str | None) -> Callable[[Journaling], str | None]:
    """What keeps ``msg`` in the journal (see WebhookApp.journaled)."""
    return lambda journaling: journaling.message(msg, base)


def plain(status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """A one-line text/plain answer."""
    body = text.encode()
    return status, [("Content-Type", TEXT_TYPE), *headers], body


def refused(refusal: Refusal) -> HttpResponse:
    """The response to a refusal; a 405 says which method to use."""
    return plain(refusal.status, refusal.text, [("Allow", "POST")] if refusal.status == 405 else [])


def unavailable() -> HttpResponse:
    """503 while the database does not answer: Twilio (or the balancer) tries again later."""
    return plain(
        503,
        "503 Service Unavailable: the database is not answering; try again later\n",
        [("Retry-After", str(RETRY_AFTER_SECONDS))],
    )


def twilio_url(settings: Settings, origin: str, root_path: str, path: str, query: str) -> str:
    """The URL Twilio signed: the public URL if configured, else ``origin`` (the request's own
    scheme and host, after trusted proxy headers), with the mount prefix, path and raw query."""
    return _public_url(settings.public_url or origin, root_path + path, query)


def callback_base(settings: Settings, origin: str, root_path: str) -> str | None:
    """This server's address as Twilio reaches it, with its mount prefix: the public URL, or,
    behind trusted proxies, the address the (signed) request came to; None when not known."""
    if settings.public_url:
        return _public_url(settings.public_url, root_path, "")
    if settings.trusted_proxies:
        return _public_url(origin, root_path, "")
    return None


# The same few addresses for every webhook: quoted once.
_public_url = lru_cache(maxsize=256)(public_url)


def read_body(environ: WSGIEnvironment, limit: int) -> bytes | None:
    """The request body, never more than ``limit + 1`` bytes of it; None if it broke off.

    With a Content-Length, that many bytes (fewer if the client stops early: the core refuses a
    short body) and none at all when it is over the limit. Without one (chunked), what the
    server's stream gives, up to ``limit + 1`` bytes, if the server ends the stream itself
    (``wsgi.input_terminated``: gunicorn, granian, and werkzeug for chunked bodies); else the
    body is empty, as PEP 3333 says, since reading could wait forever.
    """
    stream: IO[bytes] = environ["wsgi.input"]
    length = declared_length(environ)
    if length is None:
        if not environ.get("wsgi.input_terminated"):
            return b""
        wanted = limit + 1
    elif length > limit or length < 0:
        return b""  # the core refuses it from the header alone
    else:
        wanted = length
    chunks: list[bytes] = []
    got = 0
    while got < wanted:
        try:
            chunk = stream.read(min(wanted - got, READ_SIZE))
        except OSError:  # the client went away, or sent a malformed chunk
            return None
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def declared_length(environ: WSGIEnvironment) -> int | None:
    """The Content-Length; None for a chunked body or none given; -1 for one that is no number."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None  # Transfer-Encoding wins over a Content-Length (RFC 9112, 6.3)
    raw = environ.get("CONTENT_LENGTH", "").strip()
    if not raw:
        return None
    return int(raw) if raw.isascii() and raw.isdigit() else -1


def core_headers(environ: WSGIEnvironment) -> dict[str, str]:
    """The headers the core reads, from the WSGI environ."""
    headers = {"Content-Type": environ.get("CONTENT_TYPE", "")}
    length = declared_length(environ)
    if length is not None:
        headers["Content-Length"] = environ.get("CONTENT_LENGTH", "").strip()
    signature = environ.get("HTTP_X_TWILIO_SIGNATURE")
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    settings_header = environ.get("HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS")
    if settings_header is not None:
        headers[SIGNATURE_SETTINGS_HEADER] = settings_header
    return headers


def _decoded(value: str) -> str:
    # WSGI passes paths as latin-1 strings of the raw bytes (PEP 3333); URLs are UTF-8.
    return value.encode("latin-1").decode("utf-8", "replace")


class WebhookApp:
    """The WSGI app of a textback server: the webhooks here, every other path to ``pages``.

    ``context`` is entered around answering a message, so handlers may use Flask's
    ``current_app`` (the app context, not a request).
    """

    def __init__(
        self,
        service: Textback,
        pages: WSGIApplication,
        *,
        max_body: int,
        outage: DatabaseOutage,
        context: Callable[[], AbstractContextManager[object]] = nullcontext,
        journaling: Journaling | None = None,
    ) -> None:
        self.service = service
        self.pages = pages
        self.core = Webhook(service.checker, max_body=max_body)
        self.max_body = max_body
        self.outage = outage
        self.context = context
        self.journaling = journaling  # None: a database outage is answered 503
        self.loop = AnswerLoop(self.answer_jobs)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path != MESSAGE_PATH and path != STATUS_PATH:
            return self.pages(environ, start_response)
        try:
            status, headers, body = self.handle(environ, path)
        except Exception as exc:  # reading the request failed: the answers catch their own
            status, headers, body = self.failure(exc, environ.get("REQUEST_METHOD", ""), path)
        if status != 204:  # a 204 has no body and no length (RFC 9110, 8.6)
            headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    def handle(self, environ: WSGIEnvironment, path: str) -> HttpResponse:
        """Answer one webhook request: read here, answered in the answer loop's thread when
        the server runs requests in threads (see answer_loop.py), else in this one."""
        method = environ.get("REQUEST_METHOD", "")
        body = read_body(environ, self.max_body) if method == "POST" else b""
        if body is None:
            return refused(Refusal(400, "the body broke off"))
        origin = f"{environ['wsgi.url_scheme']}://{get_host(environ)}"
        root_path = _decoded(environ.get("SCRIPT_NAME", "")).rstrip("/")
        settings = self.service.settings
        job = Job(
            path=path,
            method=method,
            url=twilio_url(settings, origin, root_path, path, environ.get("QUERY_STRING", "")),
            headers=core_headers(environ),
            body=body,
            base=callback_base(settings, origin, root_path) if path == MESSAGE_PATH else None,
        )
        if environ.get("wsgi.multithread"):
            return self.loop.run(job)
        self.loop.run_here([job])
        assert job.response is not None
        return job.response

    def message(
        self,
        *,
        method: str = "POST",
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        base: str | None,
    ) -> HttpResponse:
        """Answer a ``POST /twilio`` given as plain values (the browser phone calls this), in
        the calling thread.

        ``base`` is this server's public address with its mount prefix (see callback_base).
        """
        job = Job(path=MESSAGE_PATH, method=method, url=url, headers=headers, body=body, base=base)
        self.loop.run_here([job])
        assert job.response is not None
        return job.response

    def answer_jobs(self, jobs: list[Job]) -> None:
        """Answer a batch of webhook requests (the answer loop calls this): each refused,
        journaled or recorded as it should be, and the messages among them answered together,
        in one transaction."""
        messages: list[tuple[Job, Inbound]] = []
        # Behind the journal's replay (one stat of its marker a batch), messages are kept in
        # order after it, so STOPs are honoured first.
        behind_journal = self.journaling is not None and self.journaling.pending
        for job in jobs:
            if job.path == STATUS_PATH:
                job.response = self.status(
                    method=job.method, url=job.url, headers=job.headers, body=job.body
                )
                continue
            try:
                msg = self.core.message(
                    method=job.method, url=job.url, headers=job.headers, body=job.body
                )
                if isinstance(msg, Refusal):
                    job.response = self.refuse(msg, MESSAGE_PATH)
                    continue
            except Exception as exc:
                job.response = self.failure(exc, job.method, MESSAGE_PATH)
                continue
            if behind_journal:
                job.response = self.journaled(None, _keep_message(msg, job.base))
                continue
            messages.append((job, msg))
        if messages:
            self._answer(messages)

    def _answer(self, messages: list[tuple[Job, Inbound]]) -> None:
        results: list[str | Exception]
        try:
            with self.context():
                results = self.service.answer_many([(msg, job.base) for job, msg in messages])
        except Exception as exc:
            results = [exc] * len(messages)
        answered = False
        for (job, msg), result in zip(messages, results, strict=True):
            if not isinstance(result, Exception):
                answered = True
                job.response = (200, [("Content-Type", TWIML_TYPE)], result.encode())
            elif self.journaling is not None and is_unavailable(result):
                job.response = self.journaled(result, _keep_message(msg, job.base))
            else:
                job.response = self.failure(result, job.method, MESSAGE_PATH)
        if answered:
            self.outage.answered()

    def status(
        self, *, method: str = "POST", url: str, headers: Mapping[str, str], body: bytes
    ) -> HttpResponse:
        """Answer a ``POST /twilio/status`` given as plain values: record the delivery report."""
        try:
            report = self.core.status(method=method, url=url, headers=headers, body=body)
            if isinstance(report, Refusal):
                return self.refuse(report, STATUS_PATH)
        except Exception as exc:
            return self.failure(exc, method, STATUS_PATH)
        journaling = self.journaling
        if journaling is not None and journaling.pending and isinstance(report, StatusReport):
            return self.journaled(None, lambda j: j.status(report))
        try:
            if isinstance(report, StatusReport):
                self.service.store.record_status(dict(report.params), report.reply_to)
                self.outage.answered()
            return 204, [], b""  # recorded, or Ignored: not ours
        except Exception as exc:
            if self.journaling is not None and is_unavailable(exc):
                assert isinstance(report, StatusReport)
                return self.journaled(exc, lambda j: j.status(report))
            return self.failure(exc, method, STATUS_PATH)

    def refuse(self, refusal: Refusal, path: str) -> HttpResponse:
        """Count a refusal in the metrics; log and store the count of one that has a counter
        (a bad signature); then answer it."""
        metrics.WEBHOOKS.labels("refused").inc()
        metrics.REFUSALS.labels(REFUSAL_LABELS.get(refusal.status, "other")).inc()
        if refusal.counter is not None:
            log.warning("refused a webhook to %s: %s", path, refusal.reason)
            try:
                self.service.store.record_reject(refusal.counter)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self.outage.failed(exc)  # the refusal stands; only its count is lost
            else:
                self.outage.answered()
        return refused(refusal)

    def journaled(
        self, exc: Exception | None, keep: Callable[[Journaling], str | None]
    ) -> HttpResponse:
        """The answer while the database is down (``exc``) or the journal waits to be
        replayed: the request kept in the journal (on disk) and answered at once (TwiML, or
        204 for a status); 503 if the journal cannot be written either, so Twilio tries again."""
        assert self.journaling is not None
        if exc is not None:
            self.outage.failed(exc)
        try:
            twiml = keep(self.journaling)
        except OSError as error:
            log.error("cannot write the outage journal (%s): answering 503", error)
            metrics.WEBHOOKS.labels("unavailable").inc()
            return unavailable()
        if twiml is None:
            return 204, [], b""
        return 200, [("Content-Type", TWIML_TYPE)], twiml.encode()

    def failure(self, exc: Exception, method: str, path: str) -> HttpResponse:
        """The answer when our side failed: 503 while the database is down (and the request is
        not one the journal keeps), else a logged 500."""
        if is_unavailable(exc):
            self.outage.failed(exc)
            metrics.WEBHOOKS.labels("unavailable").inc()
            return unavailable()
        log.error("unexpected error while handling %s %s", method, path, exc_info=exc)
        return plain(500, "500 Internal Server Error\n")
