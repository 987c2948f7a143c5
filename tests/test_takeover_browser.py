"""Take over and hand back in Debian's Chromium, driven by Playwright, against a live server:
a webhook message shows as waiting, the reply from the admin goes to the outbox, and after the
hand-back the bot answers again. Screenshots go to ``artifacts/``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .test_admin_browser import PASSWORD
from .test_admin_browser import log_in
from .test_admin_browser import tab  # noqa: F401

pytestmark = pytest.mark.browser

ALICE = "+15550000001"
BOB = "+15550000002"


@pytest.fixture
def site(make_app: Callable[..., Flask], live_server: Callable[[Flask], Any]) -> tuple[str, Phone]:
    """A server that can queue messages (no worker sends them) and two conversations."""
    app = make_app(
        TEXTBACK_MODE="development",
        TEXTBACK_ADMIN_PASSWORD=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"),
        TWILIO_ACCOUNT_SID="AC" + "1" * 32,
        TWILIO_API_KEY="SK" + "1" * 32,
        TWILIO_API_SECRET="secret",
    )
    phone = Phone(app, TEST_TOKEN)
    phone.send("Hello", from_=ALICE)
    phone.send("Hello", from_=BOB)
    return live_server(app).url, phone


def test_take_over_reply_and_hand_back(
    tab: Any,  # noqa: F811
    site: tuple[str, Phone],
    artifacts: Path,
) -> None:
    url, phone = site
    log_in(tab, url)
    tab.click(f"text={ALICE}")
    tab.click("button:has-text('Take over')")
    assert "Taken over" in tab.locator(".flash.ok").inner_text()
    assert "Nothing waits for a reply" in tab.locator("section.takeover").inner_text()

    assert phone.send("Can I talk to a person?", from_=ALICE).text == ""
    tab.reload()
    waiting = tab.locator(".bubble.in", has=tab.locator(".needs-reply"))
    assert waiting.count() == 1
    assert waiting.locator(".body").inner_text() == "Can I talk to a person?"
    assert "taken over" in waiting.locator(".source").inner_text()
    assert "waiting under a minute" in tab.locator("section.takeover").inner_text()
    tab.screenshot(path=str(artifacts / "admin-taken-over.png"), full_page=True)

    tab.click("nav >> text=Conversations")
    queue = tab.locator("section.takeover tbody tr")
    assert queue.count() == 1
    assert ALICE in queue.inner_text() and "waiting under a minute" in queue.inner_text()
    assert tab.locator("table.list >> nth=1").locator("tbody tr").count() == 2
    tab.screenshot(path=str(artifacts / "admin-waiting-list.png"), full_page=True)

    queue.locator(f"text={ALICE}").click()
    tab.fill("textarea[name=body]", "Hi, this is Sam. How can I help?")
    tab.click("button:has-text('Send')")
    assert "Queued as outbox 1" in tab.locator(".flash.ok").inner_text()
    assert "Nothing waits for a reply" in tab.locator("section.takeover").inner_text()
    assert tab.locator(".needs-reply").count() == 0
    assert "queued" in tab.locator("ul.outbox").inner_text()
    with phone.app.app_context():
        outbox = phone.app.extensions["textback_outbox"]
        [entry] = outbox.rows.of_contact("+15559990000", ALICE)
    assert (entry.body, entry.source, entry.state) == (
        "Hi, this is Sam. How can I help?",
        "admin",
        "queued",
    )
    tab.click("nav >> text=Conversations")
    assert "answered" in tab.locator("section.takeover tbody tr").inner_text()

    tab.click(f"section.takeover >> text={ALICE}")
    tab.click("button:has-text('Hand back to the bot')")
    assert "Handed back" in tab.locator(".flash.ok").inner_text()
    assert tab.locator("button:has-text('Take over')").count() == 1
    assert phone.send("Hello", from_=ALICE).text != ""
    tab.click("nav >> text=Conversations")
    assert tab.locator("section.takeover").count() == 0
