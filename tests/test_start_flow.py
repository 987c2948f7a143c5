"""Starting a flow from our side (issue 14): `textback start-flow` and ``start_flow`` in Python,
on SQLite and PostgreSQL; the first question goes through the outbox, and the contact's reply
goes to the flow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from huey import MemoryHuey
from sqlalchemy import select

from textback.cli import main
from textback.config import Settings
from textback.core.profile import ContactProfile
from textback.core.ruleset import RuleSet
from textback.errors import ConfigError
from textback.errors import TextbackError
from textback.outbound.outbox import Outbox
from textback.outbound.start_flow import FlowStart
from textback.outbound.start_flow import start_flow
from textback.storage import outbox as states
from textback.storage.models import FlowRun
from textback.storage.outbox import outbox as outbox_table
from textback.storage.profiles import save_profiles
from textback.storage.store import Store
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .prism import ACCOUNT
from .standin import StandIn
from .standin import standin_api  # noqa: F401

OURS = "+15559990000"
ANN = "+15550001111"
BOB = "+15550002222"
CAT = "+15550003333"
RULES = """
[default]
reply = "Text JOIN or SURVEY."

[[flow]]
name = "signup"
trigger = "join"

[[flow.step]]
ask = "Name?"
save = "name"

[[flow]]
name = "survey"
trigger = "survey"
done = "Thanks for the {rating}!"
expired = "The survey has closed."

[[flow.step]]
ask = "How would you rate us, 1-5?"
save = "rating"
remind_after = "2h"
"""
RATE = "How would you rate us, 1-5?"


@pytest.fixture
def rules_path(tmp_path: Path) -> str:
    path = tmp_path / "textback.toml"
    path.write_text(RULES)
    return str(path)


@pytest.fixture
def app(make_app: Callable[..., Flask], rules_path: str) -> Flask:
    return make_app(TEXTBACK_RULES=rules_path)


@pytest.fixture
def store(app: Flask) -> Store:
    store: Store = app.extensions["textback"].store
    return store


@pytest.fixture
def rules(app: Flask) -> RuleSet:
    rules: RuleSet = app.extensions["textback"].rules
    return rules


def api_settings(standin: StandIn, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "secret-token",
        "TWILIO_API_BASE_URL": standin.url,
        "TEXTBACK_SEND_RATE": "1000",
        **extra,
    }


@pytest.fixture
def box(store: Store, standin: StandIn, tmp_path: Path) -> Outbox:
    settings = Settings.load(api_settings(standin, tmp_path), environ={})
    # immediate: a queued question is sent at once, as a running worker would send it
    return Outbox(settings, store, MemoryHuey(name="start", immediate=True))


def start(box: Outbox, rules: RuleSet, numbers: list[str], **options: Any) -> list[FlowStart]:
    return start_flow(box.settings, box.store, rules, "survey", numbers, outbox=box, **options)


def runs(store: Store) -> list[Any]:
    with store.engine.connect() as connection:
        return list(connection.execute(select(FlowRun).order_by(FlowRun.id)))


def test_the_first_question_is_sent_and_the_reply_goes_to_the_flow(
    app: Flask, box: Outbox, rules: RuleSet, store: Store, standin: StandIn
) -> None:
    [started] = start(box, rules, [ANN], from_=OURS)
    assert started.skipped is None and started.run_id is not None
    assert standin.bodies() == [RATE]
    assert standin.sent[0].form["To"] == ANN and standin.sent[0].form["From"] == OURS
    [run] = runs(store)
    assert (run.flow, run.state, run.status) == ("survey", "survey:1", "open")
    # The question is in the contact's log, and the reminder waits in the outbox.
    entry = box.rows.get(started.outbox_id or 0)
    assert entry is not None and entry.key == f"flow:{run.id}:start" and entry.state == "sent"
    phone = Phone(app, TEST_TOKEN, number=ANN, to=OURS)
    assert phone.send("4").text == "Thanks for the 4!"
    assert [(r.flow, r.status, r.values) for r in runs(store)] == [
        ("survey", "completed", {"rating": "4"})
    ]
    assert {row.state for row in box.rows.of_contact(OURS, ANN)} == {"sent", "cancelled"}


def test_skipped_contacts_say_why(
    app: Flask, box: Outbox, rules: RuleSet, store: Store, standin: StandIn
) -> None:
    Phone(app, TEST_TOKEN, number=BOB, to=OURS).send("join")  # Bob is signing up
    store.set_opted_out(OURS, CAT, True)  # Cat texted STOP
    results = start(box, rules, [ANN, BOB, CAT, ANN], from_=OURS)
    assert [(r.number, r.skipped) for r in results] == [
        (ANN, None),
        (BOB, "already in flow 'signup' (--replace ends it)"),
        (CAT, results[2].skipped),
    ]
    assert (results[2].skipped or "").startswith("opted out at 20")
    assert standin.bodies() == [RATE]  # once, to Ann
    assert [(r.flow, r.status) for r in runs(store)] == [("signup", "open"), ("survey", "open")]


def test_the_question_may_name_the_contact_and_quiet_hours_hold_it(
    make_app: Callable[..., Flask], tmp_path: Path, standin: StandIn
) -> None:
    from textback.core.quiet_hours import HELD_SOURCES
    from textback.outbound.start_flow import FLOW_START

    path = tmp_path / "named.toml"
    path.write_text(RULES.replace('ask = "How would', 'ask = "{contact.name|there}, how would'))
    app = make_app(TEXTBACK_RULES=str(path))
    store: Store = app.extensions["textback"].store
    save_profiles(store.engine, [ContactProfile(ANN, "Ann")])
    settings = Settings.load(api_settings(standin, tmp_path), environ={})
    box = Outbox(settings, store, MemoryHuey(name="named", immediate=True))
    rules = app.extensions["textback"].rules
    ann, _ = start(box, rules, [ANN, BOB], from_=OURS)
    assert standin.bodies() == [
        "Ann, how would you rate us, 1-5?",
        "there, how would you rate us, 1-5?",
    ]
    question = box.rows.get(ann.outbox_id or 0)
    assert question is not None and question.source == FLOW_START
    assert FLOW_START in HELD_SOURCES  # a flow we start waits for the end of quiet hours


def test_a_contact_a_person_has_taken_over_is_skipped(
    app: Flask, box: Outbox, rules: RuleSet, store: Store
) -> None:
    from textback.storage.tables import contacts
    from textback.storage.takeover import Takeovers

    Phone(app, TEST_TOKEN, number=ANN, to=OURS).send("hello")
    with store.engine.connect() as connection:
        contact_id = connection.execute(
            select(contacts.c.id).where(contacts.c.number == ANN)
        ).scalar_one()
    Takeovers(store).take_over(contact_id, by="ops")
    [result] = start(box, rules, [ANN], from_=OURS)
    assert result.skipped == "a person has taken them over (hand them back first)"


def test_replace_ends_the_other_conversation(
    app: Flask, box: Outbox, rules: RuleSet, store: Store
) -> None:
    bob = Phone(app, TEST_TOKEN, number=BOB, to=OURS)
    bob.send("join")
    [started] = start(box, rules, [BOB], from_=OURS, replace=True)
    assert started.skipped is None
    assert [(r.flow, r.status) for r in runs(store)] == [
        ("signup", "cancelled"),
        ("survey", "open"),
    ]
    assert bob.send("5").text == "Thanks for the 5!"


def test_without_from_the_number_they_texted_is_used(
    app: Flask, box: Outbox, rules: RuleSet, standin: StandIn
) -> None:
    Phone(app, TEST_TOKEN, number=ANN, to="+15559990001").send("hello")
    results = start(box, rules, [ANN, BOB])
    assert [(r.number, r.skipped) for r in results] == [
        (ANN, None),
        (BOB, "has not texted us: give --from"),
    ]
    assert standin.sent[0].form["From"] == "+15559990001"


def test_an_unknown_flow_or_a_messaging_service_is_refused(box: Outbox, rules: RuleSet) -> None:
    with pytest.raises(TextbackError, match=r"no flow named 'nope' \(flows: 'signup', 'survey'\)"):
        start_flow(box.settings, box.store, rules, "nope", [ANN], outbox=box)
    with pytest.raises(ConfigError, match="not a Messaging Service"):
        start(box, rules, [ANN], from_="MG" + "a" * 32)


def cli_env(database_url: str, rules_path: str, standin: StandIn, tmp_path: Path) -> dict[str, str]:
    return {
        **api_settings(standin, tmp_path),
        "DATABASE_URL": database_url,
        "TEXTBACK_RULES": rules_path,
        "TEXTBACK_QUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
    }


def test_start_flow_command_for_a_group(
    app: Flask,
    store: Store,
    database_url: str,
    rules_path: str,
    standin: StandIn,
    tmp_path: Path,
) -> None:
    save_profiles(
        store.engine,
        [
            ContactProfile(ANN, "Ann", groups=("volunteers",)),
            ContactProfile(BOB, "Bob", groups=("volunteers", "staff")),
            ContactProfile(CAT, "Cat", groups=("staff",)),
        ],
    )
    store.set_opted_out(OURS, BOB, True)
    env = cli_env(database_url, rules_path, standin, tmp_path)
    result = CliRunner().invoke(
        main,
        ["start-flow", "survey", "--group", "volunteers", "--to", "(555) 000-3333", "--from", OURS],
        env=env,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # The --to numbers first, then each group's members.
    assert lines[:2] == [f"started  {CAT}  (run 1)", f"started  {ANN}  (run 2)"]
    assert lines[2].startswith(f"skipped  {BOB}: opted out at ")
    assert lines[3:] == ["survey: started for 2 contact(s), skipped 1"]
    with store.engine.connect() as connection:
        questions = connection.execute(
            select(outbox_table.c.to_number, outbox_table.c.body, outbox_table.c.state)
            .where(outbox_table.c.key.like("flow:%:start"))
            .order_by(outbox_table.c.id)
        ).all()
    # Queued for `textback worker`: nothing is sent by the command itself.
    assert [tuple(q) for q in questions] == [(CAT, RATE, states.QUEUED), (ANN, RATE, states.QUEUED)]
    assert standin.bodies() == []
    # Each run's reminder and expiry are on the queue for their time, not left to the sweep.
    from textback.outbound.queue import make_queue

    queue = make_queue(env["TEXTBACK_QUEUE_URL"])
    Outbox(Settings.load(env, environ={}), store, queue)  # registers the send task to read them
    etas = sorted(str(task.eta) for task in queue.pending())
    assert len(etas) == 6 and etas.count("None") == 2  # the questions now, four timers later
    queue.storage.close()
    again = CliRunner().invoke(main, ["start-flow", "survey", "--to", ANN, "--from", OURS], env=env)
    # Nobody started: a failure a script sees, with the reason per contact and one summary.
    assert again.exit_code == 1
    assert again.stdout.splitlines() == [
        f"skipped  {ANN}: already in flow 'survey' (--replace ends it)",
    ]
    assert again.stderr.splitlines() == ["survey: started for nobody, skipped 1"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["survey"], "give --group NAME or --to NUMBER"),
        (["nope", "--to", ANN], "no flow named 'nope' (flows: 'signup', 'survey')"),
        (["survey", "--to", "12"], "12"),
    ],
)
def test_start_flow_command_problems(
    database_url: str,
    rules_path: str,
    standin: StandIn,
    tmp_path: Path,
    args: list[str],
    problem: str,
) -> None:
    env = cli_env(database_url, rules_path, standin, tmp_path)
    result = CliRunner().invoke(main, ["start-flow", *args], env=env)
    assert result.exit_code != 0
    assert problem in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("ending", ["another flow's trigger", "an operator", "a take-over"])
def test_a_first_question_still_waiting_when_its_run_ends_is_not_sent(
    app: Flask, store: Store, rules: RuleSet, standin: StandIn, tmp_path: Path, ending: str
) -> None:
    """The question may wait (a worker down, quiet hours until the morning) while the run ends:
    sent then, it would ask for an answer no run takes."""
    from textback.storage.tables import contacts
    from textback.storage.takeover import Takeovers

    settings = Settings.load(api_settings(standin, tmp_path), environ={})
    box = Outbox(settings, store, MemoryHuey(name="waiting"))  # no worker yet: it waits
    phone = Phone(app, TEST_TOKEN, number=ANN, to=OURS)
    phone.send("hello")
    [started] = start(box, rules, [ANN], from_=OURS)
    assert started.outbox_id is not None
    if ending == "another flow's trigger":
        assert phone.send("join").text == "Name?"
        reason = "the flow run ended before its first question was sent"
    elif ending == "an operator":
        assert store.end_flow(OURS, ANN)
        reason = "the flow run ended before its first question was sent"
    else:
        with store.engine.connect() as connection:
            contact_id = connection.execute(
                select(contacts.c.id).where(contacts.c.number == ANN)
            ).scalar_one()
        assert Takeovers(store).take_over(contact_id, by="ops")
        reason = "a person has taken the contact over"
    outcome = box.deliver(started.outbox_id)
    assert outcome is not None and outcome.state == states.CANCELLED
    entry = box.rows.get(started.outbox_id)
    assert entry is not None and (entry.state, entry.reason) == (states.CANCELLED, reason)
    assert standin.bodies() == []


def test_a_first_question_whose_run_is_open_is_sent_when_it_comes_due(
    store: Store, rules: RuleSet, standin: StandIn, tmp_path: Path
) -> None:
    settings = Settings.load(api_settings(standin, tmp_path), environ={})
    box = Outbox(settings, store, MemoryHuey(name="waiting"))
    [started] = start(box, rules, [ANN], from_=OURS)
    assert started.outbox_id is not None
    outcome = box.deliver(started.outbox_id)
    assert outcome is not None and outcome.state == states.SENT
    assert standin.bodies() == [RATE]
