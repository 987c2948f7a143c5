"""Twilio's webhooks without I/O: plain request values in, a message, a report or a refusal out.

In the manner of gidgethub's ``sansio.Event.from_http`` and Slack Bolt's ``BoltRequest``, this
module reads no socket and knows no web framework. The caller (web/webhook.py, the browser
phone, a test) hands it the method, the public URL Twilio called, the headers and the body bytes
it read (at most ``max_body + 1`` of them), and gets back one of:

- ``Inbound`` (core.message): a message to answer (``POST /twilio``);
- ``StatusReport``: a delivery status to record (``POST /twilio/status``);
- ``Ignored``: a signed callback that is not ours (a voice call's status);
- ``Refusal``: the HTTP status, a short reason, and the key it is counted under, if any.

Every request is parsed once and its signature computed once (per token), in this order:
method (405), size (413), length (400), content type (415), encoding (400), signature (403),
fields (400).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from textback.channel.form_body import parse_form
from textback.channel.signature import SIGNATURE_HEADER
from textback.channel.signature import SIGNATURE_SETTINGS_HEADER
from textback.channel.signature import FormParams
from textback.channel.signature import SignatureChecker
from textback.core.message import MESSAGE_SID
from textback.core.message import Inbound
from textback.errors import MalformedWebhook

FORM_TYPE = "application/x-www-form-urlencoded"
SIGNATURE_COUNTER = "signature"  # the reject_counts key of a refused signature
# What a status callback reads; Twilio sends each once (see core.message.SINGLE_FIELDS).
STATUS_FIELDS = frozenset(
    {"MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode", "CallSid", "AccountSid"}
)
# Twilio's delivery statuses are lowercase words (queued, sent, delivered, partially_delivered…);
# error codes are numbers such as 30003.
_STATUS = re.compile(r"[a-z_-]{1,32}")
_ERROR_CODE = re.compile(r"[0-9]{0,16}")
_SIGNATURE_KEY = SIGNATURE_HEADER.lower()
_SETTINGS_KEY = SIGNATURE_SETTINGS_HEADER.lower()


@dataclass(frozen=True, slots=True)
class Refusal:
    """A webhook that is not answered: its HTTP status, why, and its reject_counts key."""

    status: int
    reason: str
    counter: str | None = None

    @property
    def text(self) -> str:
        """The response body: one line, ``403 Forbidden: missing X-Twilio-Signature``."""
        return f"{self.status} {HTTPStatus(self.status).phrase}: {self.reason}\n"


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A delivery status callback that passed every check.

    ``reply_to`` is the inbound MessageSid our TwiML reply answered (the ``for`` query parameter
    of the callback URL textback gave Twilio), None for a message sent through the REST API.
    """

    sid: str
    status: str
    error_code: str | None
    reply_to: str | None
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A signed callback that is not ours to record (answered 204)."""

    reason: str


class Webhook:
    """The checks of ``POST /twilio`` and ``POST /twilio/status``, on plain values.

    ``checker`` holds the auth tokens (None: signatures are not checked, a named setting);
    ``max_body`` is the largest body accepted, in bytes. One object serves every request.
    """

    def __init__(self, checker: SignatureChecker | None, *, max_body: int) -> None:
        self.checker = checker
        self.max_body = max_body

    def message(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Inbound | Refusal:
        """What Twilio's ``POST /twilio`` brings: the message, or why it is refused.

        ``url`` is the public URL Twilio called, with its query string (what was signed);
        ``headers`` need only Content-Type, Content-Length and Twilio's two signature headers.
        """
        form = self.verified_form(method=method, url=url, headers=headers, body=body)
        if isinstance(form, Refusal):
            return form
        try:
            return Inbound.from_form(form)
        except MalformedWebhook as exc:
            return Refusal(400, str(exc))

    def status(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> StatusReport | Ignored | Refusal:
        """What Twilio's ``POST /twilio/status`` brings: the delivery report, or why not."""
        form = self.verified_form(method=method, url=url, headers=headers, body=body)
        if isinstance(form, Refusal):
            return form
        params: dict[str, str] = {}
        for key, value in form:
            if key not in params:
                params[key] = value
            elif key in STATUS_FIELDS:
                return Refusal(400, f"{key} is repeated")
        if params.get("CallSid") and not params.get("MessageSid"):
            # A voice call's status (the number's StatusCallback also serves calls): not ours.
            return Ignored("a voice call's status")
        problem = status_problem(params)
        if problem:
            return Refusal(400, problem)
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
        return StatusReport(
            sid=params.get("MessageSid") or params["SmsSid"],
            status=(params.get("MessageStatus") or params["SmsStatus"]).lower(),
            error_code=params.get("ErrorCode") or None,
            reply_to=next((value for key, value in query if key == "for"), None),
            params=MappingProxyType(params),
        )

    def verified_form(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[tuple[str, str]] | Refusal:
        """The form, in the order sent, of a well-formed and correctly signed webhook."""
        if method != "POST":
            return Refusal(405, "use POST")
        lowered = {key.lower(): value for key, value in headers.items()}
        declared = lowered.get("content-length", "").strip()
        if declared and not (declared.isascii() and declared.isdigit()):
            return Refusal(400, "Content-Length is not a number")
        length = int(declared) if declared else None
        if len(body) > self.max_body or (length is not None and length > self.max_body):
            return Refusal(413, f"the body is over {self.max_body} bytes")
        if length is not None and len(body) != length:
            return Refusal(400, f"the body has {len(body)} of its {length} bytes")
        content_type = lowered.get("content-type", "").partition(";")[0].strip().lower()
        if content_type != FORM_TYPE:
            return Refusal(415, f"send {FORM_TYPE}")
        try:
            pairs = parse_form(body.decode())
        except ValueError:  # UnicodeDecodeError: raw or %-escaped bytes that are not UTF-8
            return Refusal(400, "the form is not UTF-8")
        if self.checker is not None:
            signature = lowered.get(_SIGNATURE_KEY)
            if not self.checker.is_valid(
                url, FormParams.from_pairs(pairs), signature, lowered.get(_SETTINGS_KEY)
            ):
                reason = "missing" if signature is None else "invalid"
                return Refusal(403, f"{reason} {SIGNATURE_HEADER}", SIGNATURE_COUNTER)
        return pairs


def status_problem(params: Mapping[str, str]) -> str | None:
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
