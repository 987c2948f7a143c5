"""/admin in Debian's Chromium, driven by Playwright, against a live server with conversations
sent through the signed webhook. Screenshots of each page go to ``artifacts/``."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from textback.testing import TEST_TOKEN
from textback.testing import Phone
from textback.web import auth

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
ALICE = "+15550000001"
BOB = "+15550000002"
XSS = "<script>alert(1)</script>"
GREETING = f"Hi 😀 {XSS}"


@pytest.fixture
def site(make_app: Callable[..., Flask], live_server: Callable[[Flask], Any]) -> tuple[str, Phone]:
    """A server with a password and two conversations; returns its URL and the phone."""
    app = make_app(
        TEXTBACK_MODE="development",  # plain-http cookies for the loopback server
        TEXTBACK_ADMIN_PASSWORD=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"),
    )
    phone = Phone(app, TEST_TOKEN)
    phone.send(GREETING, from_=ALICE)
    phone.mms("https://example.com/cat.jpg", body="a cat", from_=ALICE)
    phone.send("Hello", from_=BOB)
    phone.stop(from_=BOB)
    return live_server(app).url, phone


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    """A browser tab that records dialogs and script errors (there must be none)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route("https://**/*", lambda route: route.abort())  # nothing leaves the machine
    yield page
    context.close()
    assert dialogs == []
    assert errors == []


def log_in(tab: Any, url: str, password: str = PASSWORD) -> None:
    tab.goto(url + "/admin")
    tab.fill("#password", password)
    tab.click("button[type=submit]")


def test_login_list_thread_opt_out_and_overview(
    tab: Any, site: tuple[str, Phone], artifacts: Path
) -> None:
    url, phone = site
    tab.goto(url + "/admin")
    assert tab.url.endswith("/admin/login?next=/admin")
    tab.screenshot(path=str(artifacts / "admin-login.png"))

    log_in(tab, url, "wrong password")
    assert tab.locator(".flash.error").inner_text() == auth.WRONG_PASSWORD
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    assert tab.url == url + "/admin"

    rows = tab.locator("table.list tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").first.inner_text() == BOB
    assert "opted out" in rows.nth(0).inner_text()
    tab.screenshot(path=str(artifacts / "admin-conversations.png"), full_page=True)

    tab.fill("input[name=q]", "cat")
    tab.press("input[name=q]", "Enter")
    assert tab.locator("table.list tbody tr").count() == 1

    tab.click(f"text={ALICE}")
    first = tab.locator(".bubble.in .body").first
    assert first.inner_text() == GREETING  # the script tag is text, not an element
    assert tab.locator(".thread script").count() == 0
    assert tab.locator(".bubble.in .media a").get_attribute("href") == (
        "https://example.com/cat.jpg"
    )
    assert "Sending is not set up" in tab.locator("aside").inner_text()
    tab.screenshot(path=str(artifacts / "admin-thread.png"), full_page=True)

    tab.click("button:has-text('Opt out')")
    assert "Opted out" in tab.locator(".flash.ok").inner_text()
    assert "opted out" in tab.locator(".heading .tag").inner_text()
    assert phone.is_opted_out(ALICE)
    tab.click("button:has-text('Opt back in')")
    assert not phone.is_opted_out(ALICE)

    tab.click("nav >> text=Overview")
    assert tab.locator("svg.chart").count() == 2
    assert "Opted out: 1" in tab.locator("main").inner_text()
    assert tab.locator("svg.chart rect.bar-in").count() == 24 + 168
    tab.screenshot(path=str(artifacts / "admin-overview.png"), full_page=True)

    tab.click("text=Log out")
    assert "/admin/login" in tab.url


def test_reading_works_without_javascript(browser: Any, site: tuple[str, Phone]) -> None:
    url, _ = site
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        log_in(tab, url)
        assert tab.locator("table.list tbody tr").count() == 2
        tab.click(f"text={ALICE}")
        assert tab.locator(".bubble.in .body").first.inner_text() == GREETING
        tab.click("nav >> text=Overview")
        assert tab.locator("svg.chart").count() == 2
    finally:
        context.close()
