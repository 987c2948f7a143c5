"""``make bench ARGS=--slow``: what the outbox's worker and slow handlers cost.

1. **Worker sends per second against Prism**: ``count`` messages queued in the outbox (SQLite,
   the default SQLite queue), then ``textback worker --workers N`` started against Prism
   serving Twilio's OpenAPI (``node_modules/.bin/prism``, as the tests start it), with no rate
   limit (``TEXTBACK_SEND_RATE`` far above it). The rate is taken between the first and the
   last message marked sent, so the worker's start-up is not counted.
2. **A webhook's answer with a slow handler vs an inline one**: two ``textback serve`` on
   SQLite, each with one handler answering every message (bench/slow_bots.py): inline, or slow
   with an ack. wrk loads them in alternating rounds as in the comparison; no worker runs, so
   what is measured is the webhook alone: for the slow one, the message, the ack and the job
   in one transaction, and the huey task queued after it (a second SQLite file).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func
from sqlalchemy import select

from textback.config import Settings
from textback.outbound.outbox import Outbox
from textback.storage import outbox as states
from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine
from textback.storage.outbox import outbox as outbox_table
from textback.storage.store import Store

from . import report
from .compare import Target
from .compare import compare
from .compare import textback_env
from .databases import prepared
from .databases import sqlite_url
from .servers import BIN
from .servers import REPO
from .servers import Server
from .servers import free_port
from .servers import serving

PRISM = REPO / "node_modules" / ".bin" / "prism"
SPEC = "twilio_api_v2010.json"
ACCOUNT = "AC" + "a" * 32
OURS = "+15559990000"
INLINE = "slow-bench inline handler"
SLOW = "slow-bench slow handler"


def openapi_spec() -> Path:
    configured = os.environ.get("TEXTBACK_OPENAPI_DIR")
    folder = Path(configured) if configured else REPO.parent / "shared" / "twilio-openapi"
    return folder / SPEC


class Prism:
    """Prism mocking Twilio's API on a free loopback port, for the block."""

    def __init__(self, log: Path) -> None:
        spec = openapi_spec()
        if not spec.is_file() or not PRISM.exists():
            raise RuntimeError(
                f"needs Prism ({PRISM}) and Twilio's OpenAPI ({spec}; TEXTBACK_OPENAPI_DIR)"
            )
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(PRISM), "mock", str(spec), "-p", port, "-h", "127.0.0.1"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Prism exited; see {log}")
            try:
                requests.get(self.url, timeout=2)
                return
            except (requests.ConnectionError, requests.Timeout):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Prism did not answer; see {log}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def worker_sends(work: Path, *, count: int, workers: int, prism: Prism) -> dict[str, Any]:
    """``count`` queued messages sent by one ``textback worker --workers N``: sends/s."""
    folder = work / f"sends-{workers}"
    folder.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEXTBACK_", "TWILIO_"))},
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "bench-token",
        "TWILIO_API_BASE_URL": prism.url,
        "DATABASE_URL": sqlite_url(folder),
        "TEXTBACK_QUEUE_URL": f"sqlite:///{folder / 'queue.db'}",
        "TEXTBACK_INSTANCE": str(folder / "instance"),
        "TEXTBACK_SEND_RATE": "100000",
        "TEXTBACK_MODE": "production",
    }
    settings = Settings.load(environ=env)
    engine = make_engine(settings.database_url)
    ensure_schema(engine)
    outbox = Outbox(settings, Store(engine))
    for number in range(count):
        outbox.put(sender=OURS, to=f"+1555{number:07d}", body=f"Bench message {number}")
    outbox.queue.storage.close()
    log = folder / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "textback"), "worker", "--workers", str(workers)],
            cwd=folder,
            env=env,
            stderr=out,
            text=True,
        )
    started = time.monotonic()
    try:
        while _count(engine, states.QUEUED, states.SENDING, states.SCHEDULED):
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited; see {log}")
            if time.monotonic() - started > 600:
                raise RuntimeError(f"the worker did not finish in 10 minutes; see {log}")
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    with engine.connect() as connection:
        first, last = connection.execute(
            select(func.min(outbox_table.c.updated_at), func.max(outbox_table.c.updated_at)).where(
                outbox_table.c.state == states.SENT
            )
        ).one()
        sent = _count(engine, states.SENT)
    engine.dispose()
    seconds = (last - first).total_seconds() if first and last else 0.0
    return {
        "workers": workers,
        "messages": count,
        "sent": sent,
        "not sent": count - sent,
        "seconds first to last send": round(seconds, 3),
        "sends per second": round((sent - 1) / seconds, 1) if seconds else 0.0,
    }


def _count(engine: Any, *wanted: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).where(outbox_table.c.state.in_(wanted))
            ).scalar_one()
        )


def webhook_cost(
    work: Path, *, seconds: float, rounds: int, connections: int, warmup: float
) -> dict[str, Any]:
    """Inline vs slow handler behind ``textback serve`` on SQLite, in alternating rounds."""

    def target(name: str, bot: str) -> Target:
        folder = work / name
        folder.mkdir()
        url = sqlite_url(folder)
        env = {
            **textback_env(url, folder / "instance"),
            "TEXTBACK_BOT": f"bench.slow_bots:{bot}",
            "TEXTBACK_QUEUE_URL": f"sqlite:///{folder / 'queue.db'}",
        }
        return Target(
            Server(name, "textback serve", env=env, log=work / f"{name}.log"), prepared(url)
        )

    targets = {INLINE: target("c-inline", "inline"), SLOW: target("c-slow", "slow")}
    try:
        with serving([t.server for t in targets.values()]):
            return compare(
                targets,
                work,
                baselines={"of inline": [INLINE]},
                seconds=seconds,
                rounds=rounds,
                connections=connections,
                warmup=warmup,
            )
    finally:
        for t in targets.values():
            if t.engine is not None:
                t.engine.dispose()


def markdown(data: dict[str, Any]) -> str:
    lines = ["### Worker sends per second against Prism", ""]
    lines += [
        "| workers (threads) | messages | sent | seconds, first to last send | sends/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in data["sends"]:
        lines.append(
            f"| {run['workers']} | {run['messages']} | {run['sent']} | "
            f"{run['seconds first to last send']:.2f} | {run['sends per second']:,.1f} |"
        )
    lines += ["", "### A webhook's answer: slow handler vs inline", ""]
    lines.append(report.markdown(data["webhook"]["summaries"], data["webhook"]["ratios"]))
    return "\n".join(lines)


def slow_mode(
    work: Path,
    *,
    seconds: float,
    rounds: int,
    connections: int,
    warmup: float,
    sends: int,
    conditions: dict[str, Any],
) -> dict[str, Any]:
    """Both parts; returns everything measured (the table is ``markdown(data)``)."""
    prism = Prism(work / "prism.log")
    try:
        runs = [worker_sends(work, count=sends, workers=n, prism=prism) for n in (2, 4)]
    finally:
        prism.stop()
    for run in runs:
        print(f"worker --workers {run['workers']}: {run['sends per second']} sends/s", flush=True)
    webhook = webhook_cost(
        work, seconds=seconds, rounds=rounds, connections=connections, warmup=warmup
    )
    return {"conditions": conditions, "sends": runs, "webhook": webhook}
