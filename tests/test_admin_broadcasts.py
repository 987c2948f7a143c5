"""/admin/broadcasts: write, preview (text, encoding, segments, the group's cost), send or
schedule, and the list with counts; through the test client on both databases, and in Chromium."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from textback.core.profile import ContactProfile
from textback.storage import outbox as states
from textback.storage.outbox import outbox as outbox_table
from textback.storage.profiles import save_profiles

from .prism import ACCOUNT
from .test_admin import HTTPS
from .test_admin import log_in
from .test_admin import page
from .test_admin import token_in

PASSWORD = "correct horse battery"
FAST_HASH = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
OURS = "+15559990000"
ANN, BOB, CY = "+15550001111", "+15550002222", "+15550003333"
SENDING = {
    "TWILIO_ACCOUNT_SID": ACCOUNT,
    "TWILIO_API_BASE_URL": "http://127.0.0.1:9",  # nothing is sent: only queued
}


def contacts_of(app: Flask) -> None:
    store = app.extensions["textback"].store
    save_profiles(
        store.engine,
        [
            ContactProfile(ANN, name="Ann", groups=("patients",)),
            ContactProfile(BOB, name="Bob", groups=("patients", "staff")),
            ContactProfile(CY, groups=("staff",)),
        ],
    )
    store.set_opted_out(OURS, CY, True)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    built = make_app(TEXTBACK_ADMIN_PASSWORD=FAST_HASH, **SENDING)
    contacts_of(built)
    return built


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert log_in(client).status_code == 302
    return client


def submit(client: FlaskClient, **form: Any) -> Any:
    token = token_in(page(client, "/admin/broadcasts/new"))
    return client.post(
        "/admin/broadcasts/new",
        data={"csrf_token": token, **form},
        base_url=HTTPS,
        follow_redirects=True,
    )


def outbox_rows(app: Flask) -> list[Any]:
    with app.extensions["textback"].store.engine.connect() as connection:
        return list(connection.execute(select(outbox_table).order_by(outbox_table.c.to_number)))


def test_the_pages_need_a_login_and_the_form_its_csrf_token(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/admin/broadcasts", base_url=HTTPS).status_code == 302
    assert client.post("/admin/broadcasts/new", base_url=HTTPS).status_code == 403
    assert log_in(client).status_code == 302
    refused = client.post(
        "/admin/broadcasts/new",
        data={"text": "Hi", "group": "staff", "sender": OURS, "action": "send"},
        base_url=HTTPS,
    )
    assert refused.status_code == 400
    assert outbox_rows(app) == []


def test_preview_shows_the_sample_encoding_and_the_groups_cost(
    admin: FlaskClient, app: Flask
) -> None:
    html = page(admin, "/admin/broadcasts/new")
    assert 'aria-current="page">Broadcasts' in html
    assert 'patients <span class="meta">(2)</span>' in html
    response = submit(
        admin,
        text="Hi {contact.name|there}, closed tomorrow € " + "x" * 140,
        group=["patients", "staff"],
        sender=OURS,
        action="preview",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Hi Ann, closed tomorrow €" in html
    assert '<dd class="encoding">GSM-7</dd>' in html
    assert '<dd class="segments">2</dd>' in html  # 167 septets: the € counts two
    assert '<dd class="recipients">2 of 3 contacts</dd>' in html
    assert "1 opted out" in html
    assert '<dd class="total-segments">4 segments for the whole group (GSM-7)</dd>' in html
    assert outbox_rows(app) == []


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"text": "Hi {contact.nick}", "group": "staff"}, "unknown name {contact.nick}"),
        ({"text": "Hi"}, "choose at least one group"),
        ({"text": "Hi", "group": "staff", "at": "2001-01-01T09:00"}, "is in the past"),
    ],
)
def test_mistakes_are_shown_and_nothing_is_queued(
    admin: FlaskClient, app: Flask, form: dict[str, str], problem: str
) -> None:
    response = submit(admin, sender=OURS, action="send", **form)
    assert response.status_code == 200
    assert problem in response.get_data(as_text=True)
    assert outbox_rows(app) == []


def test_send_queues_once_even_when_the_form_is_sent_twice(admin: FlaskClient, app: Flask) -> None:
    token = token_in(page(admin, "/admin/broadcasts/new"))
    form = {
        "csrf_token": token,
        "text": "Hi {contact.name|there}",
        "group": ["patients", "staff"],
        "sender": OURS,
        "send_key": "one-form",
        "action": "send",
    }
    for _ in range(2):  # a double click
        response = admin.post(
            "/admin/broadcasts/new", data=form, base_url=HTTPS, follow_redirects=True
        )
    html = response.get_data(as_text=True)
    assert "Broadcast 1: 2 message(s) queued, 1 skipped" in html
    assert [(row.to_number, row.state, row.body) for row in outbox_rows(app)] == [
        (ANN, states.QUEUED, "Hi Ann"),
        (BOB, states.QUEUED, "Hi Bob"),
        (CY, states.CANCELLED, "Hi there"),
    ]
    assert "1 opted out" in html and '<td class="num">3</td>' in html


# --- in Chromium ------------------------------------------------------------------------------


@pytest.fixture
def site(make_app: Callable[..., Flask], live_server: Callable[[Flask], Any]) -> tuple[str, Flask]:
    app = make_app(
        TEXTBACK_MODE="development",
        TEXTBACK_ADMIN_PASSWORD=FAST_HASH,
        TEXTBACK_TIMEZONE="Europe/Berlin",
        **SENDING,
    )
    contacts_of(app)
    return live_server(app).url, app


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.route("https://**/*", lambda route: route.abort())
    yield tab
    context.close()
    assert errors == []


@pytest.mark.browser
def test_write_preview_and_schedule_a_broadcast(
    tab: Any, site: tuple[str, Flask], artifacts: Path
) -> None:
    url, app = site
    tab.goto(url + "/admin")
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.click("nav >> text=Broadcasts")
    assert "No broadcasts yet." in tab.locator("main").inner_text()
    tab.click("text=New broadcast")
    tab.fill("#text", "Hi {contact.name|there}, the clinic is closed tomorrow 👍")
    tab.check("input[name=group][value=patients]")
    tab.check("input[name=group][value=staff]")
    tab.fill("#sender", OURS)
    tab.fill("#at", "2099-12-24T09:00")
    tab.click("button:has-text('Preview')")
    preview = tab.locator("section.preview")
    assert "Hi Ann, the clinic is closed tomorrow 👍" in preview.locator(".bubble").inner_text()
    assert preview.locator(".encoding").inner_text() == "UCS-2"
    assert preview.locator(".segments").inner_text() == "1"
    assert preview.locator(".recipients").inner_text() == "2 of 3 contacts"
    assert preview.locator(".total-segments").inner_text().startswith("2 segments")
    # what was written stays in the form
    assert tab.input_value("#at") == "2099-12-24T09:00"
    assert tab.is_checked("input[name=group][value=staff]")
    tab.screenshot(path=str(artifacts / "admin-broadcast-preview.png"), full_page=True)
    assert outbox_rows(app) == []

    tab.click("button:has-text('Schedule')")
    assert (
        "Broadcast 1: 2 message(s) queued for 2099-12-24 09:00 CET"
        in tab.locator(".flash.ok").inner_text()
    )
    row = tab.locator("table.broadcasts tbody tr")
    assert row.count() == 1
    assert "scheduled" in row.inner_text() and "1 opted out" in row.inner_text()
    tab.screenshot(path=str(artifacts / "admin-broadcasts.png"), full_page=True)
    assert {(r.state, f"{r.send_at:%Y-%m-%d %H:%M}") for r in outbox_rows(app)} == {
        (states.SCHEDULED, "2099-12-24 08:00"),
        (states.CANCELLED, "2099-12-24 08:00"),
    }
