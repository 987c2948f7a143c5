"""``make bench``: the comparison (default), ``--scale-out``, or ``--profile``.

python -m bench.run [--seconds 10] [--rounds 3] [--connections 16]
python -m bench.run --scale-out
python -m bench.run --profile
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
from .servers import WORKER_CLASS
from .servers import WORKERS
from .servers import Server
from .servers import serving

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
        "gunicorn": f"{WORKERS} {WORKER_CLASS} workers per server",
        "load": f"wrk, 2 threads, {args.connections} connections, {args.seconds:g} s per round",
        "rounds": args.rounds,
    }


def comparison(args: argparse.Namespace, work: Path) -> None:
    database = f"textback_bench_{os.getpid()}"
    pg_url = create_postgres(args.postgres, database)
    targets = {
        "a bare WSGI": Target(Server("a", "bench.apps:bare", log=work / "a.log")),
        "b tutorial": Target(Server("b", "bench.apps:tutorial", log=work / "b.log")),
        "c textback SQLite": Target(
            Server(
                "c-sqlite",
                "bench.apps:textback_app()",
                env=textback_env(sqlite_url(work), work / "instance"),
                log=work / "c-sqlite.log",
            ),
            engine=prepared(sqlite_url(work)),
        ),
        "c textback PostgreSQL": Target(
            Server(
                "c-postgres",
                "bench.apps:textback_app()",
                env=textback_env(pg_url, work / "instance"),
                log=work / "c-postgres.log",
            ),
            engine=prepared(pg_url),
            database=database,
        ),
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
                    seconds=args.seconds,
                    rounds=args.rounds,
                    connections=args.connections,
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
    print(f"written to {args.out / 'compare.json'} and {args.out / 'compare.md'}")


def scale_out_mode(args: argparse.Namespace, work: Path) -> None:
    database = f"textback_bench_{os.getpid()}"
    pg_url = create_postgres(args.postgres, database)
    engine = prepared(pg_url)
    servers = [
        Server(
            f"c-postgres-{number}",
            "bench.apps:textback_app()",
            env=textback_env(pg_url, work / "instance"),
            log=work / f"c-postgres-{number}.log",
        )
        for number in (1, 2)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of a round [10]")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds [3]")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--postgres", default=os.environ.get("TEXTBACK_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    parser.add_argument("--only", help="comma-separated servers to run: a,b,c-sqlite,c-postgres")
    parser.add_argument("--scale-out", action="store_true", help="1 vs 2 servers, and the burst")
    parser.add_argument("--profile", action="store_true", help="profile textback's full path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="textback-bench-") as folder:
        if args.profile:
            print(profile())
        elif args.scale_out:
            scale_out_mode(args, Path(folder))
        else:
            comparison(args, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
