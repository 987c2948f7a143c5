"""Slow handlers in one process: the core's deferral, the job stored with its message, the
worker's run (reply through the outbox, state applied in its transaction), failures, retried
webhooks, lost tasks and dead workers; on SQLite and PostgreSQL, against the stand-in API."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from flask import Flask
from huey import MemoryHuey
from sqlalchemy import select

from textback import Bot
from textback import Reply
from textback.channel.forms import inbound_form
from textback.core.conversation import Conversation
from textback.core.matchers import Match
from textback.core.message import END
from textback.core.message import Inbound
from textback.core.profile import ContactProfile
from textback.core.responder import changes_conversation
from textback.core.responder import decide
from textback.core.responder import slow_decision
from textback.errors import HandlerError
from textback.errors import InvalidHandler
from textback.outbound.outbox import Outbox
from textback.outbound.slow import MAX_RUNS
from textback.outbound.slow import SlowHandlers
from textback.rulesfile.rules import default_rules
from textback.service import Textback
from textback.storage import outbox as outbox_states
from textback.storage import slow_jobs as states
from textback.storage.inbound import slow_jobs
from textback.storage.outbox import outbox as outbox_table
from textback.storage.profiles import save_profiles
from textback.storage.slow_jobs import outbox_key
from textback.storage.tables import messages

from .prism import ACCOUNT
from .standin import StandIn
from .standin import standin_api  # noqa: F401

OURS = "+15559990000"
THEM = "+15550001111"
ACK = "Working on it…"


def message(body: str, sid: str | None = None, from_: str = THEM) -> Inbound:
    return Inbound.from_form(inbound_form(body, sid=sid, from_=from_, to=OURS))


# --- the core: no I/O -------------------------------------------------------------------


def test_a_slow_handler_is_deferred_not_called() -> None:
    bot = Bot()
    called: list[str] = []

    @bot.on("report", slow=True, ack=ACK)
    def report(msg: Inbound) -> str:
        called.append(msg.body)
        return "done"

    decision = decide(
        message("report"), opted_out=False, conversation=None, bot=bot, rules=default_rules()
    )
    assert (decision.reply.text, decision.source, decision.deferred) == (
        ACK,
        "handler report",
        "handler report",
    )
    assert decision.conversation is None and called == []
    outcome = bot.run_slow("handler report", message("report"), Conversation())
    assert (outcome.reply.text, outcome.deferred, called) == ("done", False, ["report"])


def test_a_slow_handler_gets_the_arguments_it_would_get_inline() -> None:
    bot = Bot()
    seen: dict[str, Any] = {}

    @bot.on(re.compile(r"^report (?P<week>\d+)$"), slow=True)
    def report(msg: Inbound, match: re.Match[str], conversation: Conversation) -> str:
        seen.update(week=match["week"], values=dict(conversation.values))
        return f"week {match['week']}"

    outcome = bot.run_slow(
        "handler report", message("report 12"), Conversation(values={"name": "Ann"})
    )
    assert outcome.reply.text == "week 12"
    assert seen == {"week": "12", "values": {"name": "Ann"}}


def test_the_default_ack_is_no_reply_and_state_and_fallback_handlers_may_be_slow() -> None:
    bot = Bot()

    @bot.on("report", slow=True)
    def report(msg: Inbound) -> str:
        return "r"

    @bot.on(state="survey.q1", slow=True, ack="Checking…")
    def q1(msg: Inbound) -> str:
        return "q"

    @bot.fallback(slow=True)
    def anything(msg: Inbound) -> str:
        return "f"

    rules = default_rules()
    first = decide(message("report"), opted_out=False, conversation=None, bot=bot, rules=rules)
    assert first.reply.is_empty and first.deferred == "handler report"
    in_state = Conversation("survey.q1")
    second = decide(message("7"), opted_out=False, conversation=in_state, bot=bot, rules=rules)
    assert (second.reply.text, second.deferred) == ("Checking…", "state q1")
    assert second.conversation == in_state  # unchanged until the worker's answer
    third = decide(message("hmm"), opted_out=False, conversation=None, bot=bot, rules=rules)
    assert third.deferred == "handler anything"
    assert bot.run_slow("state q1", message("7"), in_state).reply.text == "q"
    assert bot.run_slow("handler anything", message("hmm"), Conversation()).reply.text == "f"
    assert bot.has_slow_handlers and not Bot().has_slow_handlers


@pytest.mark.parametrize(
    ("register", "problem"),
    [
        (lambda bot: bot.on("x", ack="hi"), "ack=... is the answer of a slow handler"),
        (lambda bot: bot.on("x", slow=True, ack="x" * 1601), "its ack is 1,601 characters"),
        (lambda bot: bot.fallback(ack="hi"), "add slow=True"),
    ],
)
def test_bad_slow_registrations_fail_at_once(
    register: Callable[[Bot], Callable[[Any], Any]], problem: str
) -> None:
    with pytest.raises(InvalidHandler, match=re.escape(problem)):
        register(Bot())(lambda msg: None)


def test_two_slow_handlers_may_not_share_a_name() -> None:
    bot = Bot()

    @bot.on("a")
    def report(msg: Inbound) -> str:
        return "inline"

    with pytest.raises(InvalidHandler, match="'handler report' is taken by handler 'report'"):

        @bot.on("b", slow=True)
        def report(msg: Inbound) -> str:
            return "slow"

    bot.on("b", slow=True, name="slow report")(report)  # a name of its own is fine


def test_run_slow_fails_as_dispatch_does() -> None:
    bot = Bot()

    @bot.on("report", slow=True)
    def report(msg: Inbound) -> str:
        raise ValueError("no data")

    with pytest.raises(HandlerError) as raised:
        bot.run_slow("handler report", message("report"), Conversation())
    assert isinstance(raised.value.__cause__, ValueError)
    with pytest.raises(HandlerError, match="no slow handler of that name"):
        bot.run_slow("handler gone", message("report"), Conversation())
    with pytest.raises(HandlerError, match="no longer matches"):
        bot.run_slow("handler report", message("something else"), Conversation())


def test_a_slow_answer_applies_state_as_an_inline_one_does() -> None:
    rules = default_rules()
    source = "handler report"
    seen = Conversation()
    entered = slow_decision(_outcome(Reply("ok", state="report.more")), seen, rules, existed=False)
    assert entered.conversation == Conversation("report.more")
    assert changes_conversation(entered, None)
    open_one = Conversation("report.more", {"week": "3"})
    ended = slow_decision(_outcome(Reply("bye", state=END)), open_one, rules, existed=True)
    assert (ended.conversation, ended.ended, ended.reply.state) == (None, "ended", None)
    same = slow_decision(_outcome(Reply("again")), open_one.copy(), rules, existed=True)
    assert not changes_conversation(same, open_one)
    written = open_one.copy()
    written.values["week"] = "4"
    assert changes_conversation(
        slow_decision(_outcome("x"), written, rules, existed=True), open_one
    )
    assert entered.source == source


def _outcome(reply: Reply | str) -> Any:
    from textback.core.bot import Outcome

    return Outcome(Reply(reply) if isinstance(reply, str) else reply, "handler report")


# --- the service, the store and the worker, in one process ------------------------------


class Clock:
    """The store's clock, moved by the test (staleness of jobs)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Served:
    """An app with a slow bot, its queue in memory: answer webhooks, then drain the queue as a
    worker would."""

    def __init__(self, app: Flask, clock: Clock) -> None:
        self.app = app
        self.service: Textback = app.extensions["textback"]
        self.service.store.clock = clock
        queue = MemoryHuey(name="slow-test", results=False)
        outbox = Outbox(self.service.settings, self.service.store, queue)
        self.slow = SlowHandlers(outbox, lambda: (self.service.bot, self.service.rules))
        self.service.__dict__["slow"] = self.slow  # the cached property, set before first use
        self.queue = queue

    def answer(self, body: str, sid: str | None = None) -> str:
        return self.service.answer(message(body, sid))

    def drain(self) -> int:
        """Run every queued task, and those they queue; returns how many ran."""
        ran = 0
        while (task := self.queue.dequeue()) is not None:
            self.queue.execute(task)
            ran += 1
        return ran

    def job(self, sid: str) -> Any:
        return self.slow.rows.get(sid)

    def outbox_rows(self) -> list[Any]:
        with self.service.store.engine.connect() as connection:
            return list(connection.execute(select(outbox_table).order_by(outbox_table.c.id)))

    def jobs(self) -> list[Any]:
        with self.service.store.engine.connect() as connection:
            return list(connection.execute(select(slow_jobs)))


@pytest.fixture
def serve(make_app: Callable[..., Flask], standin: StandIn) -> Iterator[Callable[[Bot], Served]]:
    clock = Clock()

    def build(bot: Bot, **config: object) -> Served:
        app = make_app(
            bot=bot,
            TWILIO_ACCOUNT_SID=ACCOUNT,
            TWILIO_API_BASE_URL=standin.url,
            TEXTBACK_SEND_RATE="1000",
            TEXTBACK_OUTBOX_STALE_AFTER="30",
            **config,
        )
        return Served(app, clock)

    yield build


def report_bot(calls: list[str], **on: Any) -> Bot:
    bot = Bot(error_reply=on.pop("error_reply", ""))

    @bot.on(re.compile(r"^report(?: (?P<week>\d+))?$"), slow=True, ack=ACK, **on)
    def report(msg: Inbound, match: re.Match[str]) -> str:
        calls.append(msg.sid)
        return f"Your report for week {match['week'] or 1} is ready."

    return bot


def test_the_webhook_answers_at_once_and_the_worker_sends_the_reply(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    calls: list[str] = []
    served = serve(report_bot(calls))
    sid = message("report 7").sid
    twiml = served.answer("report 7", sid)
    assert ACK in twiml and calls == []  # answered before the handler ran
    job = served.job(sid)
    assert (job.state, job.handler, job.attempts) == (states.WAITING, "handler report", 0)
    assert served.drain() == 2  # the job, then the send it queued
    assert calls == [sid]
    [sent] = standin.sent
    assert sent.form["Body"] == "Your report for week 7 is ready."
    assert (sent.form["To"], sent.form["From"]) == (THEM, OURS)
    [row] = served.outbox_rows()
    assert (row.key, row.state, row.source) == (
        outbox_key(sid),
        outbox_states.SENT,
        "handler report",
    )
    job = served.job(sid)
    assert (job.state, job.outbox_id, job.attempts) == (states.DONE, row.id, 1)
    log = served.service.store.recent_messages()
    assert [(m.direction, m.body) for m in log] == [
        ("inbound", "report 7"),
        ("outbound", ACK),
        ("outbound", "Your report for week 7 is ready."),
    ]


def test_a_retried_webhook_does_not_run_it_twice(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    calls: list[str] = []
    served = serve(report_bot(calls))
    sid = message("report").sid
    first = served.answer("report", sid)
    assert served.answer("report", sid) == first  # the stored answer, byte for byte
    assert len(served.jobs()) == 1
    assert served.queue.pending_count() == 1  # one task: the retry queued nothing
    served.drain()
    assert served.slow.run(sid) is None  # a duplicate task finds the job done
    served.answer("report", sid)
    served.drain()
    assert calls == [sid] and len(standin.sent) == 1


def test_a_handler_that_raises_is_logged_once_and_the_error_reply_sent(
    serve: Callable[[Bot], Served], standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot(error_reply="Sorry, try again later.")

    @bot.on("report", slow=True, ack=ACK)
    def report(msg: Inbound) -> str:
        raise RuntimeError("the reports API is down")

    served = serve(bot)
    sid = message("report").sid
    served.answer("report", sid)
    with caplog.at_level(logging.INFO):
        served.drain()
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    line = failures[0].getMessage()
    assert "slow handler report for" in line and "RuntimeError" in line
    assert THEM not in line and "report" not in line.split("failed")[1]
    assert "the error reply queued" in line
    assert [s.form["Body"] for s in standin.sent] == ["Sorry, try again later."]
    job = served.job(sid)
    assert (job.state, job.error) == (states.FAILED, "handler report failed: RuntimeError")
    with served.service.store.engine.connect() as connection:
        stored = connection.execute(select(messages).where(messages.c.sid == sid)).one()
    assert (stored.body, stored.source) == ("report", "error: handler report")
    assert served.slow.run(sid) is None  # not retried


def test_a_handler_that_raises_without_an_error_reply_sends_nothing(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    bot = Bot()

    @bot.on("report", slow=True)
    def report(msg: Inbound) -> str:
        raise RuntimeError("down")

    served = serve(bot)
    served.answer("report")
    served.drain()
    assert standin.posts == [] and served.outbox_rows() == []
    assert [job.state for job in served.jobs()] == [states.FAILED]


def test_the_returned_state_is_applied_in_the_workers_transaction(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    bot = Bot()

    @bot.on("report", slow=True)
    def report(msg: Inbound, conversation: Conversation) -> Reply:
        conversation.values["weeks"] = "1-4"
        return Reply("Ready. Which week?", state="report.week")

    @bot.on(state="report.week")
    def week(msg: Inbound, conversation: Conversation) -> Reply:
        return Reply(f"Week {msg.body} of {conversation.values['weeks']}.", state=END)

    served = serve(bot)
    served.answer("report")
    served.drain()
    assert ">Week 2 of 1-4.<" in served.answer("2")
    assert [s.form["Body"] for s in standin.sent] == ["Ready. Which week?"]


def test_a_conversation_that_moved_on_while_the_handler_ran_wins(
    serve: Callable[[Bot], Served], standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()
    served: Served

    @bot.on("report", slow=True)
    def report(msg: Inbound) -> Reply:
        served.answer("survey")  # the contact texts again while the handler runs
        return Reply("Your report.", state="report.week")

    @bot.on("survey")
    def survey(msg: Inbound) -> Reply:
        return Reply("Q1?", state="survey.q1")

    @bot.on(state="survey.q1")
    def q1(msg: Inbound) -> str:
        return "Thanks for answering."

    served = serve(bot)
    served.answer("report")
    with caplog.at_level(logging.WARNING):
        served.drain()
    assert "conversation moved on while it ran" in caplog.text
    assert [s.form["Body"] for s in standin.sent] == ["Your report."]
    assert "Thanks for answering." in served.answer("5")  # still in survey.q1


def test_a_job_whose_task_was_lost_is_queued_by_the_sweep(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    calls: list[str] = []
    served = serve(report_bot(calls))

    def lost(message_sid: str) -> None:
        raise ConnectionError("the queue is down")

    served.slow.enqueue = lost  # type: ignore[method-assign]
    sid = message("report").sid
    assert ACK in served.answer("report", sid)  # the webhook does not fail
    assert served.job(sid).state == states.WAITING and served.queue.pending_count() == 0
    assert served.slow.sweep() == 0  # not stale yet: its task may be on the way
    served.service.store.clock.advance(31)  # type: ignore[attr-defined]
    assert served.slow.sweep() == 1
    assert served.slow.sweep() == 0  # swept just now
    served.drain()
    assert calls == [sid] and len(standin.sent) == 1


def test_a_job_whose_worker_died_is_run_again_and_sent_once(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    calls: list[str] = []
    served = serve(report_bot(calls))
    sid = message("report").sid
    served.answer("report", sid)
    served.queue.flush()
    died = served.slow.rows.claim(sid, 30)  # a worker took it, then died before finishing
    assert died is not None
    assert served.slow.run(sid) is None  # held by a worker that is alive, as far as we know
    served.service.store.clock.advance(31)  # type: ignore[attr-defined]
    assert served.slow.sweep() == 1
    served.drain()
    assert calls == [sid] and len(standin.sent) == 1
    assert served.job(sid).attempts == 2
    # The dead worker's attempt cannot finish it any more: no second reply.
    assert served.slow.rows.finish(died, reply=Reply("late"), source="handler report") is None
    assert len(served.outbox_rows()) == 1


def test_a_job_that_keeps_killing_its_worker_is_given_up(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    calls: list[str] = []
    served = serve(report_bot(calls, error_reply="Sorry."))
    sid = message("report").sid
    served.answer("report", sid)
    for _ in range(MAX_RUNS):
        assert served.slow.rows.claim(sid, 30) is not None
        served.service.store.clock.advance(31)  # type: ignore[attr-defined]
    served.queue.flush()
    assert served.slow.run(sid) == states.FAILED
    served.drain()
    assert calls == [] and [s.form["Body"] for s in standin.sent] == ["Sorry."]
    assert "stopped 3 times" in served.job(sid).error


def test_a_stop_while_the_job_waits_means_nothing_is_sent(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    calls: list[str] = []
    served = serve(report_bot(calls))
    served.answer("report")
    served.answer("STOP")
    served.drain()
    assert len(calls) == 1  # the handler ran; the outbox refused to send
    assert standin.posts == []
    assert [row.state for row in served.outbox_rows()] == [outbox_states.CANCELLED]


def test_a_slow_handler_with_no_reply_sends_nothing(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    bot = Bot()

    @bot.on("log", slow=True)
    def log_it(msg: Inbound) -> None:
        return None

    served = serve(bot)
    twiml = served.answer("log")
    assert "<Message" not in twiml
    served.drain()
    assert standin.posts == [] and [job.state for job in served.jobs()] == [states.DONE]


def test_the_readme_example_runs(
    serve: Callable[[Bot], Served], standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tour's slow-handler block, run as written (its slow call replaced)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "slow=True" in b
    )
    namespace: dict[str, Any] = {}
    exec(compile("from textback import Bot\nbot = Bot()\n" + block, "README.md", "exec"), namespace)
    monkeypatch.setattr(namespace["time"], "sleep", lambda seconds: None)  # made quick
    bot: Bot = namespace["bot"]
    served = serve(bot)
    assert "Working on it" in served.answer("report")
    served.drain()
    [sent] = standin.sent
    assert sent.form["Body"].startswith("Your report")


def test_match_is_what_it_would_be_inline(serve: Callable[[Bot], Served]) -> None:
    """A keyword handler's match is the Match object dispatch gives (not a regex match)."""
    bot = Bot()
    got: list[Any] = []

    @bot.on("report", slow=True)
    def report(msg: Inbound, match: Match) -> None:
        got.append(match)

    served = serve(bot)
    served.answer("Report!")
    served.drain()
    assert isinstance(got[0], Match)


def test_check_counts_the_slow_handlers(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from textback.cli import main

    (tmp_path / "slowcheck.py").write_text(
        "from textback import Bot\nbot = Bot()\n"
        "bot.on('hi')(lambda msg: 'yo')\n"
        "bot.on('report', slow=True, name='report')(lambda msg: 'r')\n"
    )
    env = {
        "TEXTBACK_BOT": "slowcheck:bot",
        "TWILIO_AUTH_TOKEN": "t",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.db'}",
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
    }
    result = CliRunner().invoke(main, ["check"], env=env, catch_exceptions=False)
    assert "bot: slowcheck:bot: 2 handler(s), 1 slow (run by `textback worker`)" in result.output


def test_the_queue_file_skips_the_fsync_per_task_and_keeps_hueys_behaviour(
    tmp_path: Path,
) -> None:
    """queue.db runs with synchronous=NORMAL in WAL (no fsync per task queued, never corrupted
    by a crash); it is still huey's storage: what one instance queues, another dequeues."""
    from textback.outbound.queue import make_queue

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    queue = make_queue(url)
    connection = queue.storage.conn
    assert connection.execute("pragma synchronous").fetchone() == (1,)  # NORMAL
    assert connection.execute("pragma journal_mode").fetchone() == ("wal",)
    task = queue.task(name="textback.test.echo")(lambda value: value)
    task("hello")
    other = make_queue(url)
    other.task(name="textback.test.echo")(lambda value: value)
    assert other.pending_count() == 1
    message = other.dequeue()
    assert message is not None and message.args == ("hello",)
    assert other.pending_count() == 0


def test_the_sweep_is_a_periodic_task_of_the_workers_queue(
    serve: Callable[[Bot], Served], standin: StandIn
) -> None:
    """What a worker's consumer runs every minute finds a job whose task was lost."""
    from textback.outbound.slow import SLOW_SWEEP_TASK

    calls: list[str] = []
    served = serve(report_bot(calls))
    sid = message("report").sid
    served.answer("report", sid)
    served.queue.flush()  # the task is lost
    served.service.store.clock.advance(31)  # type: ignore[attr-defined]
    [sweep] = [
        task for task in served.queue.read_periodic(datetime.now()) if task.name == SLOW_SWEEP_TASK
    ]
    served.queue.execute(sweep)
    served.drain()
    assert calls == [sid] and len(standin.sent) == 1


def test_a_slow_handler_gets_the_contact_as_an_inline_one_does(
    serve: Callable[[Bot], Served],
) -> None:
    """``contact`` is the sender's profile in the worker too (loaded there, not by the webhook)."""
    bot = Bot()
    got: list[ContactProfile] = []

    @bot.on("report", slow=True)
    def report(msg: Inbound, contact: ContactProfile) -> str:
        got.append(contact)
        return f"Here you are, {contact.name or 'friend'}."

    served = serve(bot)
    save_profiles(
        served.service.store.engine,
        [ContactProfile(THEM, name="Ann", fields=MappingProxyType({"city": "Lima"}))],
    )
    served.answer("report")
    served.drain()
    assert [(c.number, c.name, dict(c.fields)) for c in got] == [(THEM, "Ann", {"city": "Lima"})]
