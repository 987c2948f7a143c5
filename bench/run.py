"""``make bench``: the comparison (default), ``--scale-out``, or ``--profile``.

python -m bench.run [--seconds 10] [--rounds 3] [--connections 16]
python -m bench.run --smoke        # every server, one 1 s round: does it run? (no numbers)
python -m bench.run --scale-out
python -m bench.run --profile
python -m bench.run --slow         # the worker's sends/s against Prism; slow vs inline webhooks
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import report
from . import scaleout
from .compare import Target
from .compare import compare
from .compare import textback_env
from .databases import DEFAULT_POSTGRES
from .databases import create_postgres
from .databases import drop_postgres
from .databases import prepared
from .databases import sqlite_url
from .load import ensure_wrk
from .profile import profile
from .scaleout import scale_out
from .servers import GRANIAN_WORKERS
from .servers import Runner
from .servers import Server
from .servers import describe
from .servers import serving
from .slow import markdown as slow_markdown
from .slow import slow_mode

RESULTS = Path(__file__).resolve().parent / "results"


def conditions(args: argparse.Namespace) -> dict[str, Any]:
    """What the numbers were taken under, written next to them."""
    wrk = subprocess.run([ensure_wrk(), "--version"], capture_output=True, text=True)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load average before the run": os.getloadavg()[0],
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).split("\n")[0],
        "servers": describe(),
        "load": f"wrk, 2 threads, {args.connections} connections, {args.seconds:g} s per round",
        "rounds": args.rounds,
    }


# What textback is compared with: the better of the servers named (label -> server names).
BASELINES = {
    "of (a) gunicorn": ["a bare WSGI, gunicorn"],
    "of (a) granian": ["a bare WSGI, granian"],
    "of (b) gunicorn": ["b tutorial, gunicorn sync", "b tutorial, gunicorn gthread"],
    "of (b) granian": ["b tutorial, granian"],
}


def comparison(args: argparse.Namespace, work: Path) -> None:
    database = f"textback_bench_{os.getpid()}"
    pg_url = create_postgres(args.postgres, database)

    def baseline(name: str, runner: Runner, target: str) -> Target:
        return Target(Server(name, runner, target, log=work / f"{name}.log"))

    def textback(name: str, url: str, postgres: str | None = None) -> Target:
        env = textback_env(url, work / f"instance-{name}")  # each server its own, as deployed
        server = Server(name, "textback serve", env=env, log=work / f"{name}.log")
        return Target(server, engine=prepared(url), database=postgres)

    targets = {
        "a bare WSGI, gunicorn": baseline("a-gunicorn", "gunicorn sync", "bench.apps:bare"),
        "a bare WSGI, granian": baseline("a-granian", "granian", "bench.apps:bare"),
        "b tutorial, gunicorn sync": baseline("b-gunicorn", "gunicorn sync", "bench.apps:tutorial"),
        "b tutorial, gunicorn gthread": baseline(
            "b-gthread", "gunicorn gthread", "bench.apps:tutorial"
        ),
        "b tutorial, granian": baseline("b-granian", "granian", "bench.apps:tutorial"),
        "c textback SQLite": textback("c-sqlite", sqlite_url(work)),
        "c textback PostgreSQL": textback("c-postgres", pg_url, database),
    }
    if args.only:
        wanted = set(args.only.split(","))
        targets = {name: t for name, t in targets.items() if t.server.name in wanted}
    try:
        with serving([target.server for target in targets.values()]):
            data = {
                "conditions": conditions(args),
                **compare(
                    targets,
                    work,
                    baselines=BASELINES,
                    seconds=args.seconds,
                    rounds=args.rounds,
                    connections=args.connections,
                    warmup=args.warmup,
                ),
            }
    finally:
        for target in targets.values():
            if target.engine is not None:
                target.engine.dispose()
        drop_postgres(args.postgres, database)
    table = report.markdown(data["summaries"], data["ratios"])
    report.write(args.out / "compare", data, table)
    print(table)
    if args.smoke:
        print("smoke run: every server ran and every textback round was checked; no numbers kept")
    else:
        print(f"written to {args.out / 'compare.json'} and {args.out / 'compare.md'}")


PAIR_WORKERS = max(1, GRANIAN_WORKERS // 2)  # each of scale-out's two servers


def scale_out_mode(args: argparse.Namespace, work: Path) -> None:
    database = f"textback_bench_{os.getpid()}"
    pg_url = create_postgres(args.postgres, database)
    engine = prepared(pg_url)
    # One server with a worker per CPU, against two servers with half as many each: the same
    # processes on the same cores, so what differs is only that they are two servers.
    servers = [
        Server(
            f"c-postgres-{number}",
            "textback serve",
            env=textback_env(pg_url, work / f"instance-{number}"),  # each its own, as deployed
            log=work / f"c-postgres-{number}.log",
            worker_count=workers,
        )
        for number, workers in ((1, GRANIAN_WORKERS), *((n, PAIR_WORKERS) for n in (2, 3)))
    ]
    try:
        with serving(servers):
            data = {
                "conditions": conditions(args),
                **scale_out(
                    servers,
                    engine,
                    database,
                    work,
                    seconds=args.seconds,
                    rounds=args.rounds,
                    connections=args.connections,
                ),
            }
    finally:
        engine.dispose()
        drop_postgres(args.postgres, database)
    table = scaleout.markdown(data)
    report.write(args.out / "scale-out", data, table)
    print(table)
    print(f"written to {args.out / 'scale-out.json'} and {args.out / 'scale-out.md'}")


def slow_handlers_mode(args: argparse.Namespace, work: Path) -> None:
    data = slow_mode(
        work,
        seconds=args.seconds,
        rounds=args.rounds,
        connections=args.connections,
        warmup=args.warmup,
        sends=args.sends,
        conditions=conditions(args),
    )
    table = slow_markdown(data)
    report.write(args.out / "slow", data, table)
    print(table)
    print(f"written to {args.out / 'slow.json'} and {args.out / 'slow.md'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of a round [10]")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds [3]")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--postgres", default=os.environ.get("TEXTBACK_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    parser.add_argument(
        "--only",
        help="comma-separated servers to run: a-gunicorn,a-granian,b-gunicorn,b-gthread,"
        "b-granian,c-sqlite,c-postgres",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check that everything runs: 1 s rounds, 1 round, results in a temporary folder",
    )
    parser.add_argument("--scale-out", action="store_true", help="1 vs 2 servers, and the burst")
    parser.add_argument("--profile", action="store_true", help="profile textback's full path")
    parser.add_argument(
        "--slow", action="store_true", help="the worker's sends/s; slow vs inline webhooks"
    )
    parser.add_argument("--sends", type=int, default=500, help="messages for --slow's worker")
    args = parser.parse_args(argv)
    args.warmup = 2.0
    with tempfile.TemporaryDirectory(prefix="textback-bench-") as folder:
        if args.smoke:  # never overwrites bench/results: smoke numbers mean nothing
            args.seconds, args.rounds, args.warmup, args.out = 1.0, 1, 1.0, Path(folder)
        if args.profile:
            print(profile())
        elif args.scale_out:
            scale_out_mode(args, Path(folder))
        elif args.slow:
            slow_handlers_mode(args, Path(folder))
        else:
            comparison(args, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
