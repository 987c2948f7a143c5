"""A new user's campaign, end to end, with real processes (issues 13 and 14, "Done when").

Import a CSV of contacts, send them a personalised broadcast at a set time, start a survey that
branches and reminds, see the answers in the contacts' fields and the CSV export, take one
contact over in the admin and hand back, a slow handler's reply through the worker, and a
scheduled `textback send --at`: every command as the README gives it, against a stand-in
Twilio API. Two stacks: `textback run` alone (a SQLite file, the SQLite queue), and
`textback serve` + `textback worker` on PostgreSQL with the queue in Redis.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import re
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from textback.channel.forms import inbound_form
from textback.channel.forms import signed_request
from textback.storage.engine import make_engine
from textback.storage.tables import contacts
from textback.testing import TEST_TOKEN

from .prism import ACCOUNT
from .served import TEXTBACK
from .served import free_port
from .served import textback_serve
from .served import wait_for
from .standin import StandIn
from .standin import standin_api  # noqa: F401
from .test_admin_workers import _postgres_database
from .test_worker_processes import REDIS_URL
from .test_worker_processes import redis_available

OURS = "+15559990000"
ANN = "+14155550100"
BOB = "+14155550101"
CY = "+14155550102"
PASSWORD = "a long passphrase"
WAIT_SECONDS = 90
PEOPLE = """\
phone,name,language,timezone,groups,City
(415) 555-0100,Ann Lee,en,,patients;volunteers,Oakland
415-555-0101,Bob,en,,patients,Berkeley
+1 415 555 0102,,es,,volunteers,
"""
BROADCAST = "Hi {contact.name|there}, the clinic in {contact.fields.city|town} is closed tomorrow."
QUESTION = "How was the event, {contact.name|friend}, from 1 to 5?"
REMINDER = "Still there? Reply with a number from 1 to 5."
RULES = f"""
[[rule]]
keyword = "hi"
reply = "Hi {{contact.name|there}}! How is {{contact.fields.city|your town}}?"

[default]
reply = "Text HI."

[[flow]]
name = "survey"
trigger = "survey"
done = "Thanks for your answers!"

[[flow.step]]
name = "rate"
ask = "{QUESTION}"
save_to = "contact.rating"
retry = "Please reply with a number from 1 to 5."
remind_after = "12s"
remind = "{REMINDER}"
branch = [
  {{ between = [1, 3], goto = "why" }},
  {{ between = [4, 5], goto = "again" }},
]

[[flow.step]]
name = "why"
ask = "Sorry to hear it. What should we do better?"
save_to = "contact.better"
next = "done"

[[flow.step]]
name = "again"
ask = "Would you come again? YES or NO"
save_to = "contact.again"
branch = [{{ keywords = ["yes", "no"], goto = "done" }}]
"""
ACK = "Working on it…"
REPORT = "Your report is ready."
BOT = f'''
import time

from textback import Bot

bot = Bot()


@bot.on("report", slow=True, ack="{ACK}")
def report(msg):
    time.sleep(1)  # slower than a webhook should wait, in the tour's spirit
    return "{REPORT}"
'''


@dataclass
class Stack:
    """The processes that serve and send, and the settings every command gets."""

    base: str
    env: dict[str, str]
    database_url: str
    logs: Path


def stack_settings(
    project: Path, standin: StandIn, database_url: str, queue_url: str, port: int
) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTBACK_", "TWILIO_"))}
    return {
        **keep,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        "TWILIO_API_BASE_URL": standin.url,
        "DATABASE_URL": database_url,
        "TEXTBACK_QUEUE_URL": queue_url,
        "TEXTBACK_INSTANCE": str(project / "instance"),
        "TEXTBACK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TEXTBACK_ADMIN_PASSWORD": PASSWORD,
        "TEXTBACK_SECRET_KEY": "campaign",
        "TEXTBACK_SEND_RATE": "50",
    }


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def textback_run(project: Path, standin: StandIn) -> Iterator[Stack]:
    """`textback run` alone: the SQLite database and queue in the project, nothing else."""
    port = free_port()
    database_url = f"sqlite:///{project / 'instance' / 'textback.db'}"
    queue_url = f"sqlite:///{project / 'instance' / 'queue.db'}"
    env = stack_settings(project, standin, database_url, queue_url, port)
    with (project / "run.log").open("w") as log:
        process = subprocess.Popen(
            [TEXTBACK, "run", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/", process)
        yield Stack(f"http://127.0.0.1:{port}", env, database_url, project)
    finally:
        stop(process)


@contextmanager
def textback_serve_and_worker(project: Path, standin: StandIn) -> Iterator[Stack]:
    """`textback serve` and `textback worker` on a new PostgreSQL database and a Redis queue
    of this test's own, the database set up with `textback db upgrade` as the README says."""
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Redis at {REDIS_URL}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    with ExitStack() as stack:
        databases = _postgres_database()
        database_url = next(databases)
        stack.callback(lambda: next(databases, None))
        queue_url = f"{REDIS_URL}?name=textback-campaign-{secrets.token_hex(4)}"
        stack.callback(flush_queue, queue_url)
        port = free_port()
        env = stack_settings(project, standin, database_url, queue_url, port)
        upgraded = command(env, project, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        with (project / "worker.log").open("w") as log:
            worker = subprocess.Popen(
                [TEXTBACK, "worker", "--workers", "2"],
                cwd=project,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        stack.callback(stop, worker)
        # textback_serve picks its own port: it sets the public URL the signatures are for.
        served = stack.enter_context(
            textback_serve(project, database_url=database_url, workers=2, env=without(env))
        )
        env["TEXTBACK_PUBLIC_URL"] = served.public_url
        yield Stack(served.public_url, env, database_url, project)


def without(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "TEXTBACK_PUBLIC_URL"}


def flush_queue(url: str) -> None:
    from textback.outbound.queue import make_queue

    queue = make_queue(url)
    queue.flush()  # this queue's own keys only
    queue.storage.close()


STACKS = {"run-sqlite": textback_run, "serve-worker-postgresql-redis": textback_serve_and_worker}


def command(env: dict[str, str], project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TEXTBACK, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def webhook(stack: Stack, number: str, body: str) -> str:
    """A signed webhook from ``number``: the TwiML it is answered with."""
    payload, headers = signed_request(
        TEST_TOKEN, stack.base + "/twilio", inbound_form(body, from_=number, to=OURS)
    )
    host, port = stack.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", "/twilio", body=payload, headers=headers)
        response = connection.getresponse()
        answer = response.read().decode()
    finally:
        connection.close()
    assert response.status == 200, answer
    return answer


def replies(twiml: str) -> list[str]:
    return [
        text.replace("&amp;", "&") for text in re.findall(r"<Message[^>]*>(.*?)</Message>", twiml)
    ]


def wait_until(done: Callable[[], bool], what: str, stack: Stack) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            shown = "\n".join(path.read_text() for path in sorted(stack.logs.glob("*.log")))
            raise AssertionError(f"gave up waiting for {what}\n{shown[-6000:]}")
        time.sleep(0.2)


def sent_to(standin: StandIn, number: str) -> list[str]:
    with standin.lock:
        return [item.form["Body"] for item in standin.sent if item.form["To"] == number]


def asked_of(standin: StandIn, number: str, text: str) -> Callable[[], bool]:
    return lambda: text in sent_to(standin, number)


class Admin:
    """The admin view as a browser uses it: the login form, then each action's form with the
    page's CSRF token. The cookie is sent by hand: under `textback serve` it is Secure, and the
    test speaks plain HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base
        login = self.get("/admin/login", cookie=None)
        answer = self.post(
            "/admin/login",
            login.cookies["session"],
            csrf_token=csrf_token(login.text),
            password=PASSWORD,
        )
        assert answer.status_code == 302, answer.text
        self.cookie = answer.cookies["session"]

    def get(self, path: str, *, cookie: str | None = "") -> requests.Response:
        cookie = self.cookie if cookie == "" else cookie
        headers = {"Cookie": f"session={cookie}"} if cookie else {}
        return requests.get(self.base + path, headers=headers, allow_redirects=False, timeout=30)

    def post(self, path: str, cookie: str, **form: str) -> requests.Response:
        return requests.post(
            self.base + path,
            data=form,
            headers={"Cookie": f"session={cookie}"},
            allow_redirects=False,
            timeout=30,
        )

    def act(self, contact_id: int, action: str, **form: str) -> str:
        """POST one of the thread's forms as the page fills it in; the flashed message."""
        thread = f"/admin/conversations/{contact_id}"
        page = self.get(thread).text
        hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page))
        fields = {"csrf_token": csrf_token(page), **form}
        if action == "send":
            fields |= {"send_key": hidden["send_key"], "seen": hidden["seen"]}
        done = self.post(f"{thread}/{action}", self.cookie, **fields)
        assert done.status_code == 302, done.text
        shown = self.get(thread, cookie=done.cookies.get("session", self.cookie)).text
        flashed = re.search(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', shown, re.S)
        assert flashed is not None, shown
        return flashed.group(1)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def contact_id(database_url: str, number: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(contacts.c.id).where(
                        contacts.c.number == number, contacts.c.our_number == OURS
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def soon(seconds: float) -> tuple[str, float]:
    """A time ``seconds`` ahead, as `--at` takes it (UTC, whole seconds), and as a timestamp."""
    at = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return at.strftime("%Y-%m-%dT%H:%M:%S"), at.timestamp()


@pytest.mark.parametrize("stack_name", list(STACKS))
def test_a_campaign_from_the_readme(stack_name: str, standin: StandIn, tmp_path: Path) -> None:
    project = tmp_path / "mybot"
    project.mkdir()
    (project / "textback.toml").write_text(RULES)
    (project / "bot.py").write_text(BOT)
    (project / "people.csv").write_text(PEOPLE)

    with STACKS[stack_name](project, standin) as stack:
        env = stack.env
        imported = command(env, project, "contacts", "import", "people.csv")
        assert imported.returncode == 0, imported.stderr
        assert imported.stdout == "people.csv: 3 contact(s) added, 0 updated\n"

        # A broadcast at a set time, and a scheduled send: queued now, sent at their time.
        at, broadcast_due = soon(8)
        broadcast = command(
            env, project, "broadcast", BROADCAST, "--group", "patients", "--group",
            "volunteers", "--from", OURS, "--at", at, "--yes",
        )  # fmt: skip
        assert broadcast.returncode == 0, broadcast.stderr
        assert "broadcast 1: 3 message(s) queued for" in broadcast.stdout
        at, send_due = soon(6)
        scheduled = command(
            env, project, "send", CY, "Your table is ready", "--from", OURS, "--at", at
        )
        assert scheduled.returncode == 0, scheduled.stderr
        assert "scheduled for" in scheduled.stdout

        # The survey, started from our side: the first question through the outbox.
        started = command(env, project, "start-flow", "survey", "--group", "patients",
                          "--group", "volunteers", "--from", OURS)  # fmt: skip
        assert started.returncode == 0, started.stderr
        assert started.stdout.endswith("survey: started for 3 contact(s), skipped 0\n")
        for number, name in ((ANN, "Ann Lee"), (BOB, "Bob"), (CY, "friend")):
            asked = f"How was the event, {name}, from 1 to 5?"
            wait_until(asked_of(standin, number, asked), "the question", stack)
        # The branch taken depends on the answer; Cy does not answer.
        assert replies(webhook(stack, ANN, "great")) == ["Please reply with a number from 1 to 5."]
        assert replies(webhook(stack, ANN, "2")) == ["Sorry to hear it. What should we do better?"]
        assert replies(webhook(stack, ANN, "More chairs")) == ["Thanks for your answers!"]
        assert replies(webhook(stack, BOB, "5 stars")) == ["Would you come again? YES or NO"]
        assert replies(webhook(stack, BOB, "Yes!")) == ["Thanks for your answers!"]

        # A slow handler: the webhook answers its ack, the worker sends the reply.
        assert replies(webhook(stack, ANN, "report")) == [ACK]

        # Bob is taken over in the admin: the bot leaves him to a person, who answers.
        admin = Admin(stack.base)
        bob = contact_id(stack.database_url, BOB)
        assert admin.act(bob, "take-over").startswith("Taken over")
        assert replies(webhook(stack, BOB, "hi, can I talk to someone?")) == []
        assert "waiting" in admin.get("/admin").text
        dana = "This is Dana from the clinic. How can I help?"
        queued = admin.act(bob, "send", body=dana)
        assert queued.startswith("Queued as outbox")
        wait_until(lambda: dana in sent_to(standin, BOB), "the admin's reply", stack)
        assert admin.act(bob, "hand-back").startswith("Handed back")
        assert replies(webhook(stack, BOB, "hi")) == ["Hi Bob! How is Berkeley?"]

        # Everything owed arrives: the broadcast, the reminder, the slow reply, the send.
        wait_until(lambda: len(standin.sent) >= 10, "every message to be sent", stack)
        time.sleep(1)  # one more moment for a copy that should not be there

        exported = command(env, project, "contacts", "export", "--csv")
        assert exported.returncode == 0, exported.stderr
        answers = command(env, project, "answers", "survey")
        assert answers.returncode == 0, answers.stderr

    with standin.lock:
        sent = list(standin.sent)
    bodies = Counter((item.form["To"], item.form["Body"]) for item in sent)
    assert bodies == Counter(
        {
            (ANN, "Hi Ann Lee, the clinic in Oakland is closed tomorrow."): 1,
            (BOB, "Hi Bob, the clinic in Berkeley is closed tomorrow."): 1,
            (CY, "Hi there, the clinic in town is closed tomorrow."): 1,
            (ANN, "How was the event, Ann Lee, from 1 to 5?"): 1,
            (BOB, "How was the event, Bob, from 1 to 5?"): 1,
            (CY, "How was the event, friend, from 1 to 5?"): 1,
            (CY, REMINDER): 1,  # only the contact who did not answer
            (ANN, REPORT): 1,
            (BOB, "This is Dana from the clinic. How can I help?"): 1,
            (CY, "Your table is ready"): 1,
        }
    )
    assert all(item.form["From"] == OURS for item in sent)
    for item in sent:  # scheduled ones never before their time
        if "closed tomorrow" in item.form["Body"]:
            assert item.at >= broadcast_due, (item.form, item.at, broadcast_due)
        if item.form["Body"] == "Your table is ready":
            assert item.at >= send_due, (item.at, send_due)

    rows = {row["phone"]: row for row in csv.DictReader(io.StringIO(exported.stdout))}
    assert set(rows) == {ANN, BOB, CY}
    assert (rows[ANN]["rating"], rows[ANN]["better"], rows[ANN]["again"]) == (
        "2",
        "More chairs",
        "",
    )
    assert (rows[BOB]["rating"], rows[BOB]["better"], rows[BOB]["again"]) == ("5 stars", "", "Yes!")
    assert (rows[CY]["rating"], rows[CY]["city"], rows[CY]["groups"]) == ("", "", "volunteers")
    assert rows[ANN]["city"] == "Oakland" and rows[BOB]["city"] == "Berkeley"
    assert answers.stdout.count("completed") == 2, answers.stdout
