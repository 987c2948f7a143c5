"""/admin through the test client: who gets in, the login and its lockout, CSRF, the pages
and their actions, on conversations sent through signed webhooks."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from textback import Bot
from textback import Inbound
from textback import Reply
from textback.cli import main
from textback.config import Settings
from textback.storage import admin_sessions
from textback.storage.runs import flow_runs
from textback.testing import TEST_TOKEN
from textback.testing import Phone
from textback.web import auth

from .prism import ACCOUNT
from .prism import prism  # noqa: F401

PASSWORD = "correct horse battery"
# A cheap hash keeps the many logins of these tests fast; the default (scrypt) is tested below.
FAST_HASH = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
ALICE = "+15550000001"
BOB = "+15550000002"
XSS = "<script>alert(1)</script>"
HTTPS = "https://localhost"


def flow_bot() -> Bot:
    bot = Bot()

    @bot.on("survey")
    def survey(msg: Inbound) -> Reply:
        return Reply("Your name?", state="survey.name")

    return bot


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """A production server with an admin password."""
    return make_app(flow_bot(), TEXTBACK_ADMIN_PASSWORD=FAST_HASH)


def token_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def log_in(client: FlaskClient, password: str = PASSWORD, **environ: str) -> Any:
    page = client.get("/admin/login", base_url=HTTPS, environ_base=environ)
    form = {"csrf_token": token_in(page.get_data(as_text=True)), "password": password}
    return client.post("/admin/login", data=form, base_url=HTTPS, environ_base=environ)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    """A browser logged in to ``app``."""
    client = app.test_client()
    assert log_in(client).status_code == 302
    return client


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path, base_url=HTTPS)
    assert response.status_code == 200, response.status_code
    return str(response.get_data(as_text=True))


def post(client: FlaskClient, path: str, data: dict[str, str] | None = None) -> Any:
    form = {"csrf_token": token_in(page(client, "/admin")), **(data or {})}
    return client.post(path, data=form, base_url=HTTPS, follow_redirects=True)


def contact_id(app: Flask, number: str) -> int:
    from textback.queries import inbox

    engine = app.extensions["textback"].store.engine
    (row,) = [r for r in inbox.conversations(engine).rows if r.number == number]
    return row.contact_id


@pytest.mark.parametrize(
    ("config", "address", "status"),
    [
        ({}, "127.0.0.1", 404),  # production without a password: off
        ({"TEXTBACK_MODE": "development"}, "127.0.0.1", 200),
        ({"TEXTBACK_MODE": "development"}, "::1", 200),
        ({"TEXTBACK_MODE": "development"}, "192.0.2.7", 403),
        ({"TEXTBACK_ADMIN_PASSWORD": FAST_HASH}, "127.0.0.1", 302),
        ({"TEXTBACK_ADMIN_PASSWORD": FAST_HASH, "TEXTBACK_MODE": "development"}, "::1", 302),
    ],
)
@pytest.mark.parametrize("path", ["/admin", "/admin/overview", "/admin/login"])
def test_who_gets_in(
    make_app: Callable[..., Flask], config: dict[str, str], address: str, status: int, path: str
) -> None:
    client = make_app(**config).test_client()
    response = client.get(path, environ_base={"REMOTE_ADDR": address})
    if path == "/admin/login" and status in (200, 302):
        # the login form, or with nothing to log in to, on to the list
        status = 200 if "TEXTBACK_ADMIN_PASSWORD" in config else 302
    assert response.status_code == status
    if status == 302 and path != "/admin/login":
        assert response.headers["Location"] == f"/admin/login?next={path}"


def test_log_in_starts_a_new_secure_session(app: Flask) -> None:
    client = app.test_client()
    form_page = client.get("/admin/login?next=/admin/overview", base_url=HTTPS)
    assert 'type="password"' in form_page.get_data(as_text=True)
    before = token_in(form_page.get_data(as_text=True))
    response = client.post(
        "/admin/login",
        data={"csrf_token": before, "password": PASSWORD, "next": "/admin/overview"},
        base_url=HTTPS,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/overview"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert token_in(page(client, "/admin")) != before
    logout = client.post(
        "/admin/logout", data={"csrf_token": token_in(page(client, "/admin"))}, base_url=HTTPS
    )
    assert logout.headers["Location"] == "/admin/login"
    assert client.get("/admin", base_url=HTTPS).status_code == 302


def copy_of_cookie(client: FlaskClient, app: Flask) -> FlaskClient:
    """A second browser holding a copy of ``client``'s session cookie."""
    thief = app.test_client()
    with client.session_transaction(base_url=HTTPS) as original:
        stolen = dict(original)
    with thief.session_transaction(base_url=HTTPS) as copied:
        copied.update(stolen)
    return thief


def test_logging_out_ends_every_copy_of_the_cookie(app: Flask, admin: FlaskClient) -> None:
    thief = copy_of_cookie(admin, app)
    assert thief.get("/admin", base_url=HTTPS).status_code == 200
    admin.post(
        "/admin/logout", data={"csrf_token": token_in(page(admin, "/admin"))}, base_url=HTTPS
    )
    assert thief.get("/admin", base_url=HTTPS).status_code == 302


def test_changing_the_password_ends_every_login(
    make_app: Callable[..., Flask], database_url: str
) -> None:
    app = make_app(TEXTBACK_ADMIN_PASSWORD=FAST_HASH)
    client = app.test_client()
    assert log_in(client).status_code == 302
    assert client.get("/admin", base_url=HTTPS).status_code == 200
    other_hash = generate_password_hash("another one", "pbkdf2:sha256:1000")
    restarted = make_app(TEXTBACK_ADMIN_PASSWORD=other_hash)
    thief = copy_of_cookie(client, restarted)
    assert thief.get("/admin", base_url=HTTPS).status_code == 302
    same = make_app(TEXTBACK_ADMIN_PASSWORD=FAST_HASH)  # a restart with the same password
    assert copy_of_cookie(client, same).get("/admin", base_url=HTTPS).status_code == 200


def test_a_plain_password_login_holds_in_every_worker(make_app: Callable[..., Flask]) -> None:
    worker = make_app(TEXTBACK_ADMIN_PASSWORD=PASSWORD)  # each worker salts its own hash
    client = worker.test_client()
    assert log_in(client).status_code == 302
    other_worker = make_app(TEXTBACK_ADMIN_PASSWORD=PASSWORD)
    assert copy_of_cookie(client, other_worker).get("/admin", base_url=HTTPS).status_code == 200
    changed = make_app(TEXTBACK_ADMIN_PASSWORD="another one")
    assert copy_of_cookie(client, changed).get("/admin", base_url=HTTPS).status_code == 302


def test_a_login_lasts_twelve_hours(app: Flask) -> None:
    engine = app.extensions["textback"].store.engine
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    key = app.extensions["textback"].settings.admin_password_key
    token = admin_sessions.start(engine, key, now=start)
    assert admin_sessions.is_valid(engine, token, key, now=start + timedelta(hours=11))
    assert not admin_sessions.is_valid(engine, token, key, now=start + timedelta(hours=12))
    assert not admin_sessions.is_valid(engine, "not-a-token", key, now=start)
    assert not admin_sessions.is_valid(engine, token, "0" * 64, now=start)


def test_wrong_password_is_refused(app: Flask) -> None:
    client = app.test_client()
    response = log_in(client, "wrong")
    assert response.status_code == 401
    assert auth.WRONG_PASSWORD in response.get_data(as_text=True)
    assert client.get("/admin", base_url=HTTPS).status_code == 302


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_site(app: Flask, target: str) -> None:
    client = app.test_client()
    token = token_in(client.get("/admin/login", base_url=HTTPS).get_data(as_text=True))
    response = client.post(
        "/admin/login",
        data={"csrf_token": token, "password": PASSWORD, "next": target},
        base_url=HTTPS,
    )
    assert response.headers["Location"] == "/admin"


def test_lockout_after_five_failures_per_address(app: Flask) -> None:
    client = app.test_client()
    assert log_in(client).status_code == 302  # a success does not count
    client = app.test_client()
    for _ in range(5):
        assert log_in(client, "wrong").status_code == 401
    locked = log_in(client)
    assert locked.status_code == 429
    assert auth.LOCKED_OUT in locked.get_data(as_text=True)
    assert client.get("/admin", base_url=HTTPS).status_code == 302
    assert log_in(app.test_client(), REMOTE_ADDR="192.0.2.9").status_code == 302


def test_lockout_is_shared_through_redis(make_app: Callable[..., Flask]) -> None:
    pytest.importorskip("redis")
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379").ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc}")
    config = {"TEXTBACK_ADMIN_PASSWORD": FAST_HASH, "TEXTBACK_LIMITER_STORAGE": "redis://127.0.0.1"}
    first, second = make_app(**config), make_app(**config)
    address = f"198.51.100.{secrets.randbelow(250) + 1}-{secrets.token_hex(4)}"
    for _ in range(3):
        assert log_in(first.test_client(), "wrong", REMOTE_ADDR=address).status_code == 401
    for _ in range(2):
        assert log_in(second.test_client(), "wrong", REMOTE_ADDR=address).status_code == 401
    assert log_in(first.test_client(), REMOTE_ADDR=address).status_code == 429


def test_posts_without_the_csrf_token_are_refused(app: Flask, admin: FlaskClient) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("Hello", from_=ALICE)
    target = f"/admin/conversations/{contact_id(app, ALICE)}/opt-out"
    for form in ({"opted_out": "1"}, {"opted_out": "1", "csrf_token": "forged"}):
        response = admin.post(target, data=form, base_url=HTTPS)
        assert response.status_code == 400
    assert not phone.is_opted_out(ALICE)
    anonymous = app.test_client()
    assert anonymous.post("/admin/login", data={"password": PASSWORD}).status_code == 400


def test_pages_are_strict(app: Flask, admin: FlaskClient) -> None:
    Phone(app, TEST_TOKEN).send("Hello", from_=ALICE)
    for path in ("/admin", "/admin/overview", f"/admin/conversations/{contact_id(app, ALICE)}"):
        response = admin.get(path, base_url=HTTPS)
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src" not in policy and "unsafe-inline" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script" not in response.get_data(as_text=True)
    stylesheet = admin.get("/admin/static/admin.css", base_url=HTTPS)
    stylesheet.close()
    assert stylesheet.status_code == 200


def test_list_search_and_pages(
    app: Flask, admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("Pizza tonight?", from_=ALICE)
    phone.send("Hello", from_=BOB)
    phone.stop(from_=BOB)
    html = page(admin, "/admin")
    assert html.index(BOB) < html.index(ALICE)
    assert "opted out" in html
    searched = page(admin, "/admin?q=pizza")
    assert ALICE in searched and BOB not in searched
    assert BOB in page(admin, "/admin?q=0000002") and ALICE not in page(admin, "/admin?q=0000002")
    assert "No conversation matches" in page(admin, "/admin?q=nothing+like+this")
    monkeypatch.setattr("textback.queries.inbox.PAGE_SIZE", 1)
    first = page(admin, "/admin")
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older is not None and ALICE not in first
    second = page(admin, older.group(1).replace("&amp;", "&"))
    assert ALICE in second and 'rel="next"' not in second


def test_thread_shows_bodies_as_text(app: Flask, admin: FlaskClient) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send(f"Hi 😀 {XSS}", from_=ALICE)
    phone.mms("https://example.com/cat.jpg", body="cat", from_=ALICE)
    html = page(admin, f"/admin/conversations/{contact_id(app, ALICE)}")
    assert XSS not in html
    assert "Hi 😀 &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="https://example.com/cat.jpg"' in html
    assert html.count('class="bubble in"') == 2 and html.count('class="bubble out"') == 2
    listing = page(admin, "/admin")
    assert XSS not in listing


def test_thread_pages_back(app: Flask, admin: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    phone = Phone(app, TEST_TOKEN)
    for word in ("first", "second", "third"):
        phone.send(word, from_=ALICE)
    monkeypatch.setattr("textback.queries.contact_history.THREAD_SIZE", 4)
    thread = f"/admin/conversations/{contact_id(app, ALICE)}"
    latest = page(admin, thread)
    assert "third" in latest and "first" not in latest and "Newest messages" not in latest
    older = re.search(r'href="([^"]+)">← Older messages', latest)
    assert older is not None
    earlier = page(admin, older.group(1).replace("&amp;", "&"))
    assert "first" in earlier and "third" not in earlier and "Newest messages" in earlier


def test_opt_out_and_back_in(app: Flask, admin: FlaskClient) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("Hello", from_=ALICE)
    target = f"/admin/conversations/{contact_id(app, ALICE)}/opt-out"
    response = post(admin, target, {"opted_out": "1"})
    assert "Opted out" in response.get_data(as_text=True)
    assert phone.is_opted_out(ALICE)
    assert phone.send("Hello", from_=ALICE).text == ""
    post(admin, target, {"opted_out": "0"})
    assert not phone.is_opted_out(ALICE)


def test_end_flow(app: Flask, admin: FlaskClient) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("survey", from_=ALICE)
    thread = f"/admin/conversations/{contact_id(app, ALICE)}"
    assert "End this flow" in page(admin, thread)
    response = post(admin, thread + "/end-flow")
    assert "Flow ended." in response.get_data(as_text=True)
    with app.extensions["textback"].store.engine.connect() as connection:
        (run,) = connection.execute(select(flow_runs))
    assert run.status == "cancelled" and run.ended_at is not None
    assert "no open flow" in post(admin, thread + "/end-flow").get_data(as_text=True)


SIGNUP = """
[[flow]]
name = "signup"
trigger = "join"
done = "Signed up, {name}."

[[flow.step]]
ask = "Your name?"
save = "name"

[[flow.step]]
ask = "ZIP, {name}?"
save = "zip"
"""


def test_rules_file_flow_shows_its_answers_and_ends_from_the_page(
    make_app: Callable[..., Flask], tmp_path: Any
) -> None:
    rules = tmp_path / "signup.toml"
    rules.write_text(SIGNUP)
    app = make_app(TEXTBACK_ADMIN_PASSWORD=FAST_HASH, TEXTBACK_RULES=str(rules))
    client = app.test_client()
    assert log_in(client).status_code == 302
    phone = Phone(app, TEST_TOKEN)
    assert phone.send("join", from_=ALICE).text == "Your name?"
    assert phone.send("Ann", from_=ALICE).text == "ZIP, Ann?"
    thread = f"/admin/conversations/{contact_id(app, ALICE)}"
    html = page(client, thread)
    assert "signup" in html and "Ann" in html and "End this flow" in html
    assert "Flow ended." in post(client, thread + "/end-flow").get_data(as_text=True)
    # The flow is over: the next text is not taken as the ZIP code.
    assert phone.send("94107", from_=ALICE).text != "Signed up, Ann."
    assert "End this flow" not in page(client, thread)


def test_send_without_credentials_says_so(app: Flask, admin: FlaskClient) -> None:
    phone = Phone(app, TEST_TOKEN)
    phone.send("Hello", from_=ALICE)
    thread = f"/admin/conversations/{contact_id(app, ALICE)}"
    assert "Sending is not set up: TWILIO_ACCOUNT_SID is not set" in page(admin, thread)
    response = post(admin, thread + "/send", {"body": "Are you there?"})
    assert "Not sent: TWILIO_ACCOUNT_SID is not set" in response.get_data(as_text=True)
    assert [m.body for m in phone.messages(ALICE)][-1] != "Are you there?"


@pytest.mark.prism
def test_send_goes_through_the_outbox_and_shows_its_state(
    make_app: Callable[..., Flask],
    prism: str,  # noqa: F811
) -> None:
    app = make_app(
        TEXTBACK_ADMIN_PASSWORD=FAST_HASH, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_API_BASE_URL=prism
    )
    client = app.test_client()
    log_in(client)
    phone = Phone(app, TEST_TOKEN)
    phone.send("Hello", from_=ALICE)
    thread = f"/admin/conversations/{contact_id(app, ALICE)}"
    html = page(client, thread)
    assert 'name="body"' in html and 'http-equiv="refresh"' not in html
    key = re.search(r'name="send_key" value="([^"]+)"', html)
    assert key is not None
    form = {"body": "Are you there?", "send_key": key.group(1)}
    response = post(client, thread + "/send", form)
    assert "Queued as outbox 1" in response.get_data(as_text=True)
    assert post(client, thread + "/send", form).status_code == 200  # the same form again
    html = page(client, thread)
    assert 'class="tag ">queued</span>' in html and 'http-equiv="refresh"' in html
    outbox = app.extensions["textback_outbox"]
    assert outbox.rows.counts() == {"queued": 1}  # a resubmitted form queued nothing more
    outbox.deliver(1)  # what the worker does
    sent = phone.messages(ALICE)[-1]
    assert (sent.body, sent.source, sent.direction) == ("Are you there?", "admin", "outbound")
    html = page(client, thread)
    assert 'class="tag ok">sent</span>' in html and 'http-equiv="refresh"' not in html
    assert "Type a message" in post(client, thread + "/send", {"body": " "}).get_data(as_text=True)


def test_overview(app: Flask, admin: FlaskClient) -> None:
    phone = Phone(app, TEST_TOKEN)
    reply = phone.send("Hello", from_=ALICE)
    phone.report(reply, "failed", error_code="30006")
    phone.stop(from_=BOB)
    assert phone.post("/twilio", [("From", ALICE)], token="forged").status_code == 403
    html = page(admin, "/admin/overview")
    assert "Last 24 hours: 2 in, 1 out" in html  # Twilio confirms the STOP, not textback
    assert html.count("<svg") == 2
    assert "Opted out: 1" in html and "Failed deliveries: 1" in html
    assert "failed (30006)" in html
    assert re.search(r"bad signature</td><td class=\"num\">1<", html)
    assert "optout stop" in html


def test_password_may_be_given_hashed() -> None:
    result = CliRunner().invoke(main, ["hash-password"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    hashed = result.output.strip().splitlines()[-1]
    assert hashed.startswith("scrypt:") and PASSWORD not in hashed
    settings = Settings.load({"TEXTBACK_ADMIN_PASSWORD": hashed}, environ={})
    assert settings.admin_password_hash == hashed
    plain = Settings.load({"TEXTBACK_ADMIN_PASSWORD": PASSWORD}, environ={})
    assert plain.admin_password_hash is not None and PASSWORD not in plain.admin_password_hash
    assert check_password_hash(plain.admin_password_hash, PASSWORD)
    assert Settings.load({}, environ={}).admin_password_hash is None


def test_plain_password_logs_in(make_app: Callable[..., Flask]) -> None:
    app = make_app(TEXTBACK_ADMIN_PASSWORD=PASSWORD)
    assert log_in(app.test_client()).status_code == 302
    assert log_in(app.test_client(), "scrypt").status_code == 401


def test_unknown_conversation_is_404(admin: FlaskClient) -> None:
    assert admin.get("/admin/conversations/999", base_url=HTTPS).status_code == 404
    huge = "99999999999999999999999"
    assert admin.get(f"/admin/conversations/{huge}", base_url=HTTPS).status_code == 404


@pytest.mark.parametrize("before", ["\u00b2", "99999999999999999999999", "-1", "x", ""])
def test_odd_paging_positions_are_ignored(app: Flask, admin: FlaskClient, before: str) -> None:
    Phone(app, TEST_TOKEN).send("hi", from_=ALICE)
    thread = f"/admin/conversations/{contact_id(app, ALICE)}"
    assert ALICE in page(admin, f"/admin?before={before}")
    assert "hi" in page(admin, f"{thread}?before={before}")


def test_refusals_before_a_view_carry_the_headers(app: Flask, admin: FlaskClient) -> None:
    response = admin.get("/admin/logout", base_url=HTTPS)
    assert response.status_code == 405
    assert response.headers["Content-Security-Policy"] == auth.CONTENT_SECURITY_POLICY
    assert "Content-Security-Policy" not in admin.get("/", base_url=HTTPS).headers


def test_send_refuses_a_contact_who_opted_out_since_the_page_loaded(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    from textback.channel import rest

    from .test_twilio_api import FakeTwilio

    fake = FakeTwilio(500, {})
    monkeypatch.setattr(rest, "http_client_for", lambda settings: fake)
    app = make_app(
        TEXTBACK_ADMIN_PASSWORD=FAST_HASH,
        TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_API_KEY="SK1",
        TWILIO_API_SECRET="secret",
    )
    client = app.test_client()
    log_in(client)
    phone = Phone(app, TEST_TOKEN)
    phone.send("Hello", from_=ALICE)
    thread = f"/admin/conversations/{contact_id(app, ALICE)}"
    assert 'name="body"' in page(client, thread)  # the form, before the STOP arrives
    phone.stop(from_=ALICE)
    html = post(client, thread + "/send", {"body": "Promo"}).get_data(as_text=True)
    assert f"Not sent: {ALICE} opted out of messages from" in html
    assert fake.requests == []
    assert [m.body for m in phone.messages(ALICE)][-1] != "Promo"
