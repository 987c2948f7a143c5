"""The browser phone in Debian's Chromium, driven by Playwright, against a live server."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from textback import END
from textback import Bot
from textback import Inbound
from textback import Reply
from textback.core.encoding import GSM_BASIC
from textback.core.encoding import GSM_EXTENDED
from textback.core.encoding import encoding
from textback.core.encoding import segment_count

pytestmark = pytest.mark.browser

OWL = "https://demo.twilio.com/owl.png"


def order_bot() -> Bot:
    """A two-step conversation kept in the database: order, then size."""
    bot = Bot()

    @bot.on("order")
    def order(msg: Inbound) -> Reply:
        return Reply("Size?", state="order.size")

    @bot.on(state="order.size")
    def size(msg: Inbound) -> Reply:
        return Reply(f"One {msg.body.strip().lower()} coffee coming up!", state=END)

    @bot.on("owl")
    def owl(msg: Inbound) -> Reply:
        return Reply("Hoot!", media=[OWL])

    return bot


@pytest.fixture
def page(
    browser: Any, make_app: Callable[..., Flask], live_server: Callable[[Flask], Any]
) -> Iterator[Any]:
    """A browser tab on /phone of a development server with the order bot."""
    server = live_server(make_app(order_bot(), TEXTBACK_MODE="development"))
    context = browser.new_context(viewport={"width": 480, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    # Pictures from the internet are not fetched in tests; the <img> elements are what counts.
    tab.route("https://**/*", lambda route: route.abort())
    tab.goto(server.url + "/phone")
    tab.wait_for_selector("#thread[data-loaded]")
    yield tab
    context.close()
    assert [e for e in errors if "ERR_FAILED" not in e and "net::" not in e] == []


def text(page: Any, body: str) -> None:
    """Type ``body`` and send it; wait until its exchange is shown."""
    before = page.locator(".exchange").count()
    page.fill("#body", body)
    page.press("#body", "Enter")
    page.locator(".exchange").nth(before).wait_for()


def last_reply(page: Any) -> str:
    return str(page.locator(".exchange").last.locator(".bubble.them .text").inner_text())


def test_hello_gets_the_greeting(page: Any, artifacts: Path) -> None:
    text(page, "Hello")
    assert last_reply(page) == "Hello back to you!"
    assert page.locator(".bubble.me .text").last.inner_text() == "Hello"
    assert page.locator(".bubble.me .meta").last.inner_text() == "GSM-7 · 1 segment"
    assert page.input_value("#body") == ""
    page.screenshot(path=str(artifacts / "phone-hello.png"))


def test_emoji_is_sent_and_counted_as_ucs2(page: Any) -> None:
    page.fill("#body", "Hello 👋🏽")
    assert page.get_attribute("#counter", "data-encoding") == "UCS-2"
    page.press("#body", "Enter")
    page.locator(".exchange").first.wait_for()
    assert page.locator(".bubble.me .text").last.inner_text() == "Hello 👋🏽"
    assert last_reply(page) == "Hello back to you!"


def test_conversation_flow_and_history(page: Any, artifacts: Path) -> None:
    text(page, "order")
    assert last_reply(page) == "Size?"
    text(page, "Large")
    assert last_reply(page) == "One large coffee coming up!"
    text(page, "Large")
    assert last_reply(page) == "Hi! Not quite sure what you meant, but okay."
    page.screenshot(path=str(artifacts / "phone-flow.png"))
    page.reload()
    page.wait_for_selector("#thread[data-loaded]")
    replies = page.locator(".bubble.them .text").all_inner_texts()
    assert replies == [
        "Size?",
        "One large coffee coming up!",
        "Hi! Not quite sure what you meant, but okay.",
    ]


def test_a_stop_shows_that_twilio_answers_it(page: Any) -> None:
    text(page, "STOP")
    note = page.locator(".exchange").last.locator(".note")
    assert "Twilio answers STOP itself" in note.inner_text()
    text(page, "Hello")
    assert page.locator(".exchange").last.locator(".note").inner_text() == "(no reply)"
    page.reload()
    page.wait_for_selector("#thread[data-loaded]")
    assert "Twilio answers STOP itself" in page.locator(".note").first.inner_text()


def test_contacts_have_their_own_conversations(page: Any) -> None:
    text(page, "order")
    bob = page.locator(".contact").nth(1)
    bob.click()
    page.wait_for_selector(f'#thread[data-loaded="{bob.get_attribute("data-number")}"]')
    assert page.locator(".exchange").count() == 0
    text(page, "Large")
    assert last_reply(page) == "Hi! Not quite sure what you meant, but okay."


def test_pictures_and_twiml(page: Any) -> None:
    text(page, "owl")
    image = page.locator(".bubble.them img.picture").last
    assert image.get_attribute("src") == OWL
    twiml = page.locator("pre.twiml").last
    assert not twiml.is_visible()
    page.click("#twiml-toggle")
    assert twiml.is_visible()
    assert f"<Media>{OWL}</Media>" in twiml.inner_text()


def test_message_bodies_are_shown_as_text_never_html(page: Any) -> None:
    attack = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
    text(page, attack)
    assert page.locator(".bubble.me .text").last.inner_text() == attack
    assert page.locator(".bubble.me img").count() == 0
    assert page.locator(".bubble.me b").count() == 0
    page.reload()
    page.wait_for_selector("#thread[data-loaded]")
    assert page.locator(".bubble.me .text").last.inner_text() == attack
    assert page.title() != "pwned"


SAMPLES = [
    "",
    "Hello",
    "a" * 160,
    "a" * 161,
    "{" * 80,
    "{" * 81,
    "€" * 77,
    "ê" * 70,
    "ê" * 71,
    "😀" * 35,
    "😀" * 36,
    "line\r\nbreak",
    "".join(sorted(GSM_BASIC)),
    "".join(sorted(GSM_EXTENDED)),
    "Привет",
    "a" * 306,
    "a" * 307,
]


def test_live_counter_agrees_with_the_server(page: Any) -> None:
    counted = page.evaluate("(samples) => samples.map((s) => window.textbackSegments(s))", SAMPLES)
    expected = [(encoding(s), segment_count(s)) for s in SAMPLES]
    assert [(c["encoding"], c["segments"]) for c in counted] == expected
    for character in GSM_BASIC | GSM_EXTENDED:
        assert page.evaluate("(c) => window.textbackSegments(c).encoding", character) == "GSM-7"
