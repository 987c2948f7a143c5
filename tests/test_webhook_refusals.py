"""What the webhook refuses, and that a refused request leaves no trace."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from flask import Flask
from sqlalchemy import func
from sqlalchemy import select

from textback.channel.forms import inbound_form
from textback.channel.signature import sign
from textback.storage.models import Message
from textback.storage.models import RejectCount
from textback.testing import TEST_TOKEN


def stored_messages(app: Flask) -> int:
    with app.extensions["textback"].store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Message)).scalar_one())


def post(
    app: Flask,
    pairs: list[tuple[str, str]],
    *,
    signed_url: str | None = "http://localhost/twilio",
    token: str = TEST_TOKEN,
    path: str = "/twilio",
    headers: dict[str, str] | None = None,
    base_url: str = "http://localhost",
    content_type: str = "application/x-www-form-urlencoded",
) -> tuple[int, str]:
    all_headers = {"Content-Type": content_type, **(headers or {})}
    if signed_url is not None:
        all_headers["X-Twilio-Signature"] = sign(token, signed_url, pairs)
    response = app.test_client().post(
        path, data=urlencode(pairs), headers=all_headers, base_url=base_url
    )
    return response.status_code, response.get_data(as_text=True)


FORM = inbound_form("Hello", sid="SM" + "a" * 32)


@pytest.mark.parametrize(
    ("case", "kwargs", "status"),
    [
        ("no signature", {"signed_url": None}, 403),
        ("wrong token", {"token": "not-the-token"}, 403),
        ("signed for another URL", {"signed_url": "http://localhost/other"}, 403),
        ("signed for https, called over http", {"signed_url": "https://localhost/twilio"}, 403),
        ("JSON body", {"content_type": "application/json"}, 415),
        ("multipart body", {"content_type": "multipart/form-data; boundary=x"}, 415),
        ("plain text body", {"content_type": "text/plain"}, 415),
    ],
)
def test_refused_requests_store_nothing(
    make_app: Callable[..., Flask], case: str, kwargs: dict[str, object], status: int
) -> None:
    app = make_app()
    code, text = post(app, FORM, **kwargs)  # type: ignore[arg-type]
    assert code == status, case
    assert text.startswith(str(status))
    assert "Traceback" not in text
    assert stored_messages(app) == 0


def test_bad_signature_is_counted_not_kept(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    post(app, FORM, token="forged")
    post(app, FORM, signed_url=None)
    with app.extensions["textback"].store.engine.connect() as connection:
        counts = connection.execute(select(RejectCount.reason, RejectCount.count)).all()
    assert [(row.reason, row.count) for row in counts] == [("signature", 2)]


@pytest.mark.parametrize("missing", ["From", "To", "MessageSid"])
def test_signed_request_without_required_field_is_400(
    make_app: Callable[..., Flask], missing: str
) -> None:
    app = make_app()
    pairs = [(key, value) for key, value in FORM if key != missing]
    code, text = post(app, pairs)
    assert code == 400
    assert missing in text
    assert stored_messages(app) == 0


def test_empty_signed_body_is_400(make_app: Callable[..., Flask]) -> None:
    code, _ = post(make_app(), [])
    assert code == 400


def test_oversized_body_is_413(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    pairs = inbound_form("x" * (65 * 1024))
    code, text = post(app, pairs)
    assert code == 413
    assert "Traceback" not in text
    assert stored_messages(app) == 0


def test_secondary_token_is_accepted(make_app: Callable[..., Flask]) -> None:
    app = make_app(TWILIO_AUTH_TOKEN="new-token", TWILIO_AUTH_TOKEN_SECONDARY="old-token")
    assert post(app, FORM, token="old-token")[0] == 200
    assert post(app, inbound_form("Hello"), token="new-token")[0] == 200
    assert post(app, inbound_form("Hello"), token=TEST_TOKEN)[0] == 403


def test_parameters_twilio_adds_later_are_signed_and_kept(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    pairs = [*FORM, ("BrandNewParam", "surprise"), ("AnotherOne", "")]
    code, text = post(app, pairs)
    assert code == 200 and "Hello back to you!" in text
    with app.extensions["textback"].store.engine.connect() as connection:
        params = connection.execute(
            select(Message.params).where(Message.sid == FORM[2][1])
        ).scalar()
    assert params["BrandNewParam"] == "surprise"
    assert params["AnotherOne"] == ""


def test_repeated_keys_are_signed_and_kept(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    pairs = [*FORM, ("Tag", "b"), ("Tag", "a")]
    assert post(app, pairs)[0] == 200
    assert (
        post(app, [*inbound_form("Hello"), ("Tag", "b"), ("Tag", "a")], signed_url=None)[0] == 403
    )


def test_public_url_is_what_is_checked(make_app: Callable[..., Flask]) -> None:
    app = make_app(TEXTBACK_PUBLIC_URL="https://abc.ngrok.app")
    assert post(app, FORM, signed_url="https://abc.ngrok.app/twilio")[0] == 200
    assert post(app, inbound_form("Hello"), signed_url="http://localhost/twilio")[0] == 403


def test_public_url_with_the_request_query_string(make_app: Callable[..., Flask]) -> None:
    app = make_app(TEXTBACK_PUBLIC_URL="https://abc.ngrok.app")
    signed = "https://abc.ngrok.app/twilio?tenant=7&x=a%20b"
    assert post(app, FORM, signed_url=signed, path="/twilio?tenant=7&x=a%20b")[0] == 200
    assert (
        post(
            app,
            inbound_form("Hello"),
            signed_url="https://abc.ngrok.app/twilio",
            path="/twilio?tenant=7&x=a%20b",
        )[0]
        == 403
    )


PROXIED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "sms.example.com",
    "X-Forwarded-For": "203.0.113.9",
}


@pytest.mark.parametrize(
    ("proxies", "headers", "signed_url", "status"),
    [
        (0, {}, "http://localhost/twilio", 200),
        (0, PROXIED, "https://sms.example.com/twilio", 403),
        (1, PROXIED, "https://sms.example.com/twilio", 200),
        (1, PROXIED, "https://sms.example.com:443/twilio", 200),
        (1, PROXIED, "http://localhost/twilio", 403),
        (1, {**PROXIED, "X-Forwarded-Port": "8443"}, "https://sms.example.com:8443/twilio", 200),
        (1, {**PROXIED, "X-Forwarded-Proto": "http"}, "http://sms.example.com/twilio", 200),
        (1, {**PROXIED, "X-Forwarded-Proto": "http"}, "https://sms.example.com/twilio", 403),
        (
            1,
            {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "evil.test, sms.example.com"},
            "http://sms.example.com/twilio",
            200,
        ),
        (
            1,
            {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "evil.test, sms.example.com"},
            "https://evil.test/twilio",
            403,
        ),
        (
            2,
            {
                "X-Forwarded-Proto": "https, http",
                "X-Forwarded-Host": "sms.example.com, lb.internal",
                "X-Forwarded-For": "1.2.3.4, 10.0.0.1",
            },
            "https://sms.example.com/twilio",
            200,
        ),
    ],
)
def test_proxy_headers_only_when_trusted(
    make_app: Callable[..., Flask],
    proxies: int,
    headers: dict[str, str],
    signed_url: str,
    status: int,
) -> None:
    app = make_app(TEXTBACK_TRUSTED_PROXIES=proxies)
    assert post(app, inbound_form("Hello"), signed_url=signed_url, headers=headers)[0] == status


def test_validation_off_accepts_unsigned(make_app: Callable[..., Flask]) -> None:
    app = make_app(TWILIO_AUTH_TOKEN="", TEXTBACK_SIGNATURE_VALIDATION="off")
    assert post(app, FORM, signed_url=None)[0] == 200


def test_status_callback_is_signed_too(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    pairs = [("MessageSid", "SM" + "1" * 32), ("MessageStatus", "delivered")]
    assert post(app, pairs, path="/twilio/status", signed_url=None)[0] == 403
    assert (
        post(app, pairs, path="/twilio/status", signed_url="http://localhost/twilio/status")[0]
        == 204
    )


@pytest.mark.parametrize("path", ["/twilio", "/twilio/status"])
def test_get_on_webhook_is_405_plain(make_app: Callable[..., Flask], path: str) -> None:
    response = make_app().test_client().get(path)
    assert response.status_code == 405
    assert response.mimetype == "text/plain"
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "field", ["Body", "From", "To", "MessageSid", "AccountSid", "NumMedia", "MediaUrl0"]
)
def test_a_signed_repeated_field_is_400_and_not_stored(
    make_app: Callable[..., Flask], field: str
) -> None:
    """Twilio's signature sorts a key's values, so an added copy still verifies; before, the
    first value won and an injected Body was answered."""
    app = make_app()
    form = inbound_form("Hello", media=[("https://example.com/1.jpg", "image/jpeg")])
    status, text = post(app, [(field, "injected"), *form])
    assert status == 400 and f"{field} is repeated" in text
    assert stored_messages(app) == 0


def test_a_signed_repeated_status_is_400(make_app: Callable[..., Flask]) -> None:
    pairs = [("MessageSid", "SM" + "1" * 32), ("MessageStatus", "delivered")]
    signed_url = "http://localhost/twilio/status"
    app = make_app()
    repeated = [*pairs, ("MessageStatus", "failed")]
    status, text = post(app, repeated, path="/twilio/status", signed_url=signed_url)
    assert status == 400 and "MessageStatus is repeated" in text
    assert post(app, pairs, path="/twilio/status", signed_url=signed_url)[0] == 204


@pytest.mark.parametrize(
    ("config", "headers", "base_url", "webhook", "callback"),
    [
        (  # behind one trusted proxy that mounts textback under /sms
            {"TEXTBACK_TRUSTED_PROXIES": 1},
            {**PROXIED, "X-Forwarded-Prefix": "/sms"},
            "http://localhost",
            "https://sms.example.com/sms/twilio",
            "https://sms.example.com/sms/twilio/status",
        ),
        (  # a configured public URL, served under a path prefix (SCRIPT_NAME)
            {"TEXTBACK_PUBLIC_URL": "https://abc.ngrok.app"},
            {},
            "http://localhost/sms",
            "https://abc.ngrok.app/sms/twilio",
            "https://abc.ngrok.app/sms/twilio/status",
        ),
        (  # neither: the address Twilio uses is not known, so no callback is asked for
            {},
            {},
            "http://localhost",
            "http://localhost/twilio",
            None,
        ),
    ],
)
def test_delivery_reports_come_back_to_where_twilio_called(
    make_app: Callable[..., Flask],
    config: dict[str, object],
    headers: dict[str, str],
    base_url: str,
    webhook: str,
    callback: str | None,
) -> None:
    app = make_app(**config)
    sid = "SM" + "c" * 32
    status, twiml = post(
        app, inbound_form("Hello", sid=sid), signed_url=webhook, headers=headers, base_url=base_url
    )
    assert status == 200
    if callback is None:
        assert "action=" not in twiml
        return
    assert f'action="{callback}?for={sid}"' in twiml
    report = [("MessageSid", "SM" + "d" * 32), ("MessageStatus", "delivered")]
    reported = post(
        app,
        report,
        signed_url=f"{callback}?for={sid}",
        path=f"/twilio/status?for={sid}",
        headers=headers,
        base_url=base_url,
    )
    assert reported[0] == 204
    with app.extensions["textback"].store.engine.connect() as connection:
        reply = connection.execute(
            select(Message.sid, Message.status).where(Message.direction == "outbound")
        ).one()
    assert tuple(reply) == ("SM" + "d" * 32, "delivered")


def test_a_spliced_replay_is_not_a_new_message(make_app: Callable[..., Flask]) -> None:
    """Twilio's signature joins keys and values with nothing between them: a captured request
    signs the same when its MessageSid swallows the next parameter. Such a SID is refused."""
    app = make_app()
    sid = "SM" + "e" * 32
    rest = [
        pair
        for pair in inbound_form("STOP")
        if pair[0] not in ("MessageSid", "MessagingServiceSid")
    ]
    original = [("MessageSid", sid), ("MessagingServiceSid", "MG42"), *rest]
    signature = sign(TEST_TOKEN, "http://localhost/twilio", original)
    spliced = [("MessageSid", sid + "MessagingServiceSidMG42"), *rest]
    assert sign(TEST_TOKEN, "http://localhost/twilio", spliced) == signature  # the weakness
    assert post(app, original)[0] == 200
    status, text = post(app, spliced)
    assert status == 400 and "MessageSid is not a message SID" in text
    with app.extensions["textback"].store.engine.connect() as connection:
        inbound = connection.execute(
            select(func.count()).select_from(Message).where(Message.direction == "inbound")
        ).scalar()
    assert inbound == 1


@pytest.mark.parametrize("sid", ["SM1", "SM" + "a" * 31 + "\x00", "XX" + "a" * 32, "SM" + "g" * 32])
def test_malformed_message_sids_are_400(make_app: Callable[..., Flask], sid: str) -> None:
    pairs = [(k, sid if k == "MessageSid" else v) for k, v in inbound_form("Hello")]
    assert post(make_app(), pairs)[0] == 400


@pytest.mark.parametrize("field", ["From", "To", "AccountSid"])
def test_overlong_addresses_are_400_on_every_database(
    make_app: Callable[..., Flask], field: str
) -> None:
    pairs = [(k, "+1" + "5" * 70 if k == field else v) for k, v in inbound_form("Hello")]
    status, text = post(make_app(), pairs)
    assert status == 400 and field in text


@pytest.mark.parametrize(
    ("sid", "status"),
    [("SM1", "delivered"), ("SM" + "a" * 32, "delivered\x00"), ("SM" + "a" * 32, "x" * 40)],
)
def test_malformed_status_callbacks_are_400(
    make_app: Callable[..., Flask], sid: str, status: str
) -> None:
    pairs = [("MessageSid", sid), ("MessageStatus", status)]
    assert (
        post(make_app(), pairs, path="/twilio/status", signed_url="http://localhost/twilio/status")[
            0
        ]
        == 400
    )


def test_refusals_are_counted_in_the_metrics(make_app: Callable[..., Flask]) -> None:
    from .test_metrics import sample
    from .test_metrics import scrape

    app = make_app()
    before = scrape(app)
    post(app, FORM, token="forged")
    post(app, FORM, content_type="application/json")
    post(app, [(key, value) for key, value in FORM if key != "From"])
    after = scrape(app)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("textback_webhooks_total", outcome="refused") == 3
    assert delta("textback_webhook_refusals_total", reason="signature") == 1
    assert delta("textback_webhook_refusals_total", reason="media_type") == 1
    assert delta("textback_webhook_refusals_total", reason="malformed") == 1
