"""What one message costs the database: WAL frames (pages written) and CPU, in one process.

    .venv/bin/python -m bench.wal_frames [--messages 500] [--contacts 50]
                                         [--postgres postgresql+psycopg://postgres@127.0.0.1/test]

Signed SMS webhooks go through textback's WSGI app in-process (no server, no network) into a
fresh SQLite file, and into a fresh PostgreSQL database when --postgres is given. ``--contacts``
numbers take turns texting, so most messages come from a known contact, as in real traffic.

SQLite: every commit appends each page it changed to the -wal file as one frame; automatic
checkpoints are switched off while measuring, so ``PRAGMA wal_checkpoint`` counts the frames
of the run. PostgreSQL: the WAL bytes (``pg_current_wal_lsn``) and, where the server has
``pg_stat_wal``, records and full-page images. Those counters are the whole server's: run it on
a PostgreSQL of your own for clean numbers. CPU is this process's time per webhook, the best
of three rounds (the app and the database driver; the SQLite library runs in it too, a
PostgreSQL server does not).

A measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import text
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from textback import create_app
from textback.channel.forms import inbound_form
from textback.channel.signature import FormParams

from . import bodies
from .profile import environ

WARM_UP = 50
ROUNDS = 3  # CPU is the best round's: the machine may be busy with something else


def requests(count: int, contacts: int) -> list[dict[str, Any]]:
    """``count`` signed webhooks (WSGI environs), the senders taking turns among ``contacts``."""
    validator = RequestValidator(bodies.TOKEN)
    tag = secrets.token_hex(4)
    found = []
    for index in range(count):
        pairs = inbound_form(
            bodies.TEXTS[index % len(bodies.TEXTS)],
            sid=bodies.sid(tag, index),
            from_=f"+1555{index % contacts:07d}",
            to="+15559990000",
        )
        signature = validator.compute_signature(bodies.WEBHOOK_URL, FormParams.from_pairs(pairs))
        found.append(environ(str(signature), urlencode(pairs).encode()))
    return found


def start_response(
    status: str, _headers: list[tuple[str, str]], _exc_info: Any = None, /
) -> Callable[[bytes], object]:
    if status != "200 OK":
        raise RuntimeError(f"unexpected status {status}")
    return len


def app_for(url: str, instance: Path) -> Any:
    logging.basicConfig(level=logging.INFO, stream=io.StringIO())  # the log line, kept
    return create_app(
        {
            "TWILIO_AUTH_TOKEN": bodies.TOKEN,
            "TEXTBACK_PUBLIC_URL": bodies.PUBLIC_URL,
            "DATABASE_URL": url,
            "TEXTBACK_MODE": "production",
            "TEXTBACK_INSTANCE": str(instance),
            "TEXTBACK_SECRET_KEY": "bench",
        }
    )


def run(app: Any, environs: list[dict[str, Any]]) -> float:
    """Answer every request; the CPU seconds it took."""
    started = time.process_time()
    for request in environs:
        b"".join(app(request, start_response))
    return time.process_time() - started


def checkpoint(database: Path) -> int:
    """Copy the WAL into the database file; how many frames it held."""
    with contextlib.closing(sqlite3.connect(database)) as own:
        _busy, frames, _done = own.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        own.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return int(frames)


def sqlite_cost(folder: Path, count: int, contacts: int) -> dict[str, float]:
    database = folder / "wal.db"
    app = app_for(f"sqlite:///{database}", folder / "instance")
    engine: Engine = app.extensions["textback"].store.engine
    run(app, requests(WARM_UP, contacts))

    @event.listens_for(engine, "connect")
    def no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    engine.dispose()  # new connections, without automatic checkpoints
    rounds = [requests(count, contacts) for _ in range(ROUNDS)]
    checkpoint(database)
    size_before = database.stat().st_size
    cpu = min(run(app, environs) for environs in rounds)
    frames = checkpoint(database) / ROUNDS
    growth = (database.stat().st_size - size_before) / ROUNDS
    with engine.connect() as connection:  # what the app's own connections run with
        synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    engine.dispose()
    if synchronous is None or int(synchronous) < 1:
        raise RuntimeError("SQLite ran with synchronous=OFF")
    return {
        "wal_frames": frames / count,
        "db_bytes": growth / count,
        "cpu_us": cpu / count * 1e6,
    }


def postgres_cost(folder: Path, admin_url: str, count: int, contacts: int) -> dict[str, float]:
    name = f"textback_wal_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        app = app_for(url, folder / "instance-pg")
        engine: Engine = app.extensions["textback"].store.engine
        run(app, requests(WARM_UP, contacts))
        rounds = [requests(count, contacts) for _ in range(ROUNDS)]
        with admin.connect() as connection:
            has_stat_wal = connection.execute(
                text("SELECT count(*) FROM pg_catalog.pg_views WHERE viewname = 'pg_stat_wal'")
            ).scalar()
            lsn_before = connection.execute(text("SELECT pg_current_wal_lsn()")).scalar()
            stat_before = _stat_wal(connection) if has_stat_wal else None
        cpu = min(run(app, environs) for environs in rounds)
        count *= ROUNDS
        with admin.connect() as connection:
            wal_bytes = connection.execute(
                text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :before)"),
                {"before": lsn_before},
            ).scalar()
            stat_after = _stat_wal(connection) if has_stat_wal else None
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    found = {"wal_bytes": float(wal_bytes or 0) / count, "cpu_us": cpu / (count / ROUNDS) * 1e6}
    if stat_before is not None and stat_after is not None:
        found["wal_records"] = (stat_after[0] - stat_before[0]) / count
        found["wal_fpi"] = (stat_after[1] - stat_before[1]) / count
    return found


def _stat_wal(connection: Any) -> tuple[int, int]:
    # pg_stat_wal is updated when a backend reports; ask for the latest numbers first.
    connection.execute(text("SELECT pg_stat_clear_snapshot()"))
    row = connection.execute(text("SELECT wal_records, wal_fpi FROM pg_stat_wal")).one()
    return int(row[0]), int(row[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--contacts", type=int, default=50)
    parser.add_argument("--postgres", default=None, help="an admin URL; a database is made")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="textback-wal-") as work:
        folder = Path(work)
        results = {"sqlite": sqlite_cost(folder, args.messages, args.contacts)}
        if args.postgres:
            results["postgresql"] = postgres_cost(
                folder, args.postgres, args.messages, args.contacts
            )
    for database, numbers in results.items():
        shown = ", ".join(f"{key} {value:.1f}" for key, value in numbers.items())
        print(f"{database}: per message {shown}", file=sys.stdout)


if __name__ == "__main__":
    main()
