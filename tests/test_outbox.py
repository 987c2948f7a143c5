"""The outbox in one process: states, retries, lookups of unknown outcomes, opt-outs at send
time, schedules, the sweep and the CLI; against a stand-in API (and Prism for the contract)."""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from huey import MemoryHuey
from sqlalchemy import select

from textback.channel import rest
from textback.channel.rest import BaseUrlHttpClient
from textback.cli import main
from textback.config import Settings
from textback.errors import ConfigError
from textback.outbound.outbox import Outbox
from textback.outbound.outbox import backoff
from textback.outbound.send import OptedOutError
from textback.outbound.send import parse_send_time
from textback.outbound.send import schedule_message
from textback.outbound.send import send_message
from textback.storage import outbox as states
from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine
from textback.storage.outbox import outbox as outbox_table
from textback.storage.store import Store
from textback.storage.tables import contacts
from textback.storage.tables import messages

from .prism import ACCOUNT
from .prism import prism  # noqa: F401
from .standin import Fault
from .standin import Sent
from .standin import StandIn
from .standin import standin_api  # noqa: F401

OURS = "+15559990000"
THEM = "+15550001111"
SERVICE = "MG" + "b" * 32
# Near the real time: the stand-in dates the messages it creates by the real clock.
START = datetime.now(UTC).replace(microsecond=0)


class Clock:
    """A clock the test moves; the outbox's times (due, backoff, staleness) follow it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database_url: str, clock: Clock) -> Iterator[Store]:
    engine = make_engine(database_url)
    ensure_schema(engine)
    yield Store(engine, clock=clock)
    engine.dispose()


def settings_for(base_url: str, tmp_path: Path, **extra: str) -> Settings:
    return Settings.load(
        {
            "TEXTBACK_MODE": "production",
            "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": "secret-token",
            "TWILIO_API_BASE_URL": base_url,
            "TEXTBACK_SEND_RATE": "1000",
            "TEXTBACK_PUBLIC_URL": "https://bot.example",
            **extra,
        },
        environ={},
    )


@pytest.fixture
def make_outbox(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Outbox]:
    # A short timeout, so a hanging API is a timeout in a second, not in thirty.
    monkeypatch.setattr(
        rest,
        "http_client_for",
        lambda settings: BaseUrlHttpClient(settings.api_base_url, timeout=1),
    )

    def build(base_url: str, **extra: str) -> Outbox:
        queue = MemoryHuey(name="test", results=False)
        return Outbox(settings_for(base_url, tmp_path, **extra), store, queue, rng=lambda: 0.5)

    return build


def row(store: Store, entry_id: int) -> Any:
    with store.engine.connect() as connection:
        return connection.execute(select(outbox_table).where(outbox_table.c.id == entry_id)).one()


def put(box: Outbox, body: str = "Your order is ready", **extra: Any) -> int:
    entry_id, new = box.put(sender=extra.pop("sender", OURS), to=THEM, body=body, **extra)
    assert new
    return entry_id


def queued_tasks(box: Outbox) -> int:
    return int(box.queue.pending_count() + box.queue.scheduled_count())


# --- sending ------------------------------------------------------------------------------


def test_a_message_is_sent_once_and_logged_with_its_sid(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
) -> None:
    box = make_outbox(standin.url)
    entry_id = put(box, media=["https://example.com/a.png"])
    assert queued_tasks(box) == 1  # queued after the commit
    outcome = box.deliver(entry_id)
    assert outcome is not None and outcome.state == states.SENT
    [sent] = standin.sent
    assert sent.form["To"] == THEM and sent.form["From"] == OURS
    assert sent.form["Body"] == "Your order is ready"
    assert sent.form["MediaUrl"] == "https://example.com/a.png"
    assert sent.form["StatusCallback"] == "https://bot.example/twilio/status"
    entry = row(store, entry_id)
    assert (entry.state, entry.sid, entry.attempts, entry.unsure_since) == (
        states.SENT,
        sent.sid,
        1,
        None,
    )
    logged = store.recent_messages()[-1]
    assert (logged.sid, logged.id, logged.direction) == (sent.sid, entry.message_id, "outbound")
    assert box.deliver(entry_id) is None  # the same task again sends nothing
    assert len(standin.posts) == 1


def test_a_key_makes_a_second_copy_impossible(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
) -> None:
    box = make_outbox(standin.url)
    first, new = box.put(sender=OURS, to=THEM, body="Hi", key="webhook:SM1:reply")
    again, new_again = box.put(sender=OURS, to=THEM, body="Hi", key="webhook:SM1:reply")
    assert (new, new_again, again) == (True, False, first)
    assert queued_tasks(box) == 1
    box.deliver(first)
    box.sweep()
    box.sweep()
    box.deliver(first)
    assert len(standin.posts) == 1


def test_a_messaging_service_can_be_the_sender(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
) -> None:
    box = make_outbox(standin.url)
    box.deliver(put(box, sender=SERVICE))
    [sent] = standin.sent
    assert sent.form["MessagingServiceSid"] == SERVICE and "From" not in sent.form


def test_status_callbacks_move_the_row_to_delivered_or_undelivered(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
) -> None:
    box = make_outbox(standin.url)
    delivered, undelivered = put(box, "one"), put(box, "two")
    box.deliver(delivered)
    box.deliver(undelivered)
    first, second = standin.sent
    store.record_status({"MessageSid": first.sid, "MessageStatus": "delivered"}, None)
    store.record_status(
        {"MessageSid": second.sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}, None
    )
    assert row(store, delivered).state == states.DELIVERED
    assert (row(store, undelivered).state, row(store, undelivered).error_code) == (
        states.UNDELIVERED,
        "30003",
    )


# --- retries and unknown outcomes --------------------------------------------------------


def test_429_is_retried_later_with_backoff_and_no_lookup(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
    clock: Clock,
) -> None:
    box = make_outbox(standin.url)
    entry_id = put(box)
    standin.faults.append(Fault(429, 20429))
    outcome = box.deliver(entry_id)
    assert outcome is not None and outcome.state == states.SCHEDULED
    entry = row(store, entry_id)
    assert entry.state == states.SCHEDULED and entry.unsure_since is None
    assert entry.send_at == START + timedelta(seconds=backoff(1, lambda: 0.5))
    assert box.deliver(entry_id) is None  # not due yet
    clock.advance(60)
    box.deliver(entry_id)
    assert row(store, entry_id).state == states.SENT
    assert (len(standin.posts), len(standin.sent), standin.lists) == (2, 1, 0)


def test_backoff_grows_has_jitter_and_a_cap() -> None:
    assert backoff(1, lambda: 0.0) == 1.0 and backoff(1, lambda: 1.0) == 2.0
    assert backoff(3, lambda: 1.0) == 8.0
    assert backoff(50, lambda: 1.0) == 600.0


@pytest.mark.parametrize(
    "fault", [Fault(500, create=True), Fault(hang=3, create=True)], ids=["500", "timeout"]
)
def test_an_unknown_outcome_found_in_twilios_list_is_not_sent_again(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
    clock: Clock,
    fault: Fault,
) -> None:
    box = make_outbox(standin.url)
    entry_id = put(box)
    standin.faults.append(fault)  # Twilio took the message but we never heard so
    box.deliver(entry_id)
    assert row(store, entry_id).unsure_since is not None
    clock.advance(60)
    outcome = box.deliver(entry_id)
    assert outcome is not None and outcome.state == states.SENT
    [sent] = standin.sent
    assert row(store, entry_id).sid == sent.sid
    assert (len(standin.posts), standin.lists) == (1, 1)


def test_an_unknown_outcome_not_in_twilios_list_is_sent_again(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
    clock: Clock,
) -> None:
    box = make_outbox(standin.url)
    entry_id = put(box)
    standin.faults.append(Fault(503))
    box.deliver(entry_id)
    clock.advance(60)
    box.deliver(entry_id)
    assert row(store, entry_id).state == states.SENT
    assert (len(standin.posts), len(standin.sent), standin.lists) == (2, 1, 1)


def test_a_worker_that_died_mid_call_is_looked_up_by_the_sweep(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
    clock: Clock,
) -> None:
    box = make_outbox(standin.url, TEXTBACK_OUTBOX_STALE_AFTER="60")
    box.deliver(put(box, "another text"))  # Twilio has other messages to this number too
    entry_id = put(box)
    assert box.rows.claim(entry_id, 60) is not None
    box.rows.calling(entry_id)
    # The request reached Twilio; the worker died before it recorded the answer.
    form = {"To": THEM, "From": OURS, "Body": "Your order is ready"}
    standin.sent.append(Sent("SM" + "c" * 32, form, time.time()))
    posts = len(standin.posts)
    assert box.sweep() == 0 and box.deliver(entry_id) is None  # a live worker may have it
    clock.advance(61)
    assert box.sweep() == 1
    box.deliver(entry_id)
    assert (row(store, entry_id).state, row(store, entry_id).sid) == (states.SENT, "SM" + "c" * 32)
    assert len(standin.posts) == posts


def test_a_lookup_that_cannot_tell_marks_the_message_for_review(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
    clock: Clock,
) -> None:
    box = make_outbox(standin.url)
    entry_id = put(box, "Same text")
    standin.faults += [Fault(500, create=True), Fault(500, create=True)]
    box.deliver(put(box, "Same text"))  # another row with the same text, also unsure
    box.deliver(entry_id)
    clock.advance(60)
    outcome = box.deliver(entry_id)
    assert outcome is not None and outcome.state == states.REVIEW
    assert "cannot tell" in row(store, entry_id).reason
    clock.advance(3600)
    box.sweep()
    box.deliver(entry_id)
    assert len(standin.posts) == 2  # never resent


@pytest.mark.parametrize(
    ("code", "opts_out"), [(21211, False), (21617, False), (21610, True), (21408, False)]
)
def test_permanent_errors_fail_at_once_with_twilios_code(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
    clock: Clock,
    code: int,
    opts_out: bool,
) -> None:
    box = make_outbox(standin.url)
    entry_id = put(box)
    standin.faults.append(Fault(400, code))
    outcome = box.deliver(entry_id)
    assert outcome is not None and outcome.state == states.FAILED
    entry = row(store, entry_id)
    assert (entry.state, entry.error_code, entry.unsure_since) == (states.FAILED, str(code), None)
    clock.advance(3600)
    box.sweep()
    box.deliver(entry_id)
    assert len(standin.posts) == 1
    assert (store.opt_out_of(OURS, THEM) is not None) == opts_out


def test_a_message_that_may_have_been_sent_is_never_given_up_as_failed(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
    clock: Clock,
) -> None:
    box = make_outbox(standin.url)
    entry_id = put(box)
    standin.faults += [Fault(502) for _ in range(20)]
    for _ in range(20):
        box.deliver(entry_id)
        clock.advance(3600)
    entry = row(store, entry_id)
    assert entry.state == states.REVIEW and "gave up after 8 attempts" in entry.reason
    assert len(standin.posts) == 8


# --- opt-outs and schedules ----------------------------------------------------------------


def test_a_stop_while_the_message_waits_cancels_it(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
) -> None:
    box = make_outbox(standin.url)
    entry_id = put(box)
    store.set_opted_out(OURS, THEM, True)
    outcome = box.deliver(entry_id)
    assert outcome is not None and outcome.state == states.CANCELLED
    assert row(store, entry_id).reason.startswith(f"opted out at {START:%Y-%m-%d %H:%M} UTC")
    assert standin.posts == []


def test_a_scheduled_message_waits_for_its_time(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
    clock: Clock,
) -> None:
    box = make_outbox(standin.url)
    store.set_opted_out(OURS, THEM, False)
    at = START + timedelta(hours=2)
    entry_id = schedule_message(box.settings, store, to=THEM, body="Reminder", at=at, outbox=box)
    assert row(store, entry_id).state == states.SCHEDULED
    assert queued_tasks(box) == 1  # with its time: the consumer keeps it until then
    assert box.deliver(entry_id) is None
    clock.advance(2 * 3600)
    box.deliver(entry_id)
    assert row(store, entry_id).state == states.SENT and len(standin.posts) == 1


def test_scheduling_refuses_a_contact_who_opted_out(
    make_outbox: Callable[..., Outbox],
    standin: StandIn,
    store: Store,
) -> None:
    box = make_outbox(standin.url)
    store.set_opted_out(OURS, THEM, True)
    with pytest.raises(OptedOutError):
        schedule_message(box.settings, store, to=THEM, body="x", from_=OURS, outbox=box)
    assert box.rows.counts() == {}


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-12-24T09:00", "UTC", datetime(2026, 12, 24, 9, 0, tzinfo=UTC)),
        ("2026-12-24T09:00", "Europe/Berlin", datetime(2026, 12, 24, 8, 0, tzinfo=UTC)),
        ("2026-12-24T09:00-05:00", "Europe/Berlin", datetime(2026, 12, 24, 14, 0, tzinfo=UTC)),
    ],
)
def test_send_times_are_iso_8601_in_the_configured_zone(
    text: str, zone: str, expected: datetime
) -> None:
    assert parse_send_time(text, zone, START) == expected


@pytest.mark.parametrize(
    ("text", "problem"), [("tomorrow", "ISO 8601"), ("2020-11-30T09:00Z", "in the past")]
)
def test_bad_send_times_are_one_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_send_time(text, "UTC", START)


# --- the shared rate limit ----------------------------------------------------------------


def test_send_slots_are_handed_out_one_interval_apart(store: Store, tmp_path: Path) -> None:
    box = Outbox(settings_for("http://x", tmp_path), store, MemoryHuey(results=False))
    slots = [box.rows.reserve_slot(OURS, 0.5, 1000.0) for _ in range(4)]
    assert slots == [1000.0, 1000.5, 1001.0, 1001.5]
    assert box.rows.reserve_slot(SERVICE, 0.5, 1000.0) == 1000.0  # each sender has its own
    assert box.rows.reserve_slot(OURS, 0.5, 2000.0) == 2000.0  # an idle slot does not bank


# --- the CLI -----------------------------------------------------------------------------


def cli_env(base_url: str, database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "secret-token",
        "TWILIO_API_BASE_URL": base_url,
        "DATABASE_URL": database_url,
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
    }


def test_send_at_then_list_and_cancel(
    database_url: str,
    store: Store,
    standin: StandIn,
    tmp_path: Path,
) -> None:
    env = cli_env(standin.url, database_url, tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["send", THEM, "Merry Christmas", "--from", OURS, "--at", "2099-12-24T09:00+01:00"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "scheduled for 2099-12-24T09:00:00+01:00 (sent by the worker: `textback worker`, or" in (
        result.output
    )
    entry_id = int(result.output.split()[1])
    listed = runner.invoke(main, ["outbox"], env=env)
    assert listed.output.splitlines()[0] == "1 scheduled"
    assert f"{entry_id:>6} scheduled   2099-12-24 08:00 UTC" in listed.output
    assert runner.invoke(main, ["outbox", "cancel", str(entry_id)], env=env).exit_code == 0
    assert runner.invoke(main, ["outbox"], env=env).output.strip() == "1 cancelled"
    again = runner.invoke(main, ["outbox", "cancel", str(entry_id)], env=env)
    assert again.exit_code == 1 and "is cancelled: it cannot be cancelled now" in again.output
    missing = runner.invoke(main, ["outbox", "cancel", "999"], env=env)
    assert missing.exit_code == 1 and "no such message" in missing.output
    assert standin.posts == []


def test_send_now_goes_through_the_outbox(
    database_url: str,
    store: Store,
    standin: StandIn,
    tmp_path: Path,
) -> None:
    env = cli_env(standin.url, database_url, tmp_path)
    result = CliRunner().invoke(main, ["send", THEM, "Now", "--from", OURS], env=env)
    assert result.exit_code == 0, result.output
    [sent] = standin.sent
    assert result.output.split() == [sent.sid, "queued"]
    assert CliRunner().invoke(main, ["outbox", "--all"], env=env).output.startswith("1 sent")


def test_send_now_that_twilio_rate_limits_is_left_for_the_worker(
    database_url: str,
    store: Store,
    standin: StandIn,
    tmp_path: Path,
) -> None:
    standin.faults.append(Fault(429, 20429))
    env = cli_env(standin.url, database_url, tmp_path)
    result = CliRunner().invoke(main, ["send", THEM, "Busy", "--from", OURS], env=env)
    assert result.exit_code == 1
    assert "kept as outbox 1: `textback worker` retries it" in result.output
    with store.engine.connect() as connection:
        assert connection.execute(select(outbox_table.c.state)).scalar() == states.SCHEDULED


# --- against Prism: the requests the worker makes conform to Twilio's API ------------------


@pytest.mark.prism
def test_the_workers_requests_conform_to_twilios_api(
    prism: str,  # noqa: F811
    make_outbox: Callable[..., Outbox],
    store: Store,
    clock: Clock,
) -> None:
    box = make_outbox(prism)
    sent = box.deliver(put(box, sender=SERVICE))
    assert sent is not None and sent.state == states.SENT
    entry_id = put(box, "Looked up")
    box.rows.claim(entry_id, 60)
    box.rows.calling(entry_id)
    box.rows.retry_at(entry_id, START, "test", unsure=True, error_code=None)
    outcome = box.deliver(entry_id)  # a lookup (GET Messages.json), then the send
    assert outcome is not None and outcome.state == states.SENT, outcome


def test_send_message_keeps_its_python_api(
    database_url: str,
    store: Store,
    standin: StandIn,
    tmp_path: Path,
) -> None:
    store.set_opted_out(OURS, THEM, False)
    settings = settings_for(standin.url, tmp_path)
    sid, status = send_message(settings, store, to=THEM, body="Hello from Python")
    assert (sid, status) == (standin.sent[0].sid, "queued")
    with store.engine.connect() as connection:
        assert (
            connection.execute(
                select(messages.c.sid).where(messages.c.body == "Hello from Python")
            ).scalar()
            == sid
        )
        assert connection.execute(select(contacts.c.opted_out)).scalar() is False


def test_a_message_held_for_review_is_resent_only_by_a_person(
    database_url: str, store: Store, standin: StandIn, tmp_path: Path
) -> None:
    env = cli_env(standin.url, database_url, tmp_path)
    box = Outbox(Settings.load(environ=env), store)
    entry_id = put(box)
    box.rows.finish(entry_id, states.REVIEW, "cannot tell whether it was sent")
    runner = CliRunner()
    listed = runner.invoke(main, ["outbox"], env=env).output
    assert listed.startswith("1 review") and "(cannot tell whether it was sent)" in listed
    result = runner.invoke(main, ["outbox", "resend", str(entry_id)], env=env)
    assert result.exit_code == 0, result.output
    entry = row(store, entry_id)
    assert (entry.state, entry.attempts, entry.unsure_since) == (states.QUEUED, 0, None)
    again = runner.invoke(main, ["outbox", "resend", str(entry_id)], env=env)
    assert again.exit_code == 1 and "only review and failed messages are resent" in again.output
    box.deliver(entry_id)
    assert row(store, entry_id).state == states.SENT and len(standin.posts) == 1


def test_sends_are_counted_by_result_and_error_code(
    make_outbox: Callable[..., Outbox], standin: StandIn
) -> None:
    from prometheus_client import REGISTRY

    def count(result: str, code: str) -> float:
        value = REGISTRY.get_sample_value(
            "textback_sends_total", {"result": result, "error_code": code}
        )
        return value or 0.0

    box = make_outbox(standin.url)
    sent, failed = count("sent", ""), count("failed", "21211")
    box.deliver(put(box))
    standin.faults.append(Fault(400, 21211))
    box.deliver(put(box, body="another"))
    assert count("sent", "") == sent + 1
    assert count("failed", "21211") == failed + 1
