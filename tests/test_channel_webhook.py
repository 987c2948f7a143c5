"""The sans-I/O webhook core (channel/webhook.py): table tests on real Twilio bodies, no server."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from textback.channel.signature import SignatureChecker
from textback.channel.signature import sign
from textback.channel.webhook import Ignored
from textback.channel.webhook import Refusal
from textback.channel.webhook import StatusReport
from textback.channel.webhook import Webhook
from textback.core.message import Inbound

from .conftest import SAMPLES
from .conftest import sample

TOKEN = "core-test-token"
URL = "https://sms.example.com/twilio"
STATUS_URL = "https://sms.example.com/twilio/status"
LIMIT = 64 * 1024
CORE = Webhook(SignatureChecker([TOKEN]), max_body=LIMIT)


def raw(name: str) -> bytes:
    """A sample's body exactly as Twilio posts it."""
    return (SAMPLES / name).read_bytes().strip()


def signed_headers(url: str, body: bytes, **extra: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    pairs = parse_qsl(body.decode(), keep_blank_values=True)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
        "X-Twilio-Signature": sign(TOKEN, url, pairs),
        **extra,
    }


def message(body: bytes, *, url: str = URL, method: str = "POST", **headers: str) -> object:
    all_headers = {**signed_headers(url, body), **headers}
    return CORE.message(method=method, url=url, headers=all_headers, body=body)


@pytest.mark.parametrize(
    ("name", "sid", "from_", "body", "media"),
    [
        ("sms.form", "SM5ab7891328b440f04b7c83b459fc85fd", "+17067815146", "Hello", 0),
        (
            "mms.form",
            "MM9c0a3f3b9f1d4c5e8a2b7d6e5f4a3b2c",
            "+14155550100",
            "Here is the photo 📷",
            2,
        ),
        ("whatsapp.form", "SM3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f", "whatsapp:+14155550123", "Hola", 0),
        (
            "stop-advanced-opt-out.form",
            "SMb2e0c3d4f5a6b7c8d9e0f1a2b3c4d5e6",
            "+14155550100",
            "STOP",
            0,
        ),
    ],
)
def test_real_bodies_become_messages(
    name: str, sid: str, from_: str, body: str, media: int
) -> None:
    msg = message(raw(name))
    assert isinstance(msg, Inbound)
    assert (msg.sid, msg.from_, msg.body, len(msg.media)) == (sid, from_, body, media)
    assert msg.form == tuple(sample(name))  # every parameter, in the order sent


def test_headers_are_read_in_any_case() -> None:
    body = raw("sms.form")
    headers = {key.lower(): value for key, value in signed_headers(URL, body).items()}
    assert isinstance(CORE.message(method="POST", url=URL, headers=headers, body=body), Inbound)


SMS = raw("sms.form")


@pytest.mark.parametrize(
    ("case", "kwargs", "status", "reason", "counter"),
    [
        ("GET", {"method": "GET"}, 405, "use POST", None),
        ("over the limit", {"body": SMS + b"&" * LIMIT}, 413, "over 65536 bytes", None),
        ("declared over the limit", {"Content-Length": str(LIMIT + 1)}, 413, "over", None),
        ("shorter than declared", {"Content-Length": str(len(SMS) + 10)}, 400, "of its", None),
        ("length not a number", {"Content-Length": "12abc"}, 400, "not a number", None),
        ("length in other digits", {"Content-Length": "²"}, 400, "not a number", None),
        ("JSON", {"Content-Type": "application/json"}, 415, "send application/x-www", None),
        ("no type", {"Content-Type": ""}, 415, "send application/x-www", None),
        ("not UTF-8", {"body": SMS + b"&X=%FF"}, 400, "not UTF-8", None),
        ("raw bytes not UTF-8", {"body": SMS + b"&X=\xff"}, 400, "not UTF-8", None),
        ("no signature", {"X-Twilio-Signature": None}, 403, "missing X-Twilio", "signature"),
        ("wrong signature", {"X-Twilio-Signature": "AAAA"}, 403, "invalid X-Twilio", "signature"),
        ("signed for another URL", {"url": URL + "?x=1"}, 403, "invalid", "signature"),
    ],
)
def test_refusals(
    case: str, kwargs: dict[str, object], status: int, reason: str, counter: str | None
) -> None:
    kwargs = dict(kwargs)
    body = kwargs.pop("body", SMS)
    assert isinstance(body, bytes)
    url = str(kwargs.pop("url", URL))
    method = str(kwargs.pop("method", "POST"))
    headers = signed_headers(URL, SMS)
    headers["Content-Length"] = str(len(body))
    for key, value in kwargs.items():
        if value is None:
            del headers[key]
        else:
            headers[key] = str(value)
    result = CORE.message(method=method, url=url, headers=headers, body=body)
    assert isinstance(result, Refusal), case
    assert (result.status, result.counter) == (status, counter), case
    assert reason in result.reason, case
    assert result.text.startswith(f"{status} ") and result.text.endswith("\n")


def test_a_body_without_a_length_is_read_as_given() -> None:
    headers = signed_headers(URL, SMS)
    del headers["Content-Length"]  # chunked: the adapter hands over what it read
    assert isinstance(CORE.message(method="POST", url=URL, headers=headers, body=SMS), Inbound)


def test_validation_off_accepts_unsigned() -> None:
    core = Webhook(None, max_body=LIMIT)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert isinstance(core.message(method="POST", url=URL, headers=headers, body=SMS), Inbound)


REPEATABLE = ["Body", "From", "To", "MessageSid", "AccountSid", "NumMedia", "OptOutType"]


@pytest.mark.parametrize(
    "field", [*REPEATABLE, "MediaUrl0", "MediaContentType1", "MediaUrl1", "MediaContentType0"]
)
@pytest.mark.parametrize("how", ["copy", "another value"])
def test_a_repeated_field_is_400_though_signed(field: str, how: str) -> None:
    """Twilio's signature sorts and joins a key's values: a copy or a reordered pair still
    verifies, so the core refuses the parameters textback reads when they come twice."""
    pairs = [*sample("mms.form"), ("OptOutType", "STOP")]
    value = dict(pairs)[field] if how == "copy" else "injected"
    body = (
        "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in [*pairs, (field, value)])
    ).encode()
    result = message(body)
    assert isinstance(result, Refusal)
    assert (result.status, result.reason) == (400, f"{field} is repeated")


def test_other_repeated_keys_are_kept() -> None:
    body = SMS + b"&Tag=b&Tag=a"
    msg = message(body)
    assert isinstance(msg, Inbound)
    assert msg.form[-2:] == (("Tag", "b"), ("Tag", "a"))


@pytest.mark.parametrize(
    ("name", "sid", "status", "error_code"),
    [
        ("status-delivered.form", "SM7d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a", "delivered", None),
        ("status-undelivered.form", "SM8e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b", "undelivered", "30003"),
    ],
)
def test_real_status_callbacks_become_reports(
    name: str, sid: str, status: str, error_code: str | None
) -> None:
    body = raw(name)
    url = STATUS_URL + "?for=SM" + "1" * 32
    report = CORE.status(method="POST", url=url, headers=signed_headers(url, body), body=body)
    assert isinstance(report, StatusReport)
    assert (report.sid, report.status, report.error_code) == (sid, status, error_code)
    assert report.reply_to == "SM" + "1" * 32
    assert dict(report.params) == dict(sample(name))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"CallSid=CA1&CallStatus=completed", Ignored),
        (b"MessageSid=SM1&MessageStatus=delivered", Refusal),
        (raw("status-delivered.form") + b"&MessageStatus=failed", Refusal),
        (raw("status-undelivered.form") + b"&ErrorCode=30008", Refusal),
        (raw("status-delivered.form"), StatusReport),
    ],
)
def test_status_callback_table(body: bytes, expected: type) -> None:
    result = CORE.status(
        method="POST", url=STATUS_URL, headers=signed_headers(STATUS_URL, body), body=body
    )
    assert isinstance(result, expected)
    if isinstance(result, StatusReport):
        assert result.reply_to is None
