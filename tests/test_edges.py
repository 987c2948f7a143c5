"""Hardened edges: any text round-trips, TwiML always parses, no input gives a 500."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from textback import Bot
from textback import Inbound
from textback.channel.forms import inbound_form
from textback.channel.signature import sign
from textback.channel.twiml import parse_twiml
from textback.channel.twiml import render
from textback.core.message import Reply
from textback.testing import TEST_TOKEN
from textback.testing import Phone

TEXTS = [
    "😀👍🏽👨‍👩‍👧",
    "مرحبا بالعالم",
    "שלום",
    "e\u0301 n\u0303 a\u0308\u0323",
    "<script>alert(1)</script> & \"quotes\" 'apos'",
    "]]> <!-- -->",
    "x" * 1600,
    "é" * 1600,
    "line1\nline2\r\nline3\ttab",
]


@pytest.fixture
def echo_phone(make_app: Callable[..., Flask]) -> Phone:
    bot = Bot()
    bot.fallback(lambda msg: Reply(msg.body))  # the whole body: 1,600 characters fit
    return Phone(make_app(bot=bot), TEST_TOKEN)


@pytest.mark.parametrize("text", TEXTS)
def test_any_unicode_round_trips(echo_phone: Phone, text: str) -> None:
    reply = echo_phone.send(text)
    assert reply.status == 200
    expected = text.replace("\r\n", "\n")
    assert reply.text.replace("\r\n", "\n") == expected


def test_forbidden_xml_characters_are_removed(echo_phone: Phone) -> None:
    reply = echo_phone.send("a\x00b\x07c\x1bd")
    assert reply.status == 200
    assert reply.text == "abcd"


def test_templated_reply_is_escaped(tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    (tmp_path / "textback.toml").write_text(
        "[[rule]]\npattern = '^say (?P<what>.+)$'\nreply = \"You: {what}\"\n"
    )
    phone = Phone(make_app(), TEST_TOKEN)
    reply = phone.send("say <b>&amp;</b>")
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in reply.twiml
    assert reply.text == "You: <b>&amp;</b>"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_render_always_parses(text: str) -> None:
    twiml = render(Reply(text, [text]), "https://x.test/twilio/status?for=" + "SM1")
    ET.fromstring(twiml)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.text(max_size=300),
    extra=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=5),
)
def test_no_signed_input_gives_a_500(
    echo_phone: Phone, body: str, extra: list[tuple[str, str]]
) -> None:
    reply = echo_phone.send(body, extra=extra)
    assert reply.status in (200, 400)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.binary(max_size=2000),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "text/plain",
            "",
            "application/x-www-form-urlencoded; charset=latin-1",
        ]
    ),
)
def test_no_raw_body_gives_a_500(echo_phone: Phone, raw: bytes, content_type: str) -> None:
    headers = {
        "Content-Type": content_type,
        "X-Twilio-Signature": sign(TEST_TOKEN, "http://localhost/twilio", []),
    }
    response = echo_phone.client.post("/twilio", data=raw, headers=headers)
    assert response.status_code in (400, 403, 415)
    assert "Traceback" not in response.get_data(as_text=True)


def test_mms_sample_media_is_kept(phone: Phone) -> None:
    from .conftest import sample

    response = phone.post("/twilio", sample("mms.form"))
    assert response.status_code == 200
    msg = Inbound.from_form(sample("mms.form"))
    assert [m.content_type for m in msg.media] == ["image/jpeg", "image/png"]


def test_parse_twiml_reads_what_render_writes() -> None:
    twiml = render(Reply("hi", ["https://a.test/1.png"]))
    assert parse_twiml(twiml) == (("hi", ("https://a.test/1.png",)),)


def test_simulated_form_is_signed_over_everything() -> None:
    form = inbound_form("hi")
    assert len(form) == 19
    assert sign("t", "https://x", form) != sign("t", "https://x", form[:-1])
