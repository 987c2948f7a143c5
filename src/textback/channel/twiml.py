"""Reply -> TwiML text, built with twilio's own MessagingResponse."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache

from twilio.twiml.messaging_response import MessagingResponse

from textback.core.message import Reply
from textback.core.text import xml_safe

CONTENT_TYPE = "application/xml"


# Stands in for the status callback URL, which differs for every message: contains nothing XML
# escapes, so it appears verbatim in the document and is replaced by the escaped URL.
_CALLBACK = "textback-status-callback-3f9c1d"
# What ElementTree escapes in an attribute value.
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\r": "&#13;",
        "\n": "&#10;",
        "\t": "&#09;",
    }
)


def render(reply: Reply | None, status_callback: str | None = None) -> str:
    """The TwiML document answering a webhook with ``reply``.

    No reply (None or an empty one) is an empty ``<Response />``. Characters XML 1.0 forbids are
    removed and the rest escaped, so any text renders as a document that parses. Replies are
    values, so the rendering of the ones a rules file gives again and again is cached; the
    status callback URL, new for every message, is put into the cached document (the action
    attribute comes before the text, so the first occurrence is the attribute).
    """
    if status_callback is None:
        return _render(reply, None)
    escaped = status_callback.translate(_ATTRIBUTE_ESCAPES)
    return _render(reply, _CALLBACK).replace(_CALLBACK, escaped, 1)


@lru_cache(maxsize=2048)
def _render(reply: Reply | None, status_callback: str | None) -> str:
    """The document as MessagingResponse writes it (ElementTree escapes the attribute)."""
    response = MessagingResponse()
    if reply is not None and not reply.is_empty:
        attributes = {"action": status_callback, "method": "POST"} if status_callback else {}
        message = response.message(xml_safe(reply.text) if reply.text else None, **attributes)
        for url in reply.media:
            message.media(xml_safe(url))
    return str(response.to_xml())


def parse_twiml(twiml: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The (text, media URLs) of each ``<Message>`` in a TwiML document."""
    if not twiml:
        return ()
    root = ET.fromstring(twiml)
    messages = []
    for message in root.iter("Message"):
        body = message.find("Body")
        text = (message.text or "") if body is None else (body.text or "")
        urls = tuple(media.text or "" for media in message.iter("Media"))
        messages.append((text, urls))
    return tuple(messages)
