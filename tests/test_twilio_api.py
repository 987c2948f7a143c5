"""Twilio's REST API: the client, sending, and Twilio's errors as one line; from a fake HTTP
client answering like Twilio, and against Prism (Twilio's own OpenAPI contract)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from twilio.http import HttpClient
from twilio.http.response import Response

from textback.channel import rest
from textback.channel.rest import BaseUrlHttpClient
from textback.channel.rest import TwilioApiError
from textback.cli import main
from textback.config import Settings
from textback.errors import ConfigError
from textback.outbound.send import OptedOutError
from textback.outbound.send import send_message
from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine
from textback.storage.store import Store
from textback.storage.tables import contacts

from .prism import ACCOUNT
from .prism import cli_env
from .prism import prism  # noqa: F401
from .prism import run_cli

OUR_NUMBER = "+15559990000"
THEM = "+15550001111"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    ensure_schema(engine)
    yield Store(engine)
    engine.dispose()


def api_settings(base_url: str = "https://api.twilio.com", **extra: str) -> Settings:
    values = {
        "TEXTBACK_MODE": "production",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "secret-token",
        "TWILIO_API_BASE_URL": base_url,
        **extra,
    }
    return Settings.load(values, environ={})


def outbound_rows(store: Store) -> list[Any]:
    return [row for row in store.recent_messages() if row.direction == "outbound"]


class FakeTwilio(HttpClient):  # type: ignore[misc]
    """Answers every request with one canned response and remembers what was asked."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(logging.getLogger("fake-twilio"), False)
        self.status = status
        self.payload = payload
        self.requests: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.requests.append({"method": method, "url": url, **kwargs})
        return Response(self.status, json.dumps(self.payload))


@pytest.fixture
def fake_twilio(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, dict[str, Any]], FakeTwilio]:
    def install(status: int, payload: dict[str, Any]) -> FakeTwilio:
        fake = FakeTwilio(status, payload)
        monkeypatch.setattr(rest, "http_client_for", lambda settings: fake)
        return fake

    return install


def twilio_error(code: int, message: str, status: int = 400) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def created_message(sid: str, status: str = "queued") -> dict[str, Any]:
    return {"sid": sid, "status": status, "account_sid": ACCOUNT, "to": THEM, "from": OUR_NUMBER}


# --- the http_client that selects the API ------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        (
            "http://127.0.0.1:4010",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            "http://127.0.0.1:4010/2010-04-01/Accounts/AC1/Messages.json",
        ),
        (
            "https://proxy.example/twilio/",
            "https://api.twilio.com/2010-04-01/Accounts.json?PageSize=5",
            "https://proxy.example/twilio/2010-04-01/Accounts.json?PageSize=5",
        ),
        (
            "https://api.twilio.com",
            "https://api.twilio.com/2010-04-01/Accounts.json",
            "https://api.twilio.com/2010-04-01/Accounts.json",
        ),
    ],
)
def test_base_url_client_rewrites_scheme_and_host(base: str, url: str, expected: str) -> None:
    assert BaseUrlHttpClient(base).rewrite(url) == expected


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"TWILIO_AUTH_TOKEN": "t"}, "TWILIO_ACCOUNT_SID is not set"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT}, "no credentials"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY": "SK1"}, "no credentials"),
    ],
)
def test_missing_credentials_are_one_line(
    settings: dict[str, str], problem: str, tmp_path: Path
) -> None:
    loaded = Settings.load(
        {"TEXTBACK_MODE": "production", "TEXTBACK_INSTANCE": str(tmp_path), **settings},
        environ={},
    )
    with pytest.raises(ConfigError, match=problem):
        rest.rest_client(loaded)


def test_development_token_is_never_a_credential(tmp_path: Path) -> None:
    settings = Settings.load(
        {
            "TEXTBACK_MODE": "development",
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TEXTBACK_INSTANCE": str(tmp_path),
        },
        environ={},
    )
    assert settings.dev_token
    with pytest.raises(ConfigError, match="no credentials"):
        rest.rest_client(settings)


def test_api_key_pair_is_used_for_basic_auth(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio]
) -> None:
    fake = fake_twilio(201, created_message("SM" + "1" * 32))
    settings = api_settings(TWILIO_API_KEY="SK" + "k" * 32, TWILIO_API_SECRET="key-secret")
    send_message(settings, store, to=THEM, body="Hi", from_=OUR_NUMBER)
    assert fake.requests[0]["auth"] == ("SK" + "k" * 32, "key-secret")
    assert f"/Accounts/{ACCOUNT}/Messages.json" in fake.requests[0]["url"]


# --- sending, with a fake Twilio -------------------------------------------------------------


def test_send_records_sid_media_and_asks_for_status_callbacks(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio]
) -> None:
    fake = fake_twilio(201, created_message("SM" + "2" * 32, "accepted"))
    settings = api_settings(TEXTBACK_PUBLIC_URL="https://bot.example")
    media = ["https://example.com/a.png", "https://example.com/b.png"]
    sid, status = send_message(
        settings, store, to=THEM, body="Your order", from_=OUR_NUMBER, media=media
    )
    assert (sid, status) == ("SM" + "2" * 32, "accepted")
    data = fake.requests[0]["data"]
    assert data["To"] == THEM
    assert data["From"] == OUR_NUMBER
    assert data["MediaUrl"] == media
    assert data["StatusCallback"] == "https://bot.example/twilio/status"
    [row] = outbound_rows(store)
    assert (row.sid, row.body, row.status, row.source) == (sid, "Your order", "accepted", "api")
    assert [item["url"] for item in row.media] == media


def test_send_without_public_url_asks_for_no_callback(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio]
) -> None:
    fake = fake_twilio(201, created_message("SM" + "3" * 32))
    send_message(api_settings(), store, to=THEM, body="Hi", from_=OUR_NUMBER)
    assert "StatusCallback" not in fake.requests[0]["data"]


def test_send_replies_from_the_number_the_contact_texted(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio]
) -> None:
    store.set_opted_out("+15558887777", THEM, False)
    fake = fake_twilio(201, created_message("SM" + "4" * 32))
    send_message(api_settings(), store, to=THEM, body="Hi")
    assert fake.requests[0]["data"]["From"] == "+15558887777"


def test_send_without_a_sender_says_so(store: Store) -> None:
    with pytest.raises(ConfigError, match="--from"):
        send_message(api_settings(), store, to=THEM, body="Hi")


def test_error_21610_marks_the_contact_opted_out(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio]
) -> None:
    fake_twilio(400, twilio_error(21610, "Attempt to send to unsubscribed recipient"))
    with pytest.raises(TwilioApiError) as caught:
        send_message(api_settings(), store, to=THEM, body="Hi", from_=OUR_NUMBER)
    assert caught.value.code == 21610
    assert "\n" not in str(caught.value)
    assert "replied STOP" in str(caught.value)
    with store.engine.connect() as connection:
        opted_out = connection.execute(
            select(contacts.c.opted_out).where(contacts.c.number == THEM)
        ).scalar()
    assert opted_out is True
    assert outbound_rows(store) == []


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (401, twilio_error(20003, "Authenticate", 401), "refused the credentials"),
        (404, twilio_error(20404, "The requested resource was not found", 404), "not found"),
        (
            400,
            twilio_error(21211, "The 'To' number +1555 is not a valid phone number."),
            "error 21211): The 'To' number +1555 is not a valid phone number",
        ),
        (500, {"unexpected": True}, "HTTP 500"),
    ],
)
def test_twilio_errors_are_one_line(
    store: Store,
    fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio],
    status: int,
    payload: dict[str, Any],
    expected: str,
) -> None:
    fake_twilio(status, payload)
    with pytest.raises(TwilioApiError) as caught:
        send_message(api_settings(), store, to=THEM, body="Hi", from_=OUR_NUMBER)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreachable_api_is_one_line(store: Store) -> None:
    from .prism import free_port

    base = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TwilioApiError, match=f"cannot reach {base}"):
        send_message(api_settings(base), store, to=THEM, body="Hi", from_=OUR_NUMBER)


@pytest.mark.parametrize("base", ["api.twilio.com", "ftp://api.twilio.com", "https://"])
def test_bad_api_base_url_is_a_config_error(store: Store, base: str) -> None:
    with pytest.raises(ConfigError, match="TWILIO_API_BASE_URL"):
        send_message(api_settings(base), store, to=THEM, body="Hi", from_=OUR_NUMBER)


# --- against Prism: Twilio's real API contract -----------------------------------------------


@pytest.mark.prism
def test_send_command_against_prism_records_the_sid(
    prism: str,  # noqa: F811
    database_url: str,
    store: Store,
) -> None:
    env = cli_env(prism, database_url, TEXTBACK_PUBLIC_URL="https://bot.example")
    result = run_cli(["send", THEM, "Your table is ready 🍽", "--from", OUR_NUMBER], env)
    assert result.exit_code == 0, result.output
    sid, status = result.output.split()
    assert sid.startswith("SM")
    [row] = outbound_rows(store)
    assert (row.sid, row.status, row.to_number) == (sid, status, THEM)
    assert row.body == "Your table is ready 🍽"


class NoAuth(BaseUrlHttpClient):
    """Sends requests without credentials (Prism answers 401 like Twilio)."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        kwargs["auth"] = None
        return super().request(method, url, *args, **kwargs)


class WithoutTo(BaseUrlHttpClient):
    """Leaves out the required To parameter (a request Twilio's contract refuses)."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        kwargs["data"] = {k: v for k, v in (kwargs.get("data") or {}).items() if k != "To"}
        return super().request(method, url, *args, **kwargs)


@pytest.mark.prism
@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (NoAuth, "refused the credentials (HTTP 401): check TWILIO_ACCOUNT_SID"),
        (WithoutTo, "(HTTP 422): Request body must have required property 'To'"),
    ],
)
def test_prism_refusals_are_one_line(
    prism: str,  # noqa: F811
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    client: type[BaseUrlHttpClient],
    expected: str,
) -> None:
    monkeypatch.setattr(rest, "http_client_for", lambda settings: client(prism))
    with pytest.raises(TwilioApiError) as caught:
        send_message(api_settings(prism), store, to=THEM, body="Hi", from_=OUR_NUMBER)
    assert expected in str(caught.value)
    assert outbound_rows(store) == []


@pytest.mark.prism
def test_wrong_api_base_url_is_one_line(prism: str, database_url: str) -> None:  # noqa: F811
    result = CliRunner().invoke(
        main, ["send", THEM, "Hi", "--from", OUR_NUMBER], env=cli_env(prism + "/v9", database_url)
    )
    assert result.exit_code == 1
    assert result.output.startswith("textback: error: not found (HTTP 404)")
    assert len(result.output.strip().splitlines()) == 1


# --- textback's own opt-outs: refused before any API call ------------------------------------


def opted_out(store: Store, our_number: str, number: str) -> None:
    store.set_opted_out(our_number, number, True)


@pytest.mark.parametrize("from_", [OUR_NUMBER, None])
def test_send_refuses_a_contact_who_opted_out(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio], from_: str | None
) -> None:
    fake = fake_twilio(201, created_message("SM" + "5" * 32))
    opted_out(store, OUR_NUMBER, THEM)
    with pytest.raises(OptedOutError) as caught:
        send_message(api_settings(), store, to=THEM, body="Promo", from_=from_)
    assert fake.requests == []
    assert outbound_rows(store) == []
    line = str(caught.value)
    assert THEM in line and OUR_NUMBER in line and "opted out" in line
    stamp = store.opt_out_of(OUR_NUMBER, THEM)
    assert stamp is not None and stamp.at is not None
    assert f"{stamp.at:%Y-%m-%d %H:%M} UTC" in line


def test_an_opt_out_from_one_number_allows_sending_from_another(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio]
) -> None:
    fake = fake_twilio(201, created_message("SM" + "6" * 32))
    opted_out(store, "+15557770000", THEM)
    send_message(api_settings(), store, to=THEM, body="Hi", from_=OUR_NUMBER)
    assert len(fake.requests) == 1


def test_without_a_sender_an_opt_out_from_any_number_refuses(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio]
) -> None:
    fake = fake_twilio(201, created_message("SM" + "7" * 32))
    store.set_opted_out(OUR_NUMBER, THEM, False)  # texted this number
    opted_out(store, "+15557770000", THEM)  # and opted out of another
    with pytest.raises(OptedOutError, match="opted out of messages from \\+15557770000"):
        send_message(api_settings(), store, to=THEM, body="Hi")
    assert fake.requests == []


def test_send_after_start_is_allowed_again(
    store: Store, fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio]
) -> None:
    fake = fake_twilio(201, created_message("SM" + "8" * 32))
    opted_out(store, OUR_NUMBER, THEM)
    store.set_opted_out(OUR_NUMBER, THEM, False)
    send_message(api_settings(), store, to=THEM, body="Welcome back", from_=OUR_NUMBER)
    assert len(fake.requests) == 1


def test_send_command_refuses_a_contact_who_opted_out(
    database_url: str,
    store: Store,
    fake_twilio: Callable[[int, dict[str, Any]], FakeTwilio],
) -> None:
    fake = fake_twilio(201, created_message("SM" + "9" * 32))
    opted_out(store, OUR_NUMBER, THEM)
    env = cli_env("https://api.twilio.com", database_url)
    result = CliRunner().invoke(main, ["send", THEM, "promo", "--from", OUR_NUMBER], env=env)
    assert result.exit_code == 1
    assert result.output.startswith(f"textback: error: {THEM} opted out of messages from")
    assert len(result.output.strip().splitlines()) == 1
    assert fake.requests == []
