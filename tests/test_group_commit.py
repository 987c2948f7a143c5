"""Several messages answered in one transaction (Textback.answer_many, InboundRecorder.record_many)
give each message exactly what answering it alone would: on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import OperationalError

from textback.channel.forms import inbound_form
from textback.channel.forms import signed_request
from textback.channel.twiml import parse_twiml
from textback.core.message import Inbound
from textback.service import Textback
from textback.storage.inbound import Arrival
from textback.storage.inbound import ContactState
from textback.storage.inbound import Decided
from textback.storage.tables import contacts
from textback.storage.tables import messages
from textback.testing import TEST_TOKEN

ANN = "+15550001111"
BOB = "+15550002222"
SURVEY = """
[[flow]]
name = "survey"
trigger = "survey"
done = "Thanks for the {rating}!"

[[flow.step]]
ask = "How would you rate us, 1-5?"
save = "rating"
"""


def message(body: str, from_: str = ANN, sid: str | None = None) -> Inbound:
    return Inbound.from_form(inbound_form(body, from_=from_, sid=sid))


def service_of(app: Flask) -> Textback:
    service: Textback = app.extensions["textback"]
    return service


def count(app: Flask, *where: Any) -> int:
    with service_of(app).store.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(messages).where(*where)
            ).scalar_one()
        )


@pytest.fixture
def survey_app(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    rules = tmp_path / "survey.toml"
    rules.write_text(SURVEY)
    return make_app(TEXTBACK_RULES=str(rules))


def test_a_batch_answers_each_message_as_alone(survey_app: Flask) -> None:
    service = service_of(survey_app)
    batch = [message("survey", ANN), message("survey", BOB), message("4", ANN), message("5", BOB)]
    answers = service.answer_many([(msg, None) for msg in batch])
    assert all(isinstance(answer, str) for answer in answers)
    texts = ["\n".join(text for text, _ in parse_twiml(str(answer))) for answer in answers]
    # each contact's second message answers the question their first one started
    assert texts == [
        "How would you rate us, 1-5?",
        "How would you rate us, 1-5?",
        "Thanks for the 4!",
        "Thanks for the 5!",
    ]
    assert count(survey_app, messages.c.direction == "inbound") == 4
    assert count(survey_app, messages.c.direction == "outbound") == 4


def test_a_sid_twice_in_one_batch_is_answered_once_with_the_same_bytes(survey_app: Flask) -> None:
    service = service_of(survey_app)
    first = message("survey", ANN)
    again = message("something else", ANN, sid=first.sid)
    answers = service.answer_many([(first, None), (again, None)])
    assert answers[0] == answers[1]
    assert count(survey_app, messages.c.sid == first.sid) == 1
    assert count(survey_app, messages.c.direction == "outbound") == 1


def test_a_new_sender_and_a_duplicate_in_one_batch_add_one_contact(survey_app: Flask) -> None:
    service = service_of(survey_app)
    first = message("survey", BOB)
    service.answer_many([(first, None), (message("survey", BOB, sid=first.sid), None)])
    with service.store.engine.connect() as connection:
        numbers = connection.execute(select(contacts.c.number)).scalars().all()
    assert numbers == [BOB]


def test_a_message_that_fails_alone_leaves_the_rest_stored(survey_app: Flask) -> None:
    """A database error in one message rolls back the batch; each is then recorded on its own,
    so only that one fails."""
    service = service_of(survey_app)
    store = service.store
    calls: list[str] = []

    def decider(body: str) -> Callable[[Connection, ContactState], Decided]:
        def decide(connection: Connection, state: ContactState) -> Decided:
            calls.append(body)
            if body == "bad":
                raise IntegrityError("INSERT …", {}, Exception("a constraint of ours"))
            from textback.core.responder import decide as respond

            decision = respond(
                arrivals[[a.msg.body for a in arrivals].index(body)].msg,
                opted_out=state.opted_out,
                conversation=state.conversation,
                bot=service.bot,
                rules=service.rules,
            )
            return Decided(decision, f"<Response>{body}</Response>")

        return decide

    stamp = store.clock()
    arrivals = [
        Arrival(message(body, number), decider(body), stamp)
        for body, number in (("one", ANN), ("bad", BOB), ("two", "+15550003333"))
    ]
    results = store._inbound.record_many(arrivals)
    assert results[0] == ("<Response>one</Response>", True)
    assert isinstance(results[1], IntegrityError)
    assert results[2] == ("<Response>two</Response>", True)
    # in the contacts' order: "one" decided, then "bad" failed the batch ("two" never came);
    # then each alone
    assert calls == ["one", "bad", "one", "bad", "two"]
    assert count(survey_app, messages.c.direction == "inbound") == 2


def test_when_the_database_is_down_every_message_of_the_batch_fails_with_it(
    survey_app: Flask,
) -> None:
    service = service_of(survey_app)
    store = service.store
    calls: list[str] = []

    def down(_connection: Connection, state: ContactState) -> Decided:
        calls.append("decided")
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    stamp = store.clock()
    arrivals = [Arrival(message("a", ANN), down, stamp), Arrival(message("b", BOB), down, stamp)]
    results = store._inbound.record_many(arrivals)
    assert all(isinstance(result, OperationalError) for result in results)
    assert calls == ["decided"]  # not tried again one by one
    assert count(survey_app) == 0


def test_the_webhook_answers_a_batch_of_requests_each_with_its_own_answer(
    survey_app: Flask,
) -> None:
    """WebhookApp.answer_jobs: refusals, messages and a duplicate in one batch."""
    from textback.web.answer_loop import Job
    from textback.web.webhook import MESSAGE_PATH
    from textback.web.webhook import WEBHOOK_KEY

    webhook = survey_app.extensions[WEBHOOK_KEY]
    url = "http://localhost/twilio"

    def job(body: str, from_: str, *, sid: str | None = None, forged: bool = False) -> Job:
        form = inbound_form(body, from_=from_, sid=sid)
        raw, headers = signed_request("not the token" if forged else TEST_TOKEN, url, form)
        return Job(path=MESSAGE_PATH, method="POST", url=url, headers=headers, body=raw)

    first = job("survey", ANN, sid="SM" + "1" * 32)
    jobs = [
        first,
        job("survey", BOB, forged=True),
        job("4", ANN),
        job("x", ANN, sid="SM" + "1" * 32),
    ]
    webhook.answer_jobs(jobs)
    statuses = [j.response[0] if j.response else None for j in jobs]
    assert statuses == [200, 403, 200, 200]
    assert jobs[0].response == jobs[3].response  # the duplicate: the same bytes
    assert b"Thanks for the 4!" in (jobs[2].response or (0, [], b""))[2]
    assert count(survey_app, messages.c.direction == "inbound") == 2
