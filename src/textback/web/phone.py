"""``/phone``: a browser phone that texts this server through its real, signed webhook.

The page picks a fake contact, and the server builds the form Twilio would post, signs it with
the configured (or development) token for the URL the webhook check rebuilds, and hands it to
the webhook in-process (web/webhook.py: the same checks and answer as Twilio's requests). The
token never leaves the server. The page is on in development mode; in production only with
``TEXTBACK_PHONE=on`` and an admin login. Sending is a JSON POST with a per-session CSRF token
and a same-origin check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit

from flask import Blueprint
from flask import Response
from flask import abort
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue

from textback.channel.forms import DEFAULT_TO
from textback.channel.forms import inbound_form
from textback.channel.forms import signed_request
from textback.channel.twiml import parse_twiml
from textback.core.encoding import encoding
from textback.core.encoding import segment_count
from textback.core.text import mask_number
from textback.web import textback
from textback.web.access import harden
from textback.web.access import is_admin
from textback.web.access import session_token
from textback.web.access import token_matches
from textback.web.webhook import MESSAGE_PATH
from textback.web.webhook import WEBHOOK_KEY
from textback.web.webhook import WebhookApp
from textback.web.webhook import callback_base
from textback.web.webhook import twilio_url

log = logging.getLogger(__name__)

bp = Blueprint(
    "phone",
    __name__,
    template_folder="templates",
    static_folder="static/phone",
    static_url_path="/phone/static",
)

CSRF_SESSION_KEY = "textback_phone_csrf"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY_CHARS = 1600  # Twilio's limit for one message body
MAX_MEDIA = 10
UNSIGNED_TOKEN = "unsigned"  # with signature checks off, any signature passes
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class Contact:
    """A fake person the browser phone texts as."""

    name: str
    number: str


# 555-01xx numbers are reserved for fiction, so these never belong to a real person.
CONTACTS = (
    Contact("Alice", "+15555550101"),
    Contact("Bob", "+15555550102"),
    Contact("Chidi", "+15555550103"),
    Contact("Dana", "+15555550104"),
)
CONTACTS_BY_NUMBER = {contact.number: contact for contact in CONTACTS}


@bp.before_request
def check_access() -> ResponseReturnValue | None:
    """404 when the phone is off; in production, only a logged-in admin may use it."""
    settings = textback().settings
    if not settings.phone_enabled:
        abort(404)
    if settings.development or is_admin():
        return None
    if request.method == "GET":
        target = quote(request.root_path + "/phone", safe="/")
        return redirect(f"{request.root_path}/admin/login?next={target}")
    abort(403)


@bp.after_request
def secure_headers(response: Response) -> Response:
    """A strict CSP: our own script and style only; pictures may come from https URLs."""
    return harden(response, CONTENT_SECURITY_POLICY, cacheable=request.endpoint == "phone.static")


def csrf_token() -> str:
    """This session's token for sending from the page (made on first use)."""
    return session_token(CSRF_SESSION_KEY)


def same_origin() -> bool:
    """True unless the browser says the request comes from another site.

    Browsers send ``Origin`` with every fetch POST (and ``Sec-Fetch-Site``); a client that
    sends neither is not a browser acting for another site, and still needs the CSRF token.
    """
    origin = request.headers.get("Origin")
    if origin is not None:
        allowed = {f"{request.scheme}://{request.host}"}
        configured = textback().settings.public_url
        if configured:
            parts = urlsplit(configured)
            allowed.add(f"{parts.scheme}://{parts.netloc}")
        return origin in allowed
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


def csrf_ok() -> bool:
    return token_matches(CSRF_SESSION_KEY, request.headers.get(CSRF_HEADER, ""))


def refuse(status: int, error: str) -> tuple[Response, int]:
    return jsonify(error=error), status


@bp.get("/phone")
def page() -> str:
    """The phone."""
    selected = request.args.get("from", CONTACTS[0].number)
    if selected not in CONTACTS_BY_NUMBER:
        selected = CONTACTS[0].number
    return render_template(
        "phone/index.html",
        contacts=CONTACTS,
        selected=selected,
        our_number=DEFAULT_TO,
        csrf_token=csrf_token(),
    )


@bp.get("/phone/history")
def history() -> Response | tuple[Response, int]:
    """The conversation of one fake contact with this server, from the database."""
    number = request.args.get("from", "")
    if number not in CONTACTS_BY_NUMBER:
        return refuse(400, "unknown contact")
    rows = textback().store.recent_messages(contact=number, limit=200)
    return jsonify(exchanges=exchanges(rows))


@bp.post("/phone/send")
def send() -> Response | tuple[Response, int]:
    """Text the server as a fake contact; answers the exchange: the message and the reply."""
    if not same_origin():
        return refuse(403, "cross-site request refused")
    if not csrf_ok():
        return refuse(403, "missing or wrong CSRF token: reload the page")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return refuse(415, "send JSON")
    number, body, media = data.get("from"), data.get("body", ""), data.get("media") or []
    if number not in CONTACTS_BY_NUMBER:
        return refuse(400, "unknown contact")
    if not isinstance(body, str) or len(body) > MAX_BODY_CHARS:
        return refuse(400, f"the message must be text of at most {MAX_BODY_CHARS} characters")
    if not _valid_media(media):
        return refuse(400, f"media must be up to {MAX_MEDIA} http(s) URLs")
    if not body and not media:
        return refuse(400, "type a message")
    status, twiml, sid = deliver(str(number), body, media)
    if status != 200:
        return jsonify(error=f"POST /twilio answered {status}: {twiml.strip()}"), 502
    log.info("browser phone: %s texted %s", mask_number(str(number)), sid)
    replies = [{"text": text, "media": list(urls)} for text, urls in parse_twiml(twiml)]
    return jsonify(exchange=with_note(exchange(sid, body, media, replies, twiml)))


def _valid_media(media: Any) -> bool:
    return (
        isinstance(media, list)
        and len(media) <= MAX_MEDIA
        and all(isinstance(url, str) and url.startswith(("https://", "http://")) for url in media)
    )


def deliver(number: str, body: str, media: Sequence[str]) -> tuple[int, str, str]:
    """Text the webhook as ``number``; returns (HTTP status, TwiML, MessageSid).

    The form is signed for the URL the webhook would rebuild for this request (the public URL
    when configured, else this request's scheme and host after trusted proxy headers) and goes
    through the webhook's own checks and answer, in-process: the same path as Twilio's.
    """
    settings = textback().settings
    form = inbound_form(
        body, from_=number, to=DEFAULT_TO, media=[(url, "image/jpeg") for url in media]
    )
    origin = f"{request.scheme}://{request.host}"
    signed_url = twilio_url(settings, origin, request.root_path, MESSAGE_PATH, "")
    token = settings.signing_token or UNSIGNED_TOKEN
    payload, headers = signed_request(token, signed_url, form)
    webhook = current_app.extensions[WEBHOOK_KEY]
    assert isinstance(webhook, WebhookApp)
    status, _headers, answer = webhook.message(
        url=signed_url,
        headers=headers,
        body=payload,
        base=callback_base(settings, origin, request.root_path),
    )
    return status, answer.decode(), dict(form)["MessageSid"]


def exchange(
    sid: str | None,
    body: str | None,
    media: Sequence[str],
    replies: list[dict[str, Any]],
    twiml: str | None,
) -> dict[str, Any]:
    """One message to the server and what came back, as the page shows it."""
    sent = None
    if body is not None:
        sent = {
            "sid": sid,
            "body": body,
            "media": list(media),
            "encoding": encoding(body),
            "segments": segment_count(body),
        }
    return {"sent": sent, "replies": replies, "twiml": twiml or ""}


def exchanges(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Messages from the log grouped as the page shows them: each inbound with its replies.

    A message sent through the REST API (no inbound before it) is an exchange of its own.
    """
    result: list[dict[str, Any]] = []
    by_id: dict[int, dict[str, Any]] = {}
    for row in rows:
        urls = [item.get("url", "") for item in row.media or []]
        if row.direction == "inbound":
            item = exchange(row.sid, row.body, urls, [], row.response_twiml)
            by_id[row.id] = item
            result.append(item)
        elif row.reply_to_id in by_id:
            by_id[row.reply_to_id]["replies"].append({"text": row.body, "media": urls})
        else:
            result.append(exchange(None, None, (), [{"text": row.body, "media": urls}], None))
    return [with_note(item) for item in result]


def with_note(item: dict[str, Any]) -> dict[str, Any]:
    """The exchange with a ``note`` when a carrier command got no reply because Twilio answers
    it on a real number: the page shows that instead of a bare "(no reply)"."""
    service = textback()
    sent = item["sent"]
    if sent is None or item["replies"] or not service.carrier.twilio_answers:
        return item
    command = service.rules.optout.command(sent["body"])
    if command is None:
        return item
    note = (
        f"(no reply from textback: on a real number Twilio answers {command.name} itself; "
        "TEXTBACK_CARRIER_REPLIES=twilio)"
    )
    return {**item, "note": note}
