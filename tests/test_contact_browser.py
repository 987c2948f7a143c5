"""The admin's contact card in Debian's Chromium, driven by Playwright: the list shows the
name, the card shows groups and fields, and the edit form saves them (issue 14)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from textback.core.profile import ContactProfile
from textback.storage.profiles import profile_for
from textback.storage.profiles import save_profiles
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .test_admin_browser import PASSWORD
from .test_admin_browser import log_in
from .test_admin_browser import tab  # noqa: F401

pytestmark = pytest.mark.browser

ANN = "+14155550100"


def test_the_contact_card_shows_and_edits_the_profile(
    tab: Any,  # noqa: F811
    make_app: Callable[..., Flask],
    live_server: Callable[[Flask], Any],
    artifacts: Path,
) -> None:
    app = make_app(
        TEXTBACK_MODE="development",
        TEXTBACK_ADMIN_PASSWORD=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"),
    )
    engine = app.extensions["textback"].store.engine
    Phone(app, TEST_TOKEN).send("Hello", from_=ANN)
    save_profiles(
        engine, [ContactProfile(ANN, "Ann Lee", "en", "", {"city": "Oakland"}, ("patients",))]
    )
    url = live_server(app).url
    log_in(tab, url)

    row = tab.locator("table.list tbody tr").first
    assert row.locator(".name").inner_text() == "Ann Lee"
    row.locator("a").click()
    card = tab.locator("section.profile")
    assert card.locator("h2").inner_text() == "Ann Lee"
    assert card.locator(".groups").inner_text().strip() == "patients"
    assert card.locator("dd.field").inner_text() == "Oakland"
    assert not card.locator("input[name=name]").is_visible()  # folded until "Edit"

    card.locator("summary").click()
    card.locator("input[name=name]").fill("Ann Marie Lee")
    card.locator("input[name=groups]").fill("patients; volunteers")
    card.locator("label:has-text('city') input").fill("Berkeley")
    card.locator("input[aria-label='New field name']").fill("zip")
    card.locator("input[aria-label='New field value']").fill("94701")
    tab.screenshot(path=str(artifacts / "admin-contact-edit.png"), full_page=True)
    card.locator("button:has-text('Save contact')").click()

    assert tab.locator(".flash.ok").inner_text() == "Contact saved."
    card = tab.locator("section.profile")
    assert card.locator("dd.name").inner_text() == "Ann Marie Lee"
    assert card.locator("dd.field").all_inner_texts() == ["Berkeley", "94701"]
    assert profile_for(engine, ANN) == ContactProfile(
        ANN,
        "Ann Marie Lee",
        "en",
        "",
        {"city": "Berkeley", "zip": "94701"},
        ("patients", "volunteers"),
    )

    card.locator("summary").click()
    card.locator("input[name=language]").fill("english!")
    card.locator("button:has-text('Save contact')").click()
    assert "Not saved: language 'english!'" in tab.locator(".flash.error").inner_text()
    assert profile_for(engine, ANN).language == "en"
    tab.screenshot(path=str(artifacts / "admin-contact.png"), full_page=True)
