"""Slow handlers with real processes: `textback serve` answers, `textback worker` runs the
handler and sends its reply through the outbox, to the stand-in API. A webhook posted twice
gets one run and one reply; a worker killed with -9 in the middle of the handler leaves the job
to the sweep, which runs it again (at-least-once for the handler) and the reply is still sent
once; `textback run` alone runs and sends it too."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
from huey import SqliteHuey

from textback.channel.forms import inbound_form
from textback.channel.forms import new_sid
from textback.channel.forms import signed_request
from textback.storage import slow_jobs as states
from textback.storage.engine import make_engine
from textback.storage.slow_jobs import SlowJobRows
from textback.storage.store import Store
from textback.testing import TEST_TOKEN

from .prism import ACCOUNT
from .served import TEXTBACK
from .served import free_port
from .served import textback_serve
from .served import wait_for
from .standin import StandIn
from .standin import standin_api  # noqa: F401

ACK = "Working on it…"
REPLY = "Your report is ready."
WAIT_SECONDS = 120
BOT = f'''
import os
import time
from pathlib import Path

from textback import Bot

bot = Bot()
RUNS = Path(os.environ["SLOW_RUNS"])


@bot.on("report", slow=True, ack="{ACK}")
def report(msg):
    before = RUNS.read_text().splitlines() if RUNS.exists() else []
    with RUNS.open("a") as runs:
        runs.write(msg.sid + "\\n")
    if not before and os.environ.get("SLOW_HANG_FIRST"):
        time.sleep(300)  # the test kills the worker in here
    return "{REPLY}"
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "slowbot.py").write_text(BOT)
    return tmp_path


def settings(project: Path, standin: StandIn, database_url: str, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTBACK_", "TWILIO_"))}
    return {
        **keep,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        "TWILIO_API_BASE_URL": standin.url,
        "DATABASE_URL": database_url,
        "TEXTBACK_QUEUE_URL": f"sqlite:///{project / 'queue.db'}",
        "TEXTBACK_INSTANCE": str(project / "instance"),
        "TEXTBACK_BOT": "slowbot:bot",
        "TEXTBACK_SEND_RATE": "100",
        "SLOW_RUNS": str(project / "runs.txt"),
        **extra,
    }


@pytest.fixture
def workers(project: Path) -> Iterator[Callable[[dict[str, str]], subprocess.Popen[str]]]:
    """Start `textback worker` processes; every one still running is stopped at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str]) -> subprocess.Popen[str]:
        with (project / f"worker-{len(started)}.log").open("w") as log:
            process = subprocess.Popen(
                [TEXTBACK, "worker", "--workers", "2"], cwd=project, env=env, stderr=log, text=True
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def post(base: str, sid: str) -> tuple[int, str]:
    """One signed "report" webhook with MessageSid ``sid``: (status, body)."""
    payload, headers = signed_request(TEST_TOKEN, base + "/twilio", inbound_form("report", sid=sid))
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", "/twilio", body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def wait_until(done: Callable[[], bool], what: str, logs: Path | None = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            shown = ""
            if logs is not None:
                shown = "\n".join(p.read_text() for p in sorted(logs.glob("*.log")))
            raise AssertionError(f"gave up waiting for {what}\n{shown}")
        time.sleep(0.2)


def runs(project: Path) -> list[str]:
    path = project / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


def job_state(database_url: str, sid: str) -> tuple[str, int] | None:
    engine = make_engine(database_url)
    try:
        job = SlowJobRows(Store(engine)).get(sid)
    finally:
        engine.dispose()
    return None if job is None else (job.state, job.attempts)


def test_a_webhook_posted_twice_gets_one_run_and_one_reply(
    project: Path,
    standin: StandIn,
    database_url: str,
    workers: Callable[[dict[str, str]], subprocess.Popen[str]],
) -> None:
    env = settings(project, standin, database_url)
    sid = new_sid()
    with textback_serve(project, database_url=database_url, workers=1, env=env) as served:
        first = post(served.public_url, sid)
        again = post(served.public_url, sid)  # Twilio's retry: the same MessageSid
    assert first[0] == 200 and ACK in first[1]
    assert again == first
    # Both posts are in before a worker starts: a second task, had one been queued, would run.
    queue = SqliteHuey(name="textback", filename=str(project / "queue.db"), results=False)
    assert queue.pending_count() == 1
    workers(env)
    wait_until(lambda: len(standin.sent) >= 1, "the slow reply to be sent", project)
    wait_until(lambda: queue.pending_count() == 0, "the queue to be empty", project)
    wait_until(lambda: job_state(database_url, sid) == (states.DONE, 1), "the job to be done")
    assert [item.form["Body"] for item in standin.sent] == [REPLY]
    assert standin.sent[0].form["To"] == "+15550001111"
    assert runs(project) == [sid]


def test_a_worker_killed_in_the_handler_leaves_it_to_the_sweep(
    project: Path,
    standin: StandIn,
    database_url: str,
    workers: Callable[[dict[str, str]], subprocess.Popen[str]],
) -> None:
    env = settings(
        project, standin, database_url, TEXTBACK_OUTBOX_STALE_AFTER="3", SLOW_HANG_FIRST="1"
    )
    sid = new_sid()
    with textback_serve(project, database_url=database_url, workers=1, env=env) as served:
        status, body = post(served.public_url, sid)
    assert status == 200 and ACK in body
    first = workers(env)
    wait_until(lambda: len(runs(project)) == 1, "the handler to start", project)
    assert job_state(database_url, sid) == (states.RUNNING, 1)
    first.send_signal(signal.SIGKILL)  # in the middle of the handler
    first.wait()
    time.sleep(3.5)  # no heartbeat since the kill: the job is stale now
    workers(env)  # its start-up sweep queues the stale job; the periodic one would too
    wait_until(lambda: len(standin.sent) >= 1, "the slow reply to be sent", project)
    wait_until(lambda: job_state(database_url, sid) == (states.DONE, 2), "the job to be done")
    assert runs(project) == [sid, sid]  # the handler ran twice: at-least-once
    assert [item.form["Body"] for item in standin.sent] == [REPLY]  # the reply went once


def test_textback_run_alone_runs_and_sends_it(
    project: Path, standin: StandIn, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{project / 'run.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = settings(project, standin, database_url, TEXTBACK_PUBLIC_URL=base)
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
        wait_for(base + "/", process)
        status, body = post(base, new_sid())
        assert status == 200 and ACK in body
        wait_until(lambda: len(standin.sent) >= 1, "the slow reply to be sent", project)
        assert [item.form["Body"] for item in standin.sent] == [REPLY]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
