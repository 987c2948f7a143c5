"""Every message kept once, none answered twice, delivery status recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func
from sqlalchemy import select

from textback.channel.forms import inbound_form
from textback.channel.forms import signed_request
from textback.outbound.send import last_number_used
from textback.queries import contact_history
from textback.storage.models import Contact
from textback.storage.models import Message
from textback.storage.models import StatusEvent
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .conftest import LiveServer


def rows(app: Flask, *columns: Any) -> list[Any]:
    with app.extensions["textback"].store.engine.connect() as connection:
        return list(connection.execute(select(*columns).order_by(Message.id)))


def test_message_and_reply_are_stored(phone: Phone) -> None:
    reply = phone.send("Hello", from_="+15550001111", to="+15559990000")
    stored = rows(
        phone.app,
        Message.sid,
        Message.direction,
        Message.from_number,
        Message.to_number,
        Message.body,
        Message.source,
        Message.status,
        Message.response_twiml,
    )
    assert [
        (r.sid, r.direction, r.from_number, r.to_number, r.body, r.source, r.status) for r in stored
    ] == [
        (
            reply.sid,
            "inbound",
            "+15550001111",
            "+15559990000",
            "Hello",
            "rule 1 (keyword hello)",
            "received",
        ),
        (
            None,
            "outbound",
            "+15559990000",
            "+15550001111",
            "Hello back to you!",
            "rule 1 (keyword hello)",
            "queued",
        ),
    ]
    assert stored[0].response_twiml == reply.twiml


def test_all_parameters_and_media_are_kept(phone: Phone) -> None:
    phone.send(
        "pics",
        media=[("https://a.test/1.jpg", "image/jpeg"), ("https://a.test/2.png", "image/png")],
    )
    inbound = rows(phone.app, Message.media, Message.params, Message.account_sid)[0]
    assert inbound.media == [
        {"url": "https://a.test/1.jpg", "content_type": "image/jpeg"},
        {"url": "https://a.test/2.png", "content_type": "image/png"},
    ]
    assert inbound.params["NumMedia"] == "2"
    assert inbound.params["FromCity"] == "SAN FRANCISCO"
    assert inbound.account_sid.startswith("AC")


def test_nul_is_stored_alike_everywhere(phone: Phone) -> None:
    phone.send("a\x00b", extra=[("Odd\x00Key", "v\x00")])
    inbound = rows(phone.app, Message.body, Message.params)[0]
    assert inbound.body == "a\ufffdb"
    assert inbound.params["Odd\ufffdKey"] == "v\ufffd"


def test_contact_is_kept_with_first_and_last_seen(phone: Phone) -> None:
    phone.send("one", from_="+15550000001")
    phone.send("two", from_="+15550000001")
    phone.send("three", from_="+15550000002")
    engine = phone.app.extensions["textback"].store.engine
    with engine.connect() as connection:
        ids = connection.execute(select(Contact.id, Contact.number).order_by(Contact.id)).all()
        times = connection.execute(select(Message.created_at).order_by(Message.id)).scalars()
        one_first, _, one_last, _, _, _ = times.all()
    assert [c.number for c in ids] == ["+15550000001", "+15550000002"]
    seen = contact_history.contact(engine, ids[0].id)
    assert seen is not None
    assert (seen.first_seen, seen.last_seen) == (one_first, one_last)
    assert one_last > one_first


def test_retried_webhook_gets_the_same_bytes_and_changes_nothing(phone: Phone) -> None:
    first = phone.send("Hello")
    before = rows(phone.app, Message.id, Message.body)
    again = phone.replay()
    assert again.status == 200
    assert again.twiml == first.twiml
    assert rows(phone.app, Message.id, Message.body) == before


def test_replay_of_a_changed_body_still_gets_the_first_answer(phone: Phone) -> None:
    first = phone.send("Hello", sid="SM" + "1" * 32)
    second = phone.send("something else", sid="SM" + "1" * 32)
    assert second.twiml == first.twiml
    assert len(rows(phone.app, Message.id)) == 2


def test_concurrent_duplicates_on_two_servers(
    make_app: Callable[..., Flask], live_server: Callable[[Flask], LiveServer]
) -> None:
    servers = [live_server(make_app()), live_server(make_app())]
    sids = ["SM" + f"{n:032x}" for n in range(8)]
    answers: dict[str, list[str]] = {sid: [] for sid in sids}
    lock = threading.Lock()
    start = threading.Barrier(len(sids) * 4)

    def deliver(server: LiveServer, sid: str) -> None:
        form = inbound_form("Hello", sid=sid)
        body, headers = signed_request(TEST_TOKEN, server.url + "/twilio", form)
        start.wait()
        response = requests.post(server.url + "/twilio", data=body, headers=headers, timeout=30)
        assert response.status_code == 200
        with lock:
            answers[sid].append(response.text)

    threads = [
        threading.Thread(target=deliver, args=(servers[n % 2], sid))
        for sid in sids
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    app = make_app()
    stored = rows(app, Message.sid, Message.direction)
    inbound = [r.sid for r in stored if r.direction == "inbound"]
    assert sorted(inbound) == sorted(sids)
    assert len([r for r in stored if r.direction == "outbound"]) == len(sids)
    for sid in sids:
        assert len(answers[sid]) == 4
        assert len(set(answers[sid])) == 1
        assert "Hello back to you!" in answers[sid][0]


def test_status_callbacks_update_the_reply(
    make_app: Callable[..., Flask],
) -> None:
    phone = Phone(
        make_app(TEXTBACK_PUBLIC_URL="https://abc.ngrok.app"),
        TEST_TOKEN,
        public_url="https://abc.ngrok.app",
    )
    reply = phone.send("Hello")
    assert f'action="https://abc.ngrok.app/twilio/status?for={reply.sid}"' in reply.twiml
    reply_sid = "SM" + "f" * 32
    assert phone.status(reply_sid, "sent", reply_to=reply.sid) == 204
    assert phone.status(reply_sid, "delivered", reply_to=reply.sid) == 204
    assert phone.status(reply_sid, "sent", reply_to=reply.sid) == 204  # late and repeated
    outbound = rows(phone.app, Message.sid, Message.status, Message.direction)[1]
    assert (outbound.sid, outbound.status, outbound.direction) == (
        reply_sid,
        "delivered",
        "outbound",
    )
    with phone.app.extensions["textback"].store.engine.connect() as connection:
        events = (
            connection.execute(
                select(StatusEvent.status)
                .where(StatusEvent.message_sid == reply_sid)
                .order_by(StatusEvent.id)
            )
            .scalars()
            .all()
        )
    assert events == ["sent", "delivered"]


def test_no_status_callback_without_public_url(phone: Phone) -> None:
    assert "action=" not in phone.send("Hello").twiml


@pytest.mark.parametrize("name", ["status-delivered.form", "status-undelivered.form"])
def test_callbacks_for_unknown_messages_are_stored(phone: Phone, name: str) -> None:
    from .conftest import sample

    form = sample(name)
    assert phone.post("/twilio/status", form).status_code == 204
    with phone.app.extensions["textback"].store.engine.connect() as connection:
        event = connection.execute(select(StatusEvent)).one()
    params = dict(form)
    assert event.message_sid == params["MessageSid"]
    assert event.status == params["MessageStatus"]
    assert event.error_code == params.get("ErrorCode")


def test_status_callback_without_status_is_400(phone: Phone) -> None:
    response = phone.post("/twilio/status", [("MessageSid", "SM" + "1" * 32)])
    assert response.status_code == 400
    assert "missing MessageStatus" in response.get_data(as_text=True)


def test_failed_delivery_keeps_error_code(make_app: Callable[..., Flask]) -> None:
    phone = Phone(
        make_app(TEXTBACK_PUBLIC_URL="https://x.test"), TEST_TOKEN, public_url="https://x.test"
    )
    reply = phone.send("Hello")
    phone.status("SM" + "e" * 32, "undelivered", reply_to=reply.sid, error_code="30003")
    outbound = rows(phone.app, Message.status, Message.error_code)[1]
    assert (outbound.status, outbound.error_code) == ("undelivered", "30003")


def test_message_count(phone: Phone) -> None:
    for n in range(3):
        phone.send(f"m{n}")
    with phone.app.extensions["textback"].store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Message)).scalar() == 6


def test_call_status_callbacks_are_acknowledged_not_stored(phone: Phone) -> None:
    form = [("CallSid", "CA" + "1" * 32), ("CallStatus", "completed"), ("AccountSid", "AC1")]
    assert phone.post("/twilio/status", form).status_code == 204
    with phone.app.extensions["textback"].store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(StatusEvent)).scalar() == 0


def test_a_message_we_sent_arriving_as_a_webhook_gets_valid_twiml(phone: Phone) -> None:
    """One of our numbers texting another: Twilio may give both ends one MessageSid."""
    sid = "SM" + "5" * 32
    phone.app.extensions["textback"].store.record_outbound(
        sid=sid, from_="+15550001111", to=phone.to, body="hi", media=(), status="sent", source="api"
    )
    reply = phone.send("hi", sid=sid)
    assert reply.twiml == '<?xml version="1.0" encoding="UTF-8"?><Response />'


def test_stored_times_come_back_as_utc(phone: Phone) -> None:
    """SQLite gives times back without a zone, PostgreSQL in the session's zone: both are UTC."""
    phone.send("Hello")
    engine = phone.app.extensions["textback"].store.engine
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TIME ZONE 'Asia/Kolkata'")
        stamps = [
            connection.execute(select(Message.created_at)).scalars().first(),
            connection.execute(select(Contact.first_seen)).scalars().first(),
        ]
    for stamp in stamps:
        assert stamp.utcoffset() is not None and stamp.tzinfo == UTC


def test_a_reply_is_linked_by_its_inbound_sid_after_later_messages(
    make_app: Callable[..., Flask],
) -> None:
    phone = Phone(
        make_app(TEXTBACK_PUBLIC_URL="https://x.test"), TEST_TOKEN, public_url="https://x.test"
    )
    first = phone.send("Hello")
    phone.send("Hello")  # the contact's later message and reply come first in no index
    phone.send("Hello", from_="+15550002222")  # another contact's
    assert phone.status("SM" + "d" * 32, "delivered", reply_to=first.sid) == 204
    stored = rows(phone.app, Message.id, Message.sid, Message.status, Message.reply_to_id)
    first_id = next(row.id for row in stored if row.sid == first.sid)
    reply = next(row for row in stored if row.reply_to_id == first_id)
    assert (reply.sid, reply.status) == ("SM" + "d" * 32, "delivered")
    others = [row for row in stored if row.reply_to_id not in (None, first_id)]
    assert [(row.sid, row.status) for row in others] == [(None, "queued")] * 2


def test_a_duplicate_changes_nothing_not_even_the_contacts(phone: Phone) -> None:
    sid = "SM" + "6" * 32
    phone.app.extensions["textback"].store.record_outbound(
        sid=sid, from_=phone.to, to="+15550001111", body="hi", media=(), status="sent", source="api"
    )
    phone.send("hi", sid=sid, from_="+15550003333")  # a number never seen before
    with phone.app.extensions["textback"].store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Contact)).scalar() == 0


def test_a_send_comes_from_the_number_the_contact_texted_last(phone: Phone) -> None:
    store = phone.app.extensions["textback"].store
    phone.send("one", from_="+15550001111", to="+15559990001")
    phone.send("two", from_="+15550001111", to="+15559990002")
    assert last_number_used(store, "+15550001111") == "+15559990002"
    phone.send("three", from_="+15550001111", to="+15559990001")
    assert last_number_used(store, "+15550001111") == "+15559990001"
    assert last_number_used(store, "+15550009999") is None
