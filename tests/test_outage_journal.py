"""The outage journal in one process: what the webhook answers while the database cannot be
reached, and the replay once it can (exactly once, STOPs first, owed replies in the outbox).

The database "goes away" by a switch on the engine: every new connection fails as the driver
fails when the server is down, and the pool is emptied. Both databases.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from textback import Bot
from textback import Inbound
from textback.channel.forms import inbound_form
from textback.channel.twiml import parse_twiml
from textback.config import Settings
from textback.core.bot import DEFAULT_REPLY
from textback.core.optout import HELP_TAIL
from textback.core.optout import START_REPLY
from textback.core.optout import STOP_REPLY
from textback.core.optout import OptOutPolicy
from textback.core.profile import ContactProfile
from textback.core.responder import TAKEN_OVER
from textback.errors import ConfigError
from textback.storage.engine import POOL_TIMEOUT_S
from textback.storage.engine import POSTGRES_CONNECT_TIMEOUT_S
from textback.storage.engine import make_engine
from textback.storage.journal import Entry
from textback.storage.outbox import outbox
from textback.storage.profiles import save_profiles
from textback.storage.tables import contacts
from textback.storage.tables import messages
from textback.storage.takeover import Takeovers
from textback.testing import TEST_TOKEN
from textback.testing import Phone
from textback.web.journal_replay import JOURNALED
from textback.web.journal_replay import outbox_key
from textback.web.journal_replay import replay_order
from textback.web.journaling import JOURNALING_KEY
from textback.web.journaling import Journaling

REPLAY_SECONDS = 60
ALICE = "+15550000001"
BOB = "+15550000002"
CAROL = "+15550000003"


class Switch:
    """Turns an engine's database off and on: new connections fail as the driver's do."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.off = False
        event.listen(engine, "do_connect", self._connect)

    def _connect(self, dialect: Any, _record: Any, _args: Any, _params: Any) -> None:
        if self.off:
            raise dialect.loaded_dbapi.OperationalError("connection refused (the test's switch)")

    def down(self) -> None:
        self.off = True
        self.engine.dispose()

    def up(self) -> None:
        self.off = False


class Outage:
    """An app, its fake phone and its database switch."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.phone = Phone(app, TEST_TOKEN)
        self.engine: Engine = app.extensions["textback"].store.engine
        self.switch = Switch(self.engine)
        self.journaling: Journaling = app.extensions[JOURNALING_KEY]

    def recover(self) -> None:
        """The database is back: wait for the replay thread to finish its work."""
        self.switch.up()
        assert self.journaling.join(REPLAY_SECONDS), "the journal was not replayed"
        assert self.journaling.waiting() == 0

    def rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(query))

    def inbound(self) -> list[Any]:
        return self.rows(
            select(messages.c.sid, messages.c.body, messages.c.source, messages.c.created_at)
            .where(messages.c.direction == "inbound")
            .order_by(messages.c.id)
        )

    def owed(self) -> list[Any]:
        return self.rows(select(outbox.c.key, outbox.c.to_number, outbox.c.body, outbox.c.source))

    def opted_out(self, number: str) -> bool:
        found = self.rows(select(contacts.c.opted_out).where(contacts.c.number == number))
        return bool(found and found[0][0])


@pytest.fixture
def outage(make_app: Callable[..., Flask]) -> Callable[..., Outage]:
    def build(bot: Bot | None = None, **config: object) -> Outage:
        return Outage(make_app(bot, **config))

    return build


def texts(reply: Any) -> list[str]:
    return [text for text, _ in parse_twiml(reply.twiml)]


def test_messages_are_journaled_answered_and_replayed_once(outage: Callable[..., Outage]) -> None:
    down = outage()
    assert down.phone.send("hello", from_=ALICE).status == 200  # a contact known before
    down.switch.down()
    before = datetime.now(UTC)
    hello = down.phone.send("hello", from_=ALICE)
    other = down.phone.send("what time is it?", from_=BOB)
    assert (hello.status, hello.twiml) == (
        200,
        '<?xml version="1.0" encoding="UTF-8"?><Response />',
    )
    assert other.status == 200 and texts(other) == []
    assert down.phone.status(hello.sid, "delivered") == 204
    assert down.journaling.waiting() == 3

    down.recover()
    stored = down.inbound()
    assert [row.body for row in stored] == ["hello", "hello", "what time is it?"]
    assert len({row.sid for row in stored}) == 3
    assert [row.source for row in stored[1:]] == [
        "rule 1 (keyword hello)",
        "default",
    ]
    assert before <= stored[1].created_at <= stored[2].created_at  # when they came, not later
    params = dict(down.rows(select(messages.c.sid, messages.c.params)))
    assert JOURNALED not in params[stored[0].sid]  # answered live
    assert datetime.fromisoformat(params[hello.sid][JOURNALED]) >= before
    owed = {row.key: row for row in down.owed()}
    assert owed.keys() == {outbox_key(hello.sid), outbox_key(other.sid)}
    assert owed[outbox_key(hello.sid)].body == "Hello back to you!"
    assert owed[outbox_key(hello.sid)].to_number == ALICE
    assert owed[outbox_key(other.sid)].body == DEFAULT_REPLY
    # A retry of a journaled message now gets what the webhook answered then: no second reply.
    again = down.phone.replay(hello.sid)
    assert again.twiml == hello.twiml
    assert len(down.owed()) == 2


def test_a_replay_that_stopped_half_way_is_finished_exactly_once(
    outage: Callable[..., Outage],
) -> None:
    down = outage()
    down.journaling.background = False  # this test replays by hand
    down.switch.down()
    first = down.phone.send("hello", from_=ALICE)
    second = down.phone.send("hello", from_=BOB)
    down.switch.up()
    journal = down.journaling.journal
    (taken,) = journal.take()
    saved = taken.read_bytes()
    recorder = down.journaling.replayer.recorder
    real_record = recorder.record
    calls = 0

    def record_then_fail(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))
        return real_record(*args, **kwargs)

    recorder.record = record_then_fail  # type: ignore[method-assign]
    with journal.replaying():
        paused = down.journaling.replayer.run(journal)
    assert not paused.complete and paused.stored == 1
    assert journal.waiting() == 2  # the file stays until every entry is committed
    recorder.record = real_record  # type: ignore[method-assign]

    finished = down.journaling.replay_once()
    assert finished is not None and finished.complete
    assert (finished.stored, finished.duplicates) == (1, 1)
    # A copy of the same file again (a replay that died after its commits): nothing changes.
    (journal.folder / taken.name).write_bytes(saved)
    again = down.journaling.replay_once()
    assert again is not None and (again.stored, again.duplicates, again.owed) == (0, 2, 0)
    assert sorted(row.sid for row in down.inbound()) == sorted([first.sid, second.sid])
    assert sorted(row.key for row in down.owed()) == sorted(
        [outbox_key(first.sid), outbox_key(second.sid)]
    )


def test_carrier_commands_are_answered_by_twilio_during_an_outage(
    outage: Callable[..., Outage],
) -> None:
    # An account to send with, and an API that is never called: the opt-out is checked first.
    down = outage(TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_API_BASE_URL="http://127.0.0.1:1")
    down.switch.down()
    replies = [down.phone.send(word, from_=ALICE) for word in ("HELP", "START", "STOP")]
    assert [texts(reply) for reply in replies] == [[], [], []]
    down.recover()
    assert down.opted_out(ALICE)
    # Twilio answered HELP and STOP. START from a contact who had not opted out is an
    # ordinary message, whose reply is owed (the outbox will not send it: she then said STOP).
    assert [row.body for row in down.owed()] == [DEFAULT_REPLY]
    assert [row.source for row in down.inbound()] == [
        "optout help",
        "default",  # START from a contact who had not opted out: an ordinary message
        "optout stop",
    ]
    box = down.journaling.outbox()
    (row,) = down.rows(select(outbox.c.id))
    outcome = box.deliver(row.id)
    assert outcome is not None and outcome.state == "cancelled"


def test_carrier_commands_are_answered_by_textback_without_the_database(
    outage: Callable[..., Outage],
) -> None:
    down = outage(TEXTBACK_CARRIER_REPLIES="textback", TEXTBACK_SENDER_NAME="Acme")
    down.switch.down()
    help_, stop, start = (down.phone.send(w, from_=ALICE) for w in ("HELP", "STOP", "START"))
    assert texts(help_) == [f"Acme: automated replies to your texts. {HELP_TAIL}"]
    assert texts(stop) == [f"Acme: {STOP_REPLY}"]
    # Whether Alice is opted out is not known: an opt-in word is answered as START.
    assert texts(start) == [f"Acme: {START_REPLY}"]
    down.recover()
    assert not down.opted_out(ALICE)  # STOP then START: her last word
    assert down.owed() == []
    with down.engine.connect() as connection:
        replies = connection.execute(
            select(messages.c.body).where(messages.c.direction == "outbound")
        ).scalars()
        assert sorted(replies) == sorted(texts(help_) + texts(stop) + texts(start))


def test_stops_are_replayed_first_and_owed_replies_never_reach_them(
    outage: Callable[..., Outage],
) -> None:
    down = outage()
    down.switch.down()
    alice_hello = down.phone.send("hello", from_=ALICE)
    down.phone.send("STOP", from_=ALICE)
    bob_hello = down.phone.send("hello", from_=BOB)
    down.phone.send("stop", from_=CAROL)
    down.phone.send("start", from_=CAROL)
    carol_hello = down.phone.send("hello", from_=CAROL)
    down.recover()
    assert down.opted_out(ALICE) and not down.opted_out(BOB) and not down.opted_out(CAROL)
    # Alice's STOP came first: her hello is answered by silence, nothing is queued for her.
    assert {row.key for row in down.owed()} == {
        outbox_key(bob_hello.sid),
        outbox_key(carol_hello.sid),
    }
    sources = {row.sid: row.source for row in down.inbound()}
    assert sources[alice_hello.sid] == "opted out"


def test_the_outage_reply_setting(outage: Callable[..., Outage]) -> None:
    down = outage(TEXTBACK_OUTAGE_REPLY="Got it, we will answer shortly.")
    down.switch.down()
    assert texts(down.phone.send("hello", from_=ALICE)) == ["Got it, we will answer shortly."]
    assert texts(down.phone.send("STOP", from_=BOB)) == []  # Twilio answers carrier words
    down.recover()
    assert [row.body for row in down.owed()] == ["Hello back to you!"]


def test_a_journal_that_cannot_be_written_answers_503(outage: Callable[..., Outage]) -> None:
    down = outage()
    down.journaling.journal.path.mkdir(parents=True)  # the journal file cannot be opened
    down.switch.down()
    reply = down.phone.send("hello")
    assert reply.status == 503
    down.switch.up()
    down.journaling.journal.path.rmdir()


def test_an_entry_that_cannot_be_stored_is_kept_aside(outage: Callable[..., Outage]) -> None:
    down = outage()
    down.journaling.background = False
    journal = down.journaling.journal
    journal.append(Entry("fax", (("MessageSid", "SM" + "0" * 32),), datetime.now(UTC)))
    down.switch.down()
    down.phone.send("hello", from_=ALICE)
    down.switch.up()
    done = down.journaling.replay_once()
    assert done is not None and (done.stored, done.rejected) == (1, 1)
    assert journal.waiting() == 0 and journal.rejected() == 1
    ready = down.app.test_client().get("/readyz").get_data(as_text=True)
    assert "journal: 0 entries waiting to be replayed, 1 rejected (kept in " in ready
    assert str(journal.folder) not in ready  # /readyz answers anyone: no paths
    scrape = down.app.test_client().get("/metrics").get_data(as_text=True)
    assert 'textback_journal{state="rejected"} 1.0' in scrape
    assert 'textback_journal{state="waiting"} 0.0' in scrape
    assert 'textback_journal_replayed_total{outcome="rejected"}' in scrape
    assert 'textback_journal_appended_total{kind="message"}' in scrape


def test_a_server_started_with_entries_waiting_replays_them(
    make_app: Callable[..., Flask],
) -> None:
    down = Outage(make_app())
    down.journaling.background = False
    down.switch.down()
    sent = down.phone.send("hello", from_=ALICE)
    down.switch.up()
    # A new server process on the same instance folder (the first one was killed).
    restarted = make_app()
    journaling: Journaling = restarted.extensions[JOURNALING_KEY]
    assert journaling.start_if_waiting()
    assert journaling.join(REPLAY_SECONDS)
    assert [row.sid for row in Outage(restarted).inbound()] == [sent.sid]


def test_replay_order_puts_stops_first_unless_the_contact_also_opted_in() -> None:
    def message(body: str, number: str) -> Entry:
        form = inbound_form(body, from_=number)
        return Entry("message", tuple(form), datetime.now(UTC))

    entries = [
        message("hello", ALICE),
        message("Stop!", ALICE),
        message("stop", CAROL),
        message("yes", CAROL),
        Entry("status", (("MessageSid", "SM" + "1" * 32),), datetime.now(UTC)),
        message("hi", BOB),
        message("unsubscribe", BOB),
    ]
    ordered = replay_order(entries, OptOutPolicy())
    assert [e.form_value("Body") or e.kind for e in ordered] == [
        "Stop!",
        "unsubscribe",
        "hello",
        "stop",  # Carol opted in again later: her words keep their order
        "yes",
        "status",
        "hi",
    ]


def test_postgresql_connections_fail_fast() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/none")
    seen: dict[str, Any] = {}

    @event.listens_for(engine, "do_connect")
    def capture(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        seen.update(params)
        raise ConnectionRefusedError("not really connecting")

    with pytest.raises(ConnectionRefusedError):
        engine.connect()
    assert seen["connect_timeout"] == POSTGRES_CONNECT_TIMEOUT_S
    assert engine.pool.timeout() == POOL_TIMEOUT_S  # type: ignore[attr-defined]
    chosen = make_engine("postgresql://postgres@127.0.0.1:1/none?connect_timeout=10")

    @event.listens_for(chosen, "do_connect")
    def capture_chosen(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        seen.update(params)
        raise ConnectionRefusedError("not really connecting")

    with pytest.raises(ConnectionRefusedError):
        chosen.connect()
    assert str(seen["connect_timeout"]) == "10"  # the URL's own wins


def test_messages_wait_behind_the_journal_until_it_is_replayed(
    outage: Callable[..., Outage],
) -> None:
    down = outage()
    down.journaling.background = False
    down.switch.down()
    down.phone.send("hello", from_=ALICE)
    down.phone.send("STOP", from_=ALICE)
    down.switch.up()
    # The database is back but the journal is not replayed yet (its marker is there): a new
    # message is journaled behind it, not answered ahead of Alice's STOP.
    assert down.journaling.pending
    after = down.phone.send("hello again", from_=ALICE)
    assert after.status == 200 and texts(after) == []
    assert down.journaling.waiting() == 3
    done = down.journaling.replay_once()
    assert done is not None and (done.stored, done.owed) == (3, 0)
    assert down.opted_out(ALICE)
    sources = {row.body: row.source for row in down.inbound()}
    assert sources["hello again"] == "opted out"


def test_the_outage_reply_is_short() -> None:
    with pytest.raises(ConfigError, match="TEXTBACK_OUTAGE_REPLY is 321 characters"):
        Settings.load({"TEXTBACK_OUTAGE_REPLY": "x" * 321}, environ={})
    assert (
        Settings.load({"TEXTBACK_OUTAGE_REPLY": "  On it.  "}, environ={}).outage_reply == "On it."
    )


def test_a_contact_taken_over_by_a_person_waits_for_them_after_the_outage(
    outage: Callable[..., Outage],
) -> None:
    down = outage()
    down.phone.send("hello", from_=ALICE)
    takeovers = Takeovers(down.app.extensions["textback"].store)
    ((contact_id, _),) = takeovers.contacts_of(ALICE)
    assert takeovers.take_over(contact_id, by="test")
    down.switch.down()
    down.phone.send("are you there?", from_=ALICE)
    down.recover()
    assert down.owed() == []  # the person answers, not the bot
    assert down.inbound()[-1].source == TAKEN_OVER
    waiting = down.rows(select(contacts.c.waiting_since).where(contacts.c.id == contact_id))
    assert waiting[0][0] is not None


def test_a_worker_that_journaled_nothing_waits_behind_another_workers_journal(
    outage: Callable[..., Outage],
) -> None:
    """Two workers of one server (one instance folder, one database): Bob's STOP reached the
    first during the outage; the second never saw the outage, and still must not answer Bob's
    next message ahead of that STOP."""
    first, second = outage(), outage()
    for worker in (first, second):
        worker.journaling.background = False
    first.switch.down()
    first.phone.send("STOP", from_=BOB)
    first.switch.up()
    assert second.journaling.pending  # the marker in the instance folder, not its own thread
    after = second.phone.send("hello again", from_=BOB)
    assert after.status == 200 and texts(after) == []
    done = second.journaling.replay_once()
    assert done is not None and (done.stored, done.owed) == (2, 0)
    assert second.opted_out(BOB)
    assert {row.body: row.source for row in second.inbound()}["hello again"] == "opted out"
    assert second.journaling.journal.clear_if_empty()
    assert not first.journaling.pending and not second.journaling.pending
    answered = second.phone.send("START", from_=BOB)
    assert texts(answered) == [] and not second.opted_out(BOB)  # answered as usual again


class QueuedSlow:
    """Stands in for the service's slow handlers' queue: what was queued."""

    def __init__(self) -> None:
        self.queued: list[str] = []

    def enqueue(self, message_sid: str) -> None:
        self.queued.append(message_sid)


def test_a_slow_handlers_job_is_queued_by_the_replay(outage: Callable[..., Outage]) -> None:
    """The replay queues the job it stores with the message, as the webhook does; not left
    for the sweep, which takes it only once it has waited TEXTBACK_OUTBOX_STALE_AFTER."""
    bot = Bot()

    @bot.on("report", slow=True, ack="Working on it...")
    def report(msg: Inbound) -> str:
        return "Your report"

    down = outage(bot)
    queued = QueuedSlow()
    down.app.extensions["textback"].__dict__["slow"] = queued  # the cached property's place
    down.switch.down()
    asked = down.phone.send("report", from_=ALICE)
    down.recover()
    assert queued.queued == [asked.sid]
    assert [row.body for row in down.owed()] == ["Working on it..."]


def test_a_replayed_message_is_answered_with_the_contacts_profile(
    outage: Callable[..., Outage], tmp_path: Path
) -> None:
    """A rule naming the contact gets their profile when the journal is replayed, as the
    webhook would have given it."""
    rules = tmp_path / "named.toml"
    rules.write_text('[[rule]]\nkeyword = "hours"\nreply = "9 to 5, {contact.name|you}."\n')
    down = outage(TEXTBACK_RULES=str(rules))
    save_profiles(down.engine, [ContactProfile(ALICE, "Alice")])
    down.switch.down()
    assert down.phone.send("hours", from_=ALICE).status == 200
    down.recover()
    assert [row.body for row in down.owed()] == ["9 to 5, Alice."]
