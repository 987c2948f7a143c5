"""The database connection of one app: engine set-up, schema checks and migrations (Alembic)."""

from __future__ import annotations

import ast
import contextlib
import fcntl
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import nullcontext
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import inspect
from sqlalchemy import text
from sqlalchemy.engine import make_url

from textback.errors import ConfigError
from textback.errors import SchemaError
from textback.storage.health import describe

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A PostgreSQL that is down or out of reach must fail fast: a webhook has Twilio's 15 s, and
# during an outage it is answered from the journal (web/journaling.py) once connecting fails.
# libpq waits forever without connect_timeout (a dropped SYN is retried for minutes), and the
# pool makes a request wait 30 s for a free connection by default.
POSTGRES_CONNECT_TIMEOUT_S = 3
POOL_TIMEOUT_S = 5
_ADVISORY_LOCK_ID = 0x7E47BAC  # any constant: serialises migrations across servers
VERSION_TABLE = "alembic_version"  # where Alembic keeps the schema's revision (its default)
# A migration's `revision = "0006"` and `down_revision = "0005"` lines (annotated or not).
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


def _create_private(database: Path) -> None:
    """Create a new SQLite file readable by its owner only: it holds every message and number.

    SQLite gives the -wal and -shm files the same permissions as the database file.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    if not database.exists():
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    SQLite runs with ``synchronous=NORMAL``: in WAL mode a commit is atomic and the file never
    corrupts, but the last transactions before a power loss (not a crash of textback) may be
    lost. See the README's "Durability" for the trade-off and how to change it.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
    if parsed.drivername == "postgresql" or parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # A failed statement's error (logged with its traceback) must not carry its values: they
    # are message bodies and whole phone numbers.
    options: dict[str, Any] = {"hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private(Path(parsed.database))
        options["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
        }
    else:
        options["pool_pre_ping"] = True
        options["pool_timeout"] = POOL_TIMEOUT_S
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            options["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(parsed, **options)
    except Exception as exc:  # an unknown driver, a missing DBAPI package
        raise ConfigError(f"cannot use DATABASE_URL: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SQLiteWriteLock:
    """Lets one SQLite write transaction at a time in, across threads and worker processes.

    SQLite admits one writer; a second one is refused and retries on SQLite's busy handler, which
    sleeps 1, 2, 5, 10... ms between tries, so under load writers queue by sleeping and the slowest
    requests wait tens of milliseconds for a lock that was free long before. Waiting on a file lock
    (``flock``) instead wakes the next writer as soon as the lock is released. The busy timeout
    still covers writers outside this lock (the CLI, another tool).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._handle: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._pid != os.getpid():  # a lock file opened before a fork is shared: reopen
                self._handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            assert self._handle is not None
            fcntl.flock(self._handle, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            assert self._handle is not None
            fcntl.flock(self._handle, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def write_lock(engine: Engine) -> AbstractContextManager[None]:
    """What a write transaction holds on ``engine``: SQLiteWriteLock for a SQLite file, else
    nothing (PostgreSQL locks rows, not the database)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return nullcontext()
    return SQLiteWriteLock(f"{database}.write-lock")


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(files("textback.storage") / "migrations"))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def listed_head(versions: Traversable | None = None) -> str | None:
    """The newest migration, read from the ``revision`` and ``down_revision`` lines of the files
    in ``versions`` (textback's migrations) without importing them or Alembic, which takes longer
    than the rest of a start; None when the files do not name exactly one head, and then Alembic
    decides (head_revision)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    folder = versions or files("textback.storage") / "migrations" / "versions"
    for entry in folder.iterdir():
        if not entry.name.endswith(".py"):
            continue
        lines = dict(_REVISION_LINE.findall(entry.read_text(encoding="utf-8")))
        try:
            revision = ast.literal_eval(lines["revision"])
            down = ast.literal_eval(lines.get("down_revision", "None"))
        except (KeyError, ValueError, SyntaxError):
            continue  # not a migration (the package's __init__.py)
        revisions.add(revision)
        parents.update(down if isinstance(down, tuple | list) else [down] if down else [])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revisions(engine: Engine) -> list[str]:
    """The revisions in the database's version table (none for a database without one)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return []
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        return [str(revision) for revision in rows.scalars()]


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Only one process migrates at a time: a file lock for SQLite, an advisory lock elsewhere."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})
            connection.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (``textback db upgrade``)."""
    from alembic import command

    with migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)


def ensure_schema(engine: Engine, *, create_if_empty: bool = True) -> None:
    """Create the schema in an empty database; refuse one whose schema is behind.

    An empty database (no tables at all) is set up on first start, so the default SQLite file
    needs no command. A database with an older schema is never changed behind the operator's
    back: SchemaError says which command to run.

    A database already at the newest migration is recognised with one query, without Alembic.
    """
    with _opening(engine):
        stored = _stored_revisions(engine)
    if len(stored) == 1 and stored[0] == listed_head():
        return
    from alembic import command

    head = head_revision(engine)
    with _opening(engine):
        current = current_revision(engine)
    if current == head:
        return
    if current is None and create_if_empty:
        with migration_lock(engine):
            if current_revision(engine) is None:
                if inspect(engine).get_table_names():
                    raise SchemaError(
                        f"the database {_safe_url(engine)} has tables but no textback schema "
                        "version; point DATABASE_URL at an empty database"
                    )
                log.info("creating the textback schema in %s", _safe_url(engine))
                command.upgrade(alembic_config(engine), "head")
        return
    raise SchemaError(
        f"the database schema is at {current or 'nothing'} but this textback needs {head}: "
        "run `textback db upgrade` (back up the database first)"
    )


@contextlib.contextmanager
def _opening(engine: Engine) -> Iterator[None]:
    """A database that cannot be read is a SchemaError in one line (the driver's first), not
    SQLAlchemy's paragraph with its background link."""
    try:
        yield
    except Exception as exc:
        reason = describe(exc)
        raise SchemaError(f"cannot open the database {_safe_url(engine)}: {reason}") from None


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
