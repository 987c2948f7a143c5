"""The comparison: (a) bare WSGI and (b) the tutorial, each on gunicorn and on granian, and (c)
textback (``textback serve``) on SQLite and on PostgreSQL.

All servers run at once, each idle while another is loaded; rounds alternate between them (the
order rotates each round) so drift of the machine hits all alike.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from . import bodies
from . import check
from . import report
from .databases import LockWaits
from .load import THREADS
from .load import run_wrk
from .servers import Server
from .servers import cpu_times
from .servers import cpu_used
from .servers import postgres_backends

# Enough signed bodies that textback never runs out within a round (it is told if it does).
POOL_PER_SECOND = 12_000  # signed bodies per second of a round: more than textback answers


@dataclass
class Target:
    """A server under test; textback servers also have the engine to check what they stored."""

    server: Server
    engine: Engine | None = None
    database: str | None = None


def textback_env(database_url: str, instance: Path) -> dict[str, str]:
    return {
        "TWILIO_AUTH_TOKEN": bodies.TOKEN,
        "TEXTBACK_PUBLIC_URL": bodies.PUBLIC_URL,
        "DATABASE_URL": database_url,
        "TEXTBACK_MODE": "production",
        "TEXTBACK_INSTANCE": str(instance),
        "TEXTBACK_SECRET_KEY": "bench",
    }


def measure(
    target: Target, work: Path, *, seconds: float, connections: int, checked: bool = True
) -> tuple[report.Round, dict[str, Any]]:
    """One wrk run against ``target``: its Round and what was checked."""
    tag = secrets.token_hex(4)
    pool = work / f"{tag}.pool"
    count = int(POOL_PER_SECOND * seconds) if target.engine else 20_000
    sids = bodies.write_pool(pool, tag, count)
    pids = target.server.pids()
    if target.database:
        pids += postgres_backends(target.database)
    before = cpu_times(pids)
    extra: dict[str, Any] = {}
    if target.engine is not None and target.engine.dialect.name == "postgresql":
        with LockWaits(target.engine) as waits:
            result = run_wrk(target.server.url, pool, seconds=seconds, connections=connections)
        extra["lock_waiting_backends"] = round(waits.mean_waiting, 3)
    else:
        result = run_wrk(target.server.url, pool, seconds=seconds, connections=connections)
    pids = target.server.pids() + (postgres_backends(target.database) if target.database else [])
    used = cpu_used(before, cpu_times(pids))
    pool.unlink()
    if target.engine is not None and checked:
        exhausted = max(result.issued) > len(sids[::THREADS])
        found = check.problems(
            sent=bodies.sent_sids(sids, THREADS, result.issued),
            stored=check.stored_messages(target.engine, tag),
            completed=result.requests,
            in_flight=connections,
        )
        if exhausted:
            found.append("wrk ran out of signed bodies and repeated some")
        extra["exactly_once"] = "ok" if not found else "; ".join(found)
    round_ = report.Round(
        requests=result.requests,
        seconds=result.seconds,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        cpu_seconds=used,
    )
    return round_, extra


def compare(
    targets: dict[str, Target],
    work: Path,
    *,
    baselines: dict[str, list[str]],
    seconds: float,
    rounds: int,
    connections: int,
    warmup: float = 2,
) -> dict[str, Any]:
    """Warm every server up, then ``rounds`` alternating rounds; the summaries and the ratios
    of the others to each of ``baselines`` (label -> servers, the better of which counts)."""
    for name, target in targets.items():
        print(f"warming up {name}", flush=True)
        measure(target, work, seconds=warmup, connections=connections, checked=False)
    results: dict[str, list[report.Round]] = {name: [] for name in targets}
    checks: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    names = list(targets)
    for number in range(rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            round_, extra = measure(targets[name], work, seconds=seconds, connections=connections)
            results[name].append(round_)
            checks[name].append(extra)
            print(
                f"round {number + 1} {name}: {round_.rate:,.0f} req/s, p99 {round_.p99_ms:.1f} ms"
                f", {round_.errors} errors {extra or ''}",
                flush=True,
            )
    summaries = {name: report.summarize(name, rounds_) for name, rounds_ in results.items()}
    return {
        "summaries": summaries,
        "ratios": report.ratios(summaries, baselines),
        "checks": checks,
        "rounds": results,
    }
