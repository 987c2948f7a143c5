"""TwiML: the cached rendering with a per-message status callback equals MessagingResponse's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twilio.twiml.messaging_response import MessagingResponse

from textback.channel.twiml import _CALLBACK
from textback.channel.twiml import render
from textback.core.message import Reply
from textback.core.text import xml_safe


def messaging_response(reply: Reply, status_callback: str) -> str:
    response = MessagingResponse()
    message = response.message(
        xml_safe(reply.text) if reply.text else None, action=status_callback, method="POST"
    )
    for url in reply.media:
        message.media(xml_safe(url))
    return str(response.to_xml())


@given(
    text=st.text(min_size=1, max_size=40) | st.just(_CALLBACK),
    callback=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]))
    | st.sampled_from(['https://a.test/s?for=SM1&x="<y>"', "https://a.test/\t\r\n", _CALLBACK]),
)
def test_status_callback_is_escaped_like_messaging_response(text: str, callback: str) -> None:
    reply = Reply(text, ["https://x.test/1.png"])
    assert render(reply, callback) == messaging_response(reply, callback)
