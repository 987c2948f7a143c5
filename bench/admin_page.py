"""How fast the admin pages answer with 100,000 stored messages. A measurement, not a test.

    .venv/bin/python bench/admin_page.py [--messages 100000] [--contacts 2000] [--repeat 30]
                                         [--postgres postgresql+psycopg://postgres@127.0.0.1/test]

Seeds a fresh SQLite database (and a fresh PostgreSQL database, when one is reachable at
--postgres) with conversations spread over 30 days: inbound messages with their replies, some
MMS, some failed deliveries, opted-out contacts and open flows. Then it logs in to /admin
through the real app (create_app, Flask's test client: routing, session, templates, queries;
no network) and times each page, printing the median and the 95th percentile.
"""

from __future__ import annotations

import argparse
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.engine import make_url

from textback import create_app
from textback.storage.engine import make_engine
from textback.storage.engine import upgrade
from textback.storage.runs import flow_runs
from textback.storage.tables import contacts
from textback.storage.tables import messages

PASSWORD = "bench-password"
OUR_NUMBERS = ("+15559990000", "+15559990001")
SOURCES = ("rule 1 (keyword hours)", "rule 2 (keyword price)", "default", "handler menu")
WORDS = [
    "hello",
    "hours",
    "price",
    "open",
    "today",
    "tomorrow",
    "pizza",
    "thanks",
    "menu",
    "order",
    "please",
    "where",
    "when",
]
DAYS = 30
BATCH = 5000


def seed(engine: Engine, *, total: int, people: int, rng: random.Random) -> None:
    """``total`` messages (half inbound, half replies) between ``people`` contacts and us."""
    start = datetime.now(UTC) - timedelta(days=DAYS)
    with engine.begin() as connection:
        connection.execute(
            contacts.insert(),
            [
                {
                    "our_number": OUR_NUMBERS[index % 2],
                    "number": f"+1555{index:07d}",
                    "first_seen": start,
                    "opted_out": index % 40 == 0,
                    "opted_out_at": start if index % 40 == 0 else None,
                }
                for index in range(people)
            ],
        )
        ids = {
            row.number: row.id
            for row in connection.execute(select(contacts.c.id, contacts.c.number))
        }
    stamps = sorted(
        start + timedelta(seconds=rng.uniform(0, DAYS * 86400)) for _ in range(total // 2)
    )
    rows: list[dict[str, Any]] = []
    for count, stamp in enumerate(stamps):
        # a few talkative contacts and a long tail, like real traffic
        person = (
            min(int(rng.paretovariate(1.2)) - 1, people - 1) if count % 3 else rng.randrange(people)
        )
        number = f"+1555{person:07d}"
        ours = OUR_NUMBERS[person % 2]
        body = " ".join(rng.choices(WORDS, k=rng.randint(1, 8)))
        media = (
            [{"url": "https://example.com/p.jpg", "content_type": "image/jpeg"}]
            if count % 50 == 0
            else []
        )
        common = {"account_sid": "AC" + "0" * 32, "params": {}, "contact_id": ids[number]}
        rows.append(
            {
                **common,
                "sid": f"SM{count:032x}",
                "direction": "inbound",
                "from_number": number,
                "to_number": ours,
                "body": body,
                "media": media,
                "status": "received",
                "source": rng.choice(SOURCES),
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
        rows.append(
            {
                **common,
                "sid": None,
                "direction": "outbound",
                "from_number": ours,
                "to_number": number,
                "body": f"Thanks! You said: {body}",
                "media": [],
                "status": "failed" if count % 97 == 0 else "delivered",
                "source": None,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
        if len(rows) >= BATCH:
            with engine.begin() as connection:
                connection.execute(messages.insert(), rows)
            rows = []
    with engine.begin() as connection:
        if rows:
            connection.execute(messages.insert(), rows)
        now = datetime.now(UTC)
        connection.execute(
            flow_runs.insert(),
            [
                {
                    "contact_id": ids[f"+1555{index:07d}"],
                    "flow": "signup",
                    "state": "email",
                    "values": {"name": "Ada"},
                    "status": "open",
                    "started_at": now,
                    "updated_at": now,
                }
                for index in range(0, people, 25)
            ],
        )
        connection.execute(text("ANALYZE"))  # planner statistics, as a live database has


def timed(client: FlaskClient, path: str, repeat: int) -> tuple[float, float, int]:
    """Median and 95th percentile in milliseconds, and the response size."""
    size = len(client.get(path).get_data())  # warm up
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)], size


def measure(label: str, url: str, instance: Path, args: argparse.Namespace) -> None:
    engine = make_engine(url)
    upgrade(engine)
    began = time.perf_counter()
    seed(engine, total=args.messages, people=args.contacts, rng=random.Random(7))
    seeded = time.perf_counter() - began
    with engine.connect() as connection:
        stored = connection.execute(select(messages.c.id).order_by(messages.c.id.desc())).first()
    engine.dispose()
    app = create_app(
        {
            "DATABASE_URL": url,
            "TEXTBACK_INSTANCE": str(instance),
            "TWILIO_AUTH_TOKEN": "bench-token",
            "TEXTBACK_ADMIN_PASSWORD": PASSWORD,
        }
    )
    client = app.test_client()
    login = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    client.post("/admin/login", data={"csrf_token": token.group(1), "password": PASSWORD})
    first = client.get("/admin").get_data(as_text=True)
    older = re.search(r'rel="next" href="([^"]+)"', first)
    thread = re.search(r'href="(/admin/conversations/\d+)"', first)
    assert older is not None and thread is not None
    pages: list[tuple[str, str]] = [
        ("conversation list", "/admin"),
        ("list, page 2", older.group(1).replace("&amp;", "&")),
        ("search by number", "/admin?q=555000012"),
        ("search by text", "/admin?q=pizza+thanks"),
        ("thread (latest contact)", thread.group(1)),
        ("thread (busiest contact)", "/admin/conversations/1"),
        ("overview", "/admin/overview"),
    ]
    print(
        f"\n{label}: {stored.id if stored else 0} messages, {args.contacts} contacts "
        f"(seeded in {seeded:.1f} s); {args.repeat} requests per page"
    )
    print(f"{'page':<26} {'median ms':>10} {'p95 ms':>8} {'bytes':>8}")
    for name, path in pages:
        median, p95, size = timed(client, path, args.repeat)
        print(f"{name:<26} {median:>10.1f} {p95:>8.1f} {size:>8}")
    app.extensions["textback"].store.engine.dispose()


def with_postgres(admin_url: str, run: Callable[[str], None]) -> None:
    try:
        admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
        name = f"textback_bench_{secrets.token_hex(4)}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a measurement: say why PostgreSQL was left out, go on
        print(f"\nPostgreSQL skipped: {type(exc).__name__}: {exc}".splitlines()[0])
        return
    try:
        run(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder)
        measure("SQLite", f"sqlite:///{instance / 'bench.db'}", instance, args)
        if not args.no_postgres:
            with_postgres(args.postgres, lambda url: measure("PostgreSQL", url, instance, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
