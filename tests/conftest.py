"""Fixtures shared by the whole suite.

Every test that talks to the app runs twice: on SQLite and on the PostgreSQL named by
TEXTBACK_TEST_POSTGRES_URL (default: the local server). Without a reachable PostgreSQL the
PostgreSQL half is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url
from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import make_server

from textback import Bot
from textback import create_app
from textback.storage.engine import make_engine
from textback.storage.engine import upgrade
from textback.testing import TEST_TOKEN

SAMPLES = Path(__file__).parent / "samples"
POSTGRES_URL = os.environ.get(
    "TEXTBACK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TABLES = (
    "slow_jobs",
    "profile_groups",
    "groups",
    "profiles",
    "broadcast_messages",
    "broadcasts",
    "flow_answers",
    "flow_runs",
    "status_events",
    "outbox",
    "send_slots",
    "messages",
    "contacts",
    "reject_counts",
    "admin_sessions",
    "login_failures",
)


def sample(name: str) -> list[tuple[str, str]]:
    """A captured Twilio form body from tests/samples, as ordered pairs."""
    from urllib.parse import parse_qsl

    return parse_qsl((SAMPLES / name).read_text().strip(), keep_blank_values=True)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's own textback settings or rules file."""
    keep = ("TEXTBACK_TEST_POSTGRES_URL", "TEXTBACK_OPENAPI_DIR")
    for name in list(os.environ):
        ours = name.startswith(("TEXTBACK_", "TWILIO_")) or name == "DATABASE_URL"
        if ours and name not in keep:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this test session's own, migrated once, dropped at the end."""
    admin_url = make_url(POSTGRES_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            name = f"textback_test_{secrets.token_hex(4)}"
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {admin_url.render_as_string()}: {exc}")
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean database: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def textback_config(database_url: str) -> dict[str, object]:
    """The plugin's ``phone`` fixture, here on both databases."""
    return {"DATABASE_URL": database_url}


@pytest.fixture
def make_app(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps with extra settings (environment names) and an optional Bot."""
    apps: list[Flask] = []

    def build(bot: Bot | None = None, **config: object) -> Flask:
        settings: dict[str, object] = {
            "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
            "DATABASE_URL": database_url,
            "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        }
        settings.update(config)
        app = create_app(settings, bot=bot)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["textback"].store.engine.dispose()


class LiveServer:
    """An app served over real HTTP on a free loopback port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server() -> Iterator[Callable[[Flask], LiveServer]]:
    """Serve apps over HTTP: ``server = live_server(app)``; ``server.url``."""
    servers: list[LiveServer] = []

    def start(app: Flask) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; skipped (failed in CI) when either is missing."""
    executable = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable = None
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium and playwright for the browser tests")
        pytest.skip("browser tests need Debian's chromium package and playwright")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def artifacts() -> Path:
    """Where browser tests keep screenshots (``artifacts/`` at the repository root)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
