"""``POST /twilio`` without Flask's per-request machinery, for the webhooks that pass every check.

Flask's request context, session, routing and response objects cost as much as textback's own
work. This WSGI layer sits inside ProxyFix (so it sees the public scheme, host and prefix) and
answers a webhook itself only when it would be answered: the body is within the limit, it is a
form, the signature is valid and MessageSid, From and To are there. The checks are the same
code in the same order as in web/webhook.py. Anything else (another route or method, a body
without a length, any refusal) goes to Flask unchanged, with the body put back, so every refusal,
its log line and its count still come from one place.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.utils import get_content_type
from werkzeug.wrappers import Request

from textback.channel.signature import SIGNATURE_HEADER
from textback.channel.signature import SIGNATURE_SETTINGS_HEADER
from textback.channel.signature import FormParams
from textback.channel.twiml import CONTENT_TYPE
from textback.core.message import Inbound
from textback.errors import MalformedWebhook
from textback.service import Textback
from textback.web.webhook import FORM_TYPE
from textback.web.webhook import plain
from textback.web.webhook import public_base
from textback.web.webhook import webhook_url

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("textback.web.webhook")

_ANSWER_TYPE = get_content_type(CONTENT_TYPE, "utf-8")


class WebhookFastPath:
    """Wraps Flask's WSGI app; answers well-formed, correctly signed ``POST /twilio`` itself."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication, service: Textback) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.service = service

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/twilio":
            return self.wsgi_app(environ, start_response)
        checked = self._checked_message(environ)
        if checked is None:
            return self.wsgi_app(environ, start_response)
        msg, base = checked
        with self.app.app_context():
            try:
                answer = self.service.answer(msg, base).encode()
            except Exception:
                log.exception("unexpected error while handling POST /twilio")
                return plain("500 Internal Server Error", 500)(environ, start_response)
        start_response(
            "200 OK", [("Content-Type", _ANSWER_TYPE), ("Content-Length", str(len(answer)))]
        )
        return [answer]

    def _checked_message(self, environ: WSGIEnvironment) -> tuple[Inbound, str | None] | None:
        """The message of a webhook that passes every check and this server's public base;
        None to let Flask handle it."""
        request = Request(environ)
        length = request.content_length
        limit = self.app.config["MAX_CONTENT_LENGTH"]
        if length is None or (limit is not None and length > limit):
            return None
        if request.mimetype != FORM_TYPE:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # Flask reads it again if it is handed on
        if len(body) != length:
            return None
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
        except ValueError:
            return None
        params = FormParams.from_pairs(pairs)
        # In the order Flask's form (a MultiDict) gives them: a repeated key's values together.
        form = [(key, value) for key, values in params.items() for value in values]
        checker = self.service.checker
        if checker is not None and not checker.is_valid(
            webhook_url(self.service, request),
            params,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(SIGNATURE_SETTINGS_HEADER),
        ):
            return None
        try:
            return Inbound.from_form(form), public_base(self.service, request)
        except MalformedWebhook:
            return None
