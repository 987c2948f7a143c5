"""Scale-out: 1 vs 2 textback servers (separate processes and ports) on one PostgreSQL.

On a 2-core machine two servers cannot be faster than one, so what is measured is what
scale-out depends on: CPU per message (servers and PostgreSQL backends) and how often backends
wait for a lock. Equal CPU per message and no lock waits mean servers add capacity linearly
until PostgreSQL is the limit.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from . import bodies
from . import check
from .burst import burst
from .compare import POOL_PER_SECOND
from .databases import LockWaits
from .load import THREADS
from .load import finish_wrk
from .load import start_wrk
from .servers import Server
from .servers import cpu_times
from .servers import cpu_used
from .servers import postgres_backends


def spread(
    servers: list[Server],
    engine: Engine,
    database: str,
    work: Path,
    *,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """Load ``servers`` at once, ``connections`` split evenly; totals and exactly-once."""
    share = connections // len(servers)
    runs = []
    for server in servers:
        tag = secrets.token_hex(4)
        pool = work / f"{tag}.pool"
        sids = bodies.write_pool(pool, tag, int(POOL_PER_SECOND * seconds))
        runs.append((server, tag, pool, sids))
    pids = [pid for server in servers for pid in server.pids()]
    before_servers = cpu_times(pids)
    before_database = cpu_times(postgres_backends(database))
    with LockWaits(engine) as waits:
        started = [
            start_wrk(server.url, pool, seconds=seconds, connections=share)
            for server, _, pool, _ in runs
        ]
        results = [finish_wrk(process) for process in started]
    servers_used = cpu_used(before_servers, cpu_times(pids))
    database_used = cpu_used(before_database, cpu_times(postgres_backends(database)))
    used = servers_used + database_used
    problems = []
    for (_, tag, pool, sids), result in zip(runs, results, strict=True):
        pool.unlink()
        problems += check.problems(
            sent=bodies.sent_sids(sids, THREADS, result.issued),
            stored=check.stored_messages(engine, tag),
            completed=result.requests,
            in_flight=share,
        )
    requests = sum(result.requests for result in results)
    duration = max(result.seconds for result in results)
    return {
        "servers": len(servers),
        "requests_per_s": requests / duration,
        "p99_ms": max(result.p99_ms for result in results),
        "errors": sum(result.errors for result in results),
        "cpu_ms_per_message": 1000 * used / requests if requests else 0.0,
        "server_cpu_ms_per_message": 1000 * servers_used / requests if requests else 0.0,
        "postgres_cpu_ms_per_message": 1000 * database_used / requests if requests else 0.0,
        "lock_waiting_backends": waits.mean_waiting,
        "lock_waits_by_event": dict(waits.events),
        "exactly_once": "ok" if not problems else "; ".join(problems),
    }


def scale_out(
    servers: list[Server],
    engine: Engine,
    database: str,
    work: Path,
    *,
    seconds: float,
    rounds: int,
    connections: int,
) -> dict[str, Any]:
    """Alternate 1 server (``servers[0]``) and 2 (``servers[1:]``, as many workers in all)
    for ``rounds`` rounds, then the burst over the two."""
    one, pair = servers[:1], servers[1:3]
    spread(one, engine, database, work, seconds=2, connections=connections)  # warm up
    spread(pair, engine, database, work, seconds=2, connections=connections)
    runs: dict[str, list[dict[str, Any]]] = {"1 server": [], "2 servers": []}
    for number in range(rounds):
        for count in (1, 2) if number % 2 == 0 else (2, 1):
            result = spread(
                one if count == 1 else pair,
                engine,
                database,
                work,
                seconds=seconds,
                connections=connections,
            )
            runs["1 server" if count == 1 else "2 servers"].append(result)
            print(
                f"round {number + 1}, {count} server(s): {result['requests_per_s']:,.0f} req/s, "
                f"{result['cpu_ms_per_message']:.2f} CPU ms/message, "
                f"{result['lock_waiting_backends']:.3f} backends waiting, {result['exactly_once']}",
                flush=True,
            )
    print("burst: 10,000 webhooks, 5 % repeated, over 2 servers", flush=True)
    outcome = burst([server.url for server in pair], engine)
    print(f"burst: {outcome.seconds:.1f} s, {outcome.problems or 'none lost, none answered twice'}")
    workers = {
        "1 server": f"{one[0].workers} workers",
        "2 servers": " + ".join(str(server.workers) for server in pair) + " workers",
    }
    return {"runs": runs, "burst": asdict(outcome), "workers": workers}


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Totals over rounds: mean req/s, CPU per message, lock waits."""
    count = len(runs)
    return {
        key: sum(run[key] for run in runs) / count
        for key in (
            "requests_per_s",
            "cpu_ms_per_message",
            "server_cpu_ms_per_message",
            "postgres_cpu_ms_per_message",
            "lock_waiting_backends",
            "p99_ms",
        )
    }


def markdown(data: dict[str, Any]) -> str:
    workers = data.get("workers", {})
    lines = [
        "| servers | requests/s | p99 ms | CPU ms/message | of it servers | of it PostgreSQL "
        "| backends waiting for a lock | exactly once |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, runs in data["runs"].items():
        total = summary(runs)
        once = "ok" if all(run["exactly_once"] == "ok" for run in runs) else "FAILED"
        label = f"{name} ({workers[name]})" if name in workers else name
        lines.append(
            f"| {label} | {total['requests_per_s']:,.0f} | {total['p99_ms']:.1f} "
            f"| {total['cpu_ms_per_message']:.2f} | {total['server_cpu_ms_per_message']:.2f} "
            f"| {total['postgres_cpu_ms_per_message']:.2f} "
            f"| {total['lock_waiting_backends']:.3f} | {once} |"
        )
    result = data["burst"]
    problems = result["problems"]
    verdict = "; ".join(problems) if problems else "none lost, none answered twice"
    lines.append("")
    lines.append(
        f"Burst: {result['sent']:,} webhooks ({result['unique']:,} MessageSids, "
        f"{result['sent'] - result['unique']} repeated) over 2 servers in "
        f"{result['seconds']:.1f} s: {verdict}."
    )
    return "\n".join(lines) + "\n"
