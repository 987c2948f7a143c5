"""The routes Twilio calls: ``POST /twilio`` (a message) and ``POST /twilio/status`` (delivery).

Nothing else in textback touches ``flask.request`` for webhooks. Each request is checked in
this order: size (413), content type (415), signature (403), required fields (400).
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint
from flask import Response
from flask import request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from textback.channel.signature import SIGNATURE_HEADER
from textback.channel.signature import SIGNATURE_SETTINGS_HEADER
from textback.channel.signature import FormParams
from textback.channel.signature import public_url
from textback.channel.twiml import CONTENT_TYPE
from textback.core.message import MESSAGE_SID
from textback.core.message import Inbound
from textback.errors import MalformedWebhook
from textback.service import Textback
from textback.web import textback

log = logging.getLogger(__name__)

bp = Blueprint("webhook", __name__)

FORM_TYPE = "application/x-www-form-urlencoded"


def plain(text: str, status: int) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


@bp.get("/")
def index() -> Response:
    return plain("It works!", 200)


def webhook_url(service: Textback, request: Request) -> str:
    """The URL Twilio signed: the public URL if configured, else the request's own (after
    trusted proxy headers), with the path and raw query string."""
    base = service.settings.public_url or f"{request.scheme}://{request.host}"
    return public_url(
        base, request.root_path + request.path, request.environ.get("QUERY_STRING", "")
    )


def public_base(service: Textback, request: Request) -> str | None:
    """This server's address as Twilio reaches it, with its mount prefix: the public URL, or,
    behind trusted proxies, the address the (signed) request came to; None when not known."""
    if service.settings.public_url:
        origin = service.settings.public_url
    elif service.settings.trusted_proxies:
        origin = f"{request.scheme}://{request.host}"
    else:
        return None
    return public_url(origin, request.root_path)


def verified_form() -> list[tuple[str, str]] | Response:
    """The request's form when it is a well-formed, correctly signed webhook; else the refusal."""
    service = textback()
    if request.mimetype != FORM_TYPE:
        return plain(f"415 Unsupported Media Type: send {FORM_TYPE}", 415)
    pairs = list(request.form.items(multi=True))
    if service.checker is not None and not service.checker.is_valid(
        webhook_url(service, request),
        FormParams.from_pairs(pairs),
        request.headers.get(SIGNATURE_HEADER),
        request.headers.get(SIGNATURE_SETTINGS_HEADER),
    ):
        reason = "missing" if SIGNATURE_HEADER not in request.headers else "invalid"
        log.warning("refused a webhook to %s: %s X-Twilio-Signature", request.path, reason)
        service.store.record_reject("signature")
        return plain(f"403 Forbidden: {reason} X-Twilio-Signature", 403)
    return pairs


@bp.post("/twilio")
def inbound() -> Response:
    form = verified_form()
    if isinstance(form, Response):
        return form
    try:
        msg = Inbound.from_form(form)
    except MalformedWebhook as exc:
        return plain(f"400 Bad Request: {exc}", 400)
    service = textback()
    return Response(service.answer(msg, public_base(service, request)), mimetype=CONTENT_TYPE)


# Twilio's delivery statuses are lowercase words (queued, sent, delivered, partially_delivered…);
# error codes are numbers such as 30003.
_STATUS = re.compile(r"[a-z_-]{1,32}")
_ERROR_CODE = re.compile(r"[0-9]{0,16}")


def status_problem(params: dict[str, str]) -> str | None:
    """What is wrong with a delivery status callback's form, or None."""
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not sid:
        return "missing MessageSid"
    if MESSAGE_SID.fullmatch(sid) is None:
        return "MessageSid is not a message SID (SM or MM and 32 hex digits)"
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not status:
        return "missing MessageStatus"
    if _STATUS.fullmatch(status.lower()) is None:
        return "MessageStatus is not a delivery status"
    if _ERROR_CODE.fullmatch(params.get("ErrorCode", "")) is None:
        return "ErrorCode is not a number"
    return None


@bp.post("/twilio/status")
def status() -> Response:
    form = verified_form()
    if isinstance(form, Response):
        return form
    params = dict(form)
    if params.get("CallSid") and not params.get("MessageSid"):
        # A voice call's status (the number's StatusCallback also serves calls): not ours.
        return Response(status=204)
    problem = status_problem(params)
    if problem:
        return plain(f"400 Bad Request: {problem}", 400)
    textback().store.record_status(params, request.args.get("for"))
    return Response(status=204)


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    """Errors as one line of plain text (413 for an oversized body among them)."""
    return plain(f"{exc.code} {exc.name}", exc.code or 500)


@bp.app_errorhandler(Exception)
def unexpected_error(exc: Exception) -> Response:
    """A bug of ours: logged with its traceback, answered without one."""
    log.exception("unexpected error while handling %s %s", request.method, request.path)
    return plain("500 Internal Server Error", 500)
