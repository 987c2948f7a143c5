"""/readyz reports the outbox's queue storage and the outage journal beside the database."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask


def test_readyz_names_the_queue_and_its_backlog(make_app: Callable[..., Flask]) -> None:
    ready = make_app().test_client().get("/readyz")
    assert ready.status_code == 200
    assert ready.get_data(as_text=True) == (
        "ok\nqueue (sqlite): ok, 0 task(s) waiting\njournal: 0 entries waiting to be replayed\n"
    )


def test_a_queue_that_does_not_answer_is_reported_but_webhooks_still_can_be(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(TEXTBACK_QUEUE_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200  # answering webhooks needs only the database
    first, second, _journal = ready.get_data(as_text=True).splitlines()
    assert first == "ok" and second.startswith("queue (redis): does not answer: ")
