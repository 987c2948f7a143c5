"""The browser phone's server side, through the test client: access, CSRF, signing, history."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from textback import Bot
from textback import Reply
from textback.channel.forms import DEFAULT_TO
from textback.storage import admin_sessions
from textback.web.access import ADMIN_SESSION_KEY
from textback.web.phone import CONTACTS

ALICE = CONTACTS[0].number
BOB = CONTACTS[1].number
ORIGIN = "http://localhost"


def open_phone(client: FlaskClient) -> str:
    """GET /phone and return the page's CSRF token."""
    page = client.get("/phone")
    assert page.status_code == 200
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.get_data(as_text=True))
    assert found is not None
    return found.group(1)


def send(
    client: FlaskClient,
    body: str,
    *,
    token: str,
    sender: str = ALICE,
    media: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    return client.post(
        "/phone/send",
        json={"from": sender, "body": body, "media": media or []},
        headers={"X-CSRF-Token": token, "Origin": ORIGIN, **(headers or {})},
    )


@pytest.fixture
def dev_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(TEXTBACK_MODE="development")


def test_page_is_strict_and_keeps_the_token_server_side(dev_app: Flask) -> None:
    page = dev_app.test_client().get("/phone")
    html = page.get_data(as_text=True)
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    # Every script is a file of ours; nothing inline, nothing from a CDN.
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    assert all('src="/phone/static/' in attributes for attributes in scripts)
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]*)"', html))
    assert dev_app.extensions["textback"].settings.signing_token not in html
    for contact in CONTACTS:
        assert contact.number in html


def test_hello_goes_through_the_signed_webhook_and_is_stored(dev_app: Flask) -> None:
    client = dev_app.test_client()
    token = open_phone(client)
    answer = send(client, "Hello", token=token)
    assert answer.status_code == 200
    exchange = answer.get_json()["exchange"]
    assert exchange["replies"] == [{"text": "Hello back to you!", "media": []}]
    assert "<Message>Hello back to you!</Message>" in exchange["twiml"]
    assert exchange["sent"]["sid"].startswith("SM")
    rows = dev_app.extensions["textback"].store.recent_messages(contact=ALICE)
    assert [(row.direction, row.body) for row in rows] == [
        ("inbound", "Hello"),
        ("outbound", "Hello back to you!"),
    ]
    assert rows[0].to_number == DEFAULT_TO


def test_history_groups_each_message_with_its_replies(dev_app: Flask) -> None:
    client = dev_app.test_client()
    token = open_phone(client)
    send(client, "Hello", token=token)
    send(client, "Something else", token=token, sender=BOB)
    dev_app.extensions["textback"].store.record_outbound(
        sid="SM" + "f" * 32,
        from_=DEFAULT_TO,
        to=ALICE,
        body="Sent from the API",
        media=(),
        status="queued",
        source="api",
    )
    history = client.get("/phone/history", query_string={"from": ALICE}).get_json()["exchanges"]
    assert [item["sent"]["body"] if item["sent"] else None for item in history] == ["Hello", None]
    assert history[0]["replies"][0]["text"] == "Hello back to you!"
    assert history[1]["replies"] == [{"text": "Sent from the API", "media": []}]
    assert client.get("/phone/history", query_string={"from": "+15551230000"}).status_code == 400


def test_a_stop_says_twilio_answers_it(make_app: Callable[..., Flask]) -> None:
    app = make_app(TEXTBACK_MODE="development")
    client = app.test_client()
    token = open_phone(client)
    exchange = send(client, "STOP", token=token).get_json()["exchange"]
    assert exchange["replies"] == []
    assert "Twilio answers STOP itself" in exchange["note"]
    assert "note" not in send(client, "Hello", token=token).get_json()["exchange"]
    [stopped, _] = client.get("/phone/history", query_string={"from": ALICE}).get_json()[
        "exchanges"
    ]
    assert "Twilio answers STOP itself" in stopped["note"]
    assert app.extensions["textback"].store.recent_messages(contact=ALICE)[0].source == (
        "optout stop"
    )


def test_a_stop_gets_textbacks_confirmation_when_textback_answers(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(TEXTBACK_MODE="development", TEXTBACK_CARRIER_REPLIES="textback")
    client = app.test_client()
    exchange = send(client, "STOP", token=open_phone(client)).get_json()["exchange"]
    assert exchange["replies"][0]["text"].startswith("You have successfully been unsubscribed")
    assert "note" not in exchange


@pytest.mark.parametrize(
    "extra",
    [
        {"TEXTBACK_PUBLIC_URL": "https://bot.example.com"},
        {"TEXTBACK_SIGNATURE_VALIDATION": "off"},
        {"TWILIO_AUTH_TOKEN": "", "TEXTBACK_MODE": "development"},
    ],
)
def test_signature_matches_what_the_webhook_checks(
    make_app: Callable[..., Flask], extra: dict[str, str]
) -> None:
    app = make_app(**{"TEXTBACK_MODE": "development", **extra})
    client = app.test_client()
    token = open_phone(client)
    answer = send(client, "Hello", token=token, headers={"Origin": ORIGIN})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["exchange"]["replies"][0]["text"] == "Hello back to you!"


def test_replies_with_pictures_come_back_as_media(make_app: Callable[..., Flask]) -> None:
    bot = Bot()

    @bot.on("owl")
    def owl(msg: Any) -> Reply:
        return Reply("Hoot", media=["https://demo.twilio.com/owl.png"])

    app = make_app(bot, TEXTBACK_MODE="development")
    client = app.test_client()
    token = open_phone(client)
    exchange = send(client, "owl", token=token, media=["https://example.com/cat.jpg"])
    exchange = exchange.get_json()["exchange"]
    assert exchange["replies"] == [{"text": "Hoot", "media": ["https://demo.twilio.com/owl.png"]}]
    assert exchange["sent"]["media"] == ["https://example.com/cat.jpg"]
    [inbound] = [
        row
        for row in app.extensions["textback"].store.recent_messages()
        if row.direction == "inbound"
    ]
    assert inbound.sid.startswith("MM")
    assert inbound.media == [{"url": "https://example.com/cat.jpg", "content_type": "image/jpeg"}]


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("{" * 80, "GSM-7", 1),
        ("{" * 81, "GSM-7", 2),
        ("é" * 160, "GSM-7", 1),
        ("ê" * 70, "UCS-2", 1),
        ("ê" * 71, "UCS-2", 2),
        ("😀" * 35, "UCS-2", 1),
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_sent_message_shows_encoding_and_segments(
    dev_app: Flask, body: str, encoding: str, segments: int
) -> None:
    client = dev_app.test_client()
    sent = send(client, body, token=open_phone(client)).get_json()["exchange"]["sent"]
    assert (sent["encoding"], sent["segments"]) == (encoding, segments)


@pytest.mark.parametrize(
    ("payload", "headers", "status"),
    [
        ({"from": ALICE, "body": "Hi"}, {"X-CSRF-Token": ""}, 403),
        ({"from": ALICE, "body": "Hi"}, {"X-CSRF-Token": "forged"}, 403),
        ({"from": ALICE, "body": "Hi"}, {"Origin": "https://evil.example"}, 403),
        ({"from": ALICE, "body": "Hi"}, {"Origin": "null"}, 403),
        ({"from": "+15551230000", "body": "STOP"}, {}, 400),
        ({"from": ALICE, "body": "x" * 1601}, {}, 400),
        ({"from": ALICE, "body": 5}, {}, 400),
        ({"from": ALICE, "body": ""}, {}, 400),
        ({"from": ALICE, "body": "Hi", "media": ["javascript:alert(1)"]}, {}, 400),
        ({"from": ALICE, "body": "Hi", "media": "https://x.example/a.png"}, {}, 400),
    ],
)
def test_bad_sends_are_refused_and_nothing_is_stored(
    dev_app: Flask, payload: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    client = dev_app.test_client()
    token = open_phone(client)
    answer = client.post(
        "/phone/send", json=payload, headers={"X-CSRF-Token": token, "Origin": ORIGIN, **headers}
    )
    assert answer.status_code == status
    assert answer.get_json()["error"]
    assert dev_app.extensions["textback"].store.recent_messages() == []


def test_cross_site_fetch_without_origin_is_refused(dev_app: Flask) -> None:
    client = dev_app.test_client()
    token = open_phone(client)
    answer = client.post(
        "/phone/send",
        json={"from": ALICE, "body": "Hi"},
        headers={"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"},
    )
    assert answer.status_code == 403


def test_form_posts_are_refused(dev_app: Flask) -> None:
    client = dev_app.test_client()
    token = open_phone(client)
    answer = client.post(
        "/phone/send",
        data={"from": ALICE, "body": "Hi"},
        headers={"X-CSRF-Token": token, "Origin": ORIGIN},
    )
    assert answer.status_code == 415


def test_token_of_another_session_is_refused(dev_app: Flask) -> None:
    token = open_phone(dev_app.test_client())
    other = dev_app.test_client()
    open_phone(other)
    assert send(other, "Hi", token=token).status_code == 403


@pytest.mark.parametrize(
    ("settings", "status"),
    [
        ({"TEXTBACK_MODE": "development", "TEXTBACK_PHONE": "off"}, 404),
        ({"TEXTBACK_MODE": "production"}, 404),
        ({"TEXTBACK_MODE": "production", "TEXTBACK_PHONE": "on"}, 302),
        ({"TEXTBACK_MODE": "development"}, 200),
    ],
)
def test_who_may_open_the_phone(
    make_app: Callable[..., Flask], settings: dict[str, str], status: int
) -> None:
    client = make_app(**settings).test_client()
    page = client.get("/phone")
    assert page.status_code == status
    if status == 302:
        assert page.headers["Location"] == "/admin/login?next=/phone"
        assert client.post("/phone/send", json={}).status_code == 403
        assert client.get("/phone/history", query_string={"from": ALICE}).status_code == 302


def test_admin_may_use_the_phone_in_production(make_app: Callable[..., Flask]) -> None:
    password_hash = generate_password_hash("pw", "pbkdf2:sha256:1000")
    app = make_app(
        TEXTBACK_MODE="production", TEXTBACK_PHONE="on", TEXTBACK_ADMIN_PASSWORD=password_hash
    )
    client = app.test_client()
    forged = app.test_client()
    with forged.session_transaction() as session:
        session[ADMIN_SESSION_KEY] = "made-up"  # a token that was never a login
    assert forged.get("/phone", base_url="https://localhost").status_code == 302
    with client.session_transaction() as session:
        service = app.extensions["textback"]
        session[ADMIN_SESSION_KEY] = admin_sessions.start(
            service.store.engine, service.settings.admin_password_key
        )
    page = client.get("/phone", base_url="https://localhost")
    assert page.status_code == 200
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))
    assert token is not None
    answer = client.post(
        "/phone/send",
        json={"from": ALICE, "body": "Hello"},
        headers={"X-CSRF-Token": token.group(1), "Origin": "https://localhost"},
        base_url="https://localhost",
    )
    assert answer.status_code == 200
    assert answer.get_json()["exchange"]["replies"][0]["text"] == "Hello back to you!"


@pytest.mark.parametrize(
    ("settings", "base_url", "headers"),
    [
        ({}, "http://localhost/sms", {}),
        (
            {"TEXTBACK_TRUSTED_PROXIES": "1"},
            "http://10.0.0.5:8000",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bot.example.com"},
        ),
    ],
)
def test_phone_behind_a_prefix_or_proxy_signs_the_url_twilio_would(
    make_app: Callable[..., Flask],
    settings: dict[str, str],
    base_url: str,
    headers: dict[str, str],
) -> None:
    client = make_app(TEXTBACK_MODE="development", **settings).test_client()
    page = client.get("/phone", base_url=base_url, headers=headers)
    html = page.get_data(as_text=True)
    prefix = "/sms" if base_url.endswith("/sms") else ""
    assert f'src="{prefix}/phone/static/phone.js"' in html
    token = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert token is not None
    origin = "https://bot.example.com" if headers else "http://localhost"
    answer = client.post(
        "/phone/send",
        json={"from": ALICE, "body": "Hello"},
        headers={"X-CSRF-Token": token.group(1), "Origin": origin, **headers},
        base_url=base_url,
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["exchange"]["replies"][0]["text"] == "Hello back to you!"
