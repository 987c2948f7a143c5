"""Every operator route, walked from the app's URL map: a page needs a login, an action needs
a login and the session's CSRF token, so a route added later cannot forget either."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.security import generate_password_hash

from textback.cli import main
from textback.core.profile import ContactProfile
from textback.storage.profiles import profile_for
from textback.storage.profiles import save_changes
from textback.storage.profiles import save_profiles
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .prism import ACCOUNT
from .test_admin import HTTPS
from .test_admin import contact_id
from .test_admin import log_in
from .test_admin import page
from .test_admin import token_in

PASSWORD = "correct horse battery"
FAST_HASH = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
OPEN = {"/admin/login", "/admin/static/<path:filename>"}


def concrete(rule: str) -> str:
    """The rule with a row id for each converter (``<int(max=…):contact_id>`` -> ``1``)."""
    return re.sub(r"<[^>]+>", "1", rule)


def operator_rules(app: Flask, method: str) -> list[str]:
    return sorted(
        concrete(rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/admin", "/phone"))
        and rule.rule not in OPEN
        and method in (rule.methods or ())
    )


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(TEXTBACK_ADMIN_PASSWORD=FAST_HASH)


def test_the_new_routes_are_in_the_walk(app: Flask) -> None:
    posts = operator_rules(app, "POST")
    for route in (
        "/admin/broadcasts/new",
        "/admin/conversations/1/profile",
        "/admin/conversations/1/take-over",
        "/admin/conversations/1/hand-back",
    ):
        assert route in posts
    assert "/admin/broadcasts" in operator_rules(app, "GET")


def test_every_page_needs_a_login(app: Flask) -> None:
    client = app.test_client()
    for route in operator_rules(app, "GET"):
        response = client.get(route, base_url=HTTPS)
        assert response.status_code in (302, 403, 404), route
        if response.status_code == 302:
            assert "/admin/login" in response.headers["Location"], route


def test_every_action_needs_a_login(app: Flask) -> None:
    client = app.test_client()
    for route in operator_rules(app, "POST"):
        assert client.post(route, data={}, base_url=HTTPS).status_code in (403, 404), route


def test_every_action_needs_the_csrf_token(app: Flask) -> None:
    client = app.test_client()
    assert log_in(client).status_code == 302
    for route in operator_rules(app, "POST"):
        if route == "/admin/logout" or route.startswith("/phone"):
            continue  # logging out would end the walk's login; /phone is off in production
        wrong = client.post(route, data={"csrf_token": "x"}, base_url=HTTPS)
        assert wrong.status_code == 400, route
        missing = client.post(route, data={}, base_url=HTTPS)
        assert missing.status_code == 400, route


# --- what contacts and broadcasts bring is shown as text, never as markup ---------------------

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ANN = "+15550001111"
OURS = "+15559990000"


def test_script_in_an_imported_name_and_a_broadcast_stays_text(
    make_app: Callable[..., Flask], tmp_path: Path, database_url: str
) -> None:
    app = make_app(
        TEXTBACK_ADMIN_PASSWORD=FAST_HASH,
        TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_API_BASE_URL="http://127.0.0.1:9",  # nothing is sent: only queued
    )
    people = tmp_path / "people.csv"
    people.write_text(f'phone,name,groups,note\n{ANN},"{XSS}",patients,"{XSS}"\n')
    env = {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}
    imported = CliRunner().invoke(main, ["contacts", "import", str(people)], env=env)
    assert imported.exit_code == 0, imported.output
    Phone(app, TEST_TOKEN).send("Hello", from_=ANN, to=OURS)
    client = app.test_client()
    assert log_in(client).status_code == 302

    pages = [page(client, "/admin"), page(client, f"/admin/conversations/{contact_id(app, ANN)}")]
    token = token_in(page(client, "/admin/broadcasts/new"))
    form = {"csrf_token": token, "text": f"{XSS} {{contact.name}}", "group": "patients"}
    for action in ("preview", "send"):
        response = client.post(
            "/admin/broadcasts/new",
            data={**form, "sender": OURS, "action": action},
            base_url=HTTPS,
            follow_redirects=True,
        )
        assert response.status_code == 200
        pages.append(response.get_data(as_text=True))
    pages.append(page(client, "/admin/broadcasts"))
    for html in pages:
        assert XSS not in html
        assert ESCAPED in html


@pytest.mark.parametrize("field", ["language", "timezone", "groups", "field_name"])
def test_a_pasted_page_in_the_profile_form_is_refused_in_a_short_message(
    app: Flask, field: str
) -> None:
    """The refusal quotes the value: cut, or the flash makes the session cookie too big for a
    browser (Werkzeug warns, and the tests turn warnings into errors)."""
    Phone(app, TEST_TOKEN).send("Hello", from_=ANN, to=OURS)
    client = app.test_client()
    assert log_in(client).status_code == 302
    thread = f"/admin/conversations/{contact_id(app, ANN)}"
    form = {"csrf_token": token_in(page(client, thread)), "field_value": "x", field: "é!" * 3000}
    response = client.post(thread + "/profile", data=form, base_url=HTTPS, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Not saved: " in html
    assert "é!" * 100 not in html


def test_a_field_a_flow_saved_while_the_form_was_open_is_kept(app: Flask) -> None:
    """The form sends the fields it showed; one saved since (save_to) is not the admin's to
    drop: only emptying a field on the form removes it."""
    engine = app.extensions["textback"].store.engine
    save_profiles(engine, [ContactProfile(ANN, "Ann", fields={"zip": "94607"})])
    Phone(app, TEST_TOKEN).send("Hello", from_=ANN, to=OURS)
    client = app.test_client()
    assert log_in(client).status_code == 302
    thread = f"/admin/conversations/{contact_id(app, ANN)}"
    token = token_in(page(client, thread))  # the page shows zip only
    with engine.begin() as connection:  # the contact answers a flow's save_to meanwhile
        save_changes(connection, ANN, {"fields.city": "Oakland"}, datetime.now(UTC))
    form = {"csrf_token": token, "name": "Ann Lee", "field_name": "zip", "field_value": ""}
    response = client.post(thread + "/profile", data=form, base_url=HTTPS, follow_redirects=True)
    assert "Contact saved." in response.get_data(as_text=True)
    saved = profile_for(engine, ANN)
    assert (saved.name, dict(saved.fields)) == ("Ann Lee", {"city": "Oakland"})


def test_a_broadcast_time_out_of_range_is_shown_not_a_500(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        TEXTBACK_ADMIN_PASSWORD=FAST_HASH,
        TEXTBACK_TIMEZONE="America/Los_Angeles",  # 9999-12-31 23:59 here is past datetime.max
        TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_API_BASE_URL="http://127.0.0.1:9",
    )
    save_profiles(app.extensions["textback"].store.engine, [ContactProfile(ANN, groups=("g",))])
    client = app.test_client()
    assert log_in(client).status_code == 302
    form = {
        "csrf_token": token_in(page(client, "/admin/broadcasts/new")),
        "text": "Hi",
        "group": "g",
        "sender": OURS,
        "at": "9999-12-31T23:59",
        "action": "send",
    }
    response = client.post("/admin/broadcasts/new", data=form, base_url=HTTPS)
    assert response.status_code == 200
    assert "is out of range" in response.get_data(as_text=True)
