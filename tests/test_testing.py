"""The pytest plugin our users get: the ``phone`` fixture and its helpers, and a user's own
project tested the way they would test it (pytest run in their directory, with their rules)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from textback import Bot
from textback.core.message import Inbound
from textback.storage import outbox as outbox_states
from textback.testing import TEST_TOKEN
from textback.testing import Phone

STOP_REPLY_START = "You have successfully been unsubscribed"


def test_send_uses_the_phones_number(phone: Phone) -> None:
    reply = phone.send("Hello")
    assert reply.text == "Hello back to you!"
    [inbound, outbound] = phone.messages()
    assert (inbound.from_number, inbound.to_number) == (phone.number, phone.to)
    assert outbound.body == "Hello back to you!"


def test_mms_carries_its_pictures(phone: Phone) -> None:
    reply = phone.mms("https://example.com/a.png", "https://example.com/b.png", body="Look")
    assert reply.sid.startswith("MM")
    [inbound, _] = phone.messages()
    assert [item["url"] for item in inbound.media] == [
        "https://example.com/a.png",
        "https://example.com/b.png",
    ]
    assert inbound.body == "Look"


def test_mms_needs_a_picture(phone: Phone) -> None:
    with pytest.raises(ValueError, match="picture"):
        phone.mms()


def test_stop_and_start(phone: Phone) -> None:
    assert not phone.is_opted_out()
    stopped = phone.stop()
    assert phone.is_opted_out()
    assert stopped.status == 200
    assert stopped.text == ""  # by default Twilio confirms it (TEXTBACK_CARRIER_REPLIES=twilio)
    assert phone.send("Hello").text == ""
    phone.start()
    assert not phone.is_opted_out()
    assert phone.send("Hello").text == "Hello back to you!"


def test_stop_and_start_when_textback_answers(make_app: Callable[..., Flask]) -> None:
    phone = Phone(make_app(TEXTBACK_CARRIER_REPLIES="textback"), TEST_TOKEN)
    assert phone.stop().text.startswith(STOP_REPLY_START)
    assert phone.start().text.startswith("You have successfully been re-subscribed")
    assert not phone.is_opted_out()


def test_replay_by_message_sid_gets_the_first_answer(phone: Phone) -> None:
    first = phone.send("Hello")
    phone.send("Something else")
    again = phone.replay(first.sid)
    assert again.twiml == first.twiml
    assert again.sid == first.sid
    assert [row.body for row in phone.messages() if row.direction == "inbound"] == [
        "Hello",
        "Something else",
    ]
    assert phone.replay().sid == first.sid  # replay() repeats the last delivery
    assert len([row for row in phone.messages() if row.direction == "outbound"]) == 2


@pytest.mark.parametrize("sid", ["SM" + "0" * 32, None])
def test_replay_of_nothing_says_so(phone: Phone, sid: str | None) -> None:
    with pytest.raises(ValueError):
        phone.replay(sid)


def test_report_names_the_reply_and_records_its_status(phone: Phone) -> None:
    reply = phone.send("Hello")
    sid = phone.report(reply, "sent")
    assert phone.status(sid, "delivered") == 204
    outbound = [row for row in phone.messages() if row.direction == "outbound"]
    assert [(row.sid, row.status) for row in outbound] == [(sid, "delivered")]


def test_report_of_a_failed_delivery_keeps_the_error(phone: Phone) -> None:
    reply = phone.send("Hello")
    phone.report(reply, "undelivered", error_code="30003")
    [outbound] = [row for row in phone.messages() if row.direction == "outbound"]
    assert (outbound.status, outbound.error_code) == ("undelivered", "30003")


# --- a user's project -------------------------------------------------------------------------

RULES = """
[[rule]]
keyword = "hours"
reply = "We are open 9 to 5."
"""

USER_TESTS = """
def test_hours(phone):
    reply = phone.send("hours", from_="+15550001111")
    assert reply.text == "We are open 9 to 5."


def test_hello_is_not_a_rule_here(phone):
    assert phone.send("Hello").text == "Hello back to you!"


def test_stop(phone):
    phone.stop()
    assert phone.is_opted_out()
"""

USER_BOT = """
import pytest
from textback import Bot


@pytest.fixture
def textback_bot():
    bot = Bot()

    @bot.on("ping")
    def ping(msg):
        return "pong"

    return bot
"""


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    """pytest in ``directory``, as the user runs it, with textback installed (not ours)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEXTBACK_", "TWILIO_", "PYTEST_")) and name != "DATABASE_URL"
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: pyproject.toml, textback.toml and tests/ with their tests."""
    root = tmp_path / "shop"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "shop"\n\n[tool.pytest.ini_options]\n')
    (root / "textback.toml").write_text(RULES)
    (root / "tests" / "test_rules.py").write_text(textwrap.dedent(USER_TESTS))
    return root


def failures(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The names of the tests that failed, from pytest's short summary."""
    return sorted(
        line.split("::")[1].split(" ")[0]
        for line in result.stdout.splitlines()
        if line.startswith("FAILED ")
    )


def test_users_three_line_test_runs_in_their_project(project: Path) -> None:
    result = run_pytest(project)
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr
    # The failure is the rules file at work: "Hello" is no rule in this project's file.
    assert failures(result) == ["test_hello_is_not_a_rule_here"]


def test_users_tests_find_the_rules_from_a_subfolder(project: Path) -> None:
    result = run_pytest(project / "tests")
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr
    assert failures(result) == ["test_hello_is_not_a_rule_here"]


def test_users_bot_fixture_is_used(project: Path) -> None:
    (project / "tests" / "conftest.py").write_text(textwrap.dedent(USER_BOT))
    (project / "tests" / "test_bot.py").write_text(
        "def test_ping(phone):\n    assert phone.send('ping').text == 'pong'\n"
    )
    result = run_pytest(project)
    assert "1 failed, 3 passed" in result.stdout, result.stdout + result.stderr
    assert failures(result) == ["test_hello_is_not_a_rule_here"]


# --- slow handlers ---------------------------------------------------------------------------

SLOW_ACK = "Working on it…"


def slow_bot(calls: list[str]) -> Bot:
    bot = Bot()

    @bot.on("report", slow=True, ack=SLOW_ACK)
    def report(msg: Inbound) -> str:
        calls.append(msg.body)
        return "Your report is ready."

    return bot


def test_a_slow_handlers_reply_is_a_followup(make_app: Callable[..., Flask]) -> None:
    calls: list[str] = []
    phone = Phone(make_app(bot=slow_bot(calls)), TEST_TOKEN)  # no Twilio credentials
    reply = phone.send("report")
    assert reply.text == SLOW_ACK
    [followup] = reply.followups
    assert (followup.text, followup.media, calls) == ("Your report is ready.", (), ["report"])
    [_, ack, sent] = phone.messages()
    assert (ack.body, sent.body, sent.sid) == (SLOW_ACK, "Your report is ready.", followup.sid)
    assert phone.send("Hello").followups == ()  # an inline answer has none
    assert calls == ["report"]


def test_the_phone_sends_no_other_outbox_message(make_app: Callable[..., Flask]) -> None:
    phone = Phone(make_app(bot=slow_bot([])), TEST_TOKEN)
    # A row queued on the phone's own queue, as a flow's reminder or a broadcast is queued.
    entry_id, _ = phone.worker.outbox.put(
        sender=phone.to, to=phone.number, body="Don't forget!", source="flow reminder"
    )
    reply = phone.send("report")
    assert [f.text for f in reply.followups] == ["Your report is ready."]
    entry = phone.worker.outbox.rows.get(entry_id)
    assert entry is not None and entry.state == outbox_states.QUEUED


def test_a_slow_reply_to_an_opted_out_phone_is_not_sent(make_app: Callable[..., Flask]) -> None:
    bot = slow_bot([])
    phone = Phone(make_app(bot=bot), TEST_TOKEN)

    @bot.on("leave", slow=True, ack="Bye")
    def leave(msg: Inbound) -> str:
        phone.stop()  # the person opts out while the handler runs
        return "You will not get this."

    reply = phone.send("leave")
    assert (reply.text, reply.followups) == ("Bye", ())
    assert [m.body for m in phone.messages()] == ["leave", "Bye", "STOP"]  # nothing sent


USER_SLOW_BOT = """
import pytest
from textback import Bot


@pytest.fixture
def textback_bot():
    bot = Bot()

    @bot.on("report", slow=True, ack="Working on it…")
    def report(msg):
        return "Your report is ready."

    return bot
"""


def test_users_slow_handler_test_sees_its_reply(project: Path) -> None:
    (project / "tests" / "conftest.py").write_text(textwrap.dedent(USER_SLOW_BOT))
    (project / "tests" / "test_slow.py").write_text(
        textwrap.dedent("""
        def test_report(phone):
            reply = phone.send("report")
            assert reply.text == "Working on it…"
            assert [f.text for f in reply.followups] == ["Your report is ready."]
        """)
    )
    result = run_pytest(project)
    assert "1 failed, 3 passed" in result.stdout, result.stdout + result.stderr
    assert failures(result) == ["test_hello_is_not_a_rule_here"]
