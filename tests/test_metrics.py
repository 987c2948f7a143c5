"""GET /metrics: webhooks, answers and replies counted, summed over real worker processes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import requests
from flask import Flask

from tests.served import textback_serve
from textback.channel.forms import inbound_form
from textback.channel.signature import sign
from textback.testing import TEST_TOKEN
from textback.testing import Phone


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.M)
    return float(found.group(1)) if found else 0.0


def scrape(app: Flask) -> str:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_answers_duplicates_and_reply_sources_are_counted(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    before = scrape(app)
    phone = Phone(app, TEST_TOKEN)
    phone.send("Hello")
    first = phone.send("what?")
    phone.replay(first.sid)
    after = scrape(app)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("textback_webhooks_total", outcome="answered") == 2
    assert delta("textback_webhooks_total", outcome="duplicate") == 1
    assert delta("textback_replies_total", source="rule") == 1
    assert delta("textback_replies_total", source="default") == 1
    assert delta("textback_answer_seconds_count") == 3
    assert sample(after, "textback_outbox", state="review") == 0  # every state, 0 when empty


def test_metrics_are_local_only_without_a_token(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    remote = app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 404
    proxied = make_app(TEXTBACK_TRUSTED_PROXIES="1").test_client()
    forwarded = proxied.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert forwarded.status_code == 404
    assert make_app(TEXTBACK_METRICS="off").test_client().get("/metrics").status_code == 404


def test_a_token_opens_metrics_to_a_scraper_elsewhere(make_app: Callable[..., Flask]) -> None:
    client = make_app(TEXTBACK_METRICS_TOKEN="s3cret-scrape").test_client()
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=remote).status_code == 404
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/metrics", environ_base=remote, headers=wrong).status_code == 404
    right = {"Authorization": "Bearer s3cret-scrape"}
    assert client.get("/metrics", environ_base=remote, headers=right).status_code == 200
    assert client.get("/metrics").status_code == 404  # the token is asked of local scrapers too


def test_counts_add_up_over_the_workers_of_textback_serve(
    tmp_path: Path, database_url: str
) -> None:
    sent = 24
    with textback_serve(tmp_path, database_url=database_url, workers=3) as served:
        url = f"http://127.0.0.1:{served.port}"
        session = requests.Session()
        for number in range(sent):
            form = inbound_form("Hello", from_=f"+1555000{number:04d}")
            signature = sign(TEST_TOKEN, served.public_url + "/twilio", form)
            answer = session.post(
                url + "/twilio", data=form, headers={"X-Twilio-Signature": signature}, timeout=10
            )
            assert answer.status_code == 200
        # A new connection per scrape lands on any worker; each must report the machine's total.
        totals = set()
        for _ in range(6):
            text = requests.get(url + "/metrics", timeout=10).text
            totals.add(sample(text, "textback_webhooks_total", outcome="answered"))
    assert totals == {float(sent)}
    pids = {path.name.split("_")[-1] for path in (tmp_path / "instance" / "metrics").glob("*.db")}
    assert len(pids) >= 2, "the webhooks should have been spread over several workers"


def test_the_outbox_depth_is_read_when_scraped(make_app: Callable[..., Flask]) -> None:
    from textback.outbound.send import schedule_message

    app = make_app()
    service = app.extensions["textback"]
    before = sample(scrape(app), "textback_outbox", state="queued")
    schedule_message(
        service.settings, service.store, to="+15550001111", body="hi", from_="+15559990000"
    )
    assert sample(scrape(app), "textback_outbox", state="queued") == before + 1
