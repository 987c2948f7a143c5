"""The admin lockout's pieces: the database storage for limits, the Lockout over it, and the
settings every worker must agree on (the password key, the session secret)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from secrets import token_hex

import pytest
from limits.storage import MemoryStorage
from limits.storage import RedisStorage
from sqlalchemy import Engine
from sqlalchemy import update

from textback.config import SECRET_KEY_FILE
from textback.config import Settings
from textback.errors import ConfigError
from textback.storage.engine import make_engine
from textback.storage.engine import upgrade
from textback.storage.login_failures import DatabaseStorage
from textback.storage.login_failures import login_failures
from textback.web.lockout import LIMIT
from textback.web.lockout import Lockout
from textback.web.lockout import storage_for

PASSWORD = "correct horse battery"
KEY = "LIMITS/test/192.0.2.1"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def storage(engine: Engine) -> DatabaseStorage:
    return DatabaseStorage(engine)


def test_counts_start_a_window_and_add_up(storage: DatabaseStorage) -> None:
    assert storage.get(KEY) == 0
    assert [storage.incr(KEY, 900) for _ in range(3)] == [1, 2, 3]
    assert storage.get(KEY) == 3
    left = storage.get_expiry(KEY) - datetime.now(UTC).timestamp()
    assert 890 < left <= 900
    assert storage.incr(KEY, 900, amount=-1) == 2
    assert storage.get("LIMITS/test/other") == 0
    storage.clear(KEY)
    assert storage.get(KEY) == 0


def test_a_count_never_goes_below_nothing(storage: DatabaseStorage) -> None:
    assert storage.incr(KEY, 900, amount=-1) == 0
    assert storage.incr(KEY, 900) == 1


def test_an_ended_window_starts_again(storage: DatabaseStorage, engine: Engine) -> None:
    for _ in range(5):
        storage.incr(KEY, 900)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with engine.begin() as connection:
        connection.execute(update(login_failures).values(expires_at=past))
    assert storage.get(KEY) == 0
    assert storage.incr(KEY, 900) == 1
    assert storage.get_expiry(KEY) > datetime.now(UTC).timestamp() + 890


def test_reset_and_check(storage: DatabaseStorage) -> None:
    storage.incr(KEY, 900)
    storage.incr("LIMITS/test/other", 900)
    assert storage.check()
    assert storage.reset() == 2
    assert storage.get(KEY) == 0


def test_parallel_increments_are_never_lost(storage: DatabaseStorage) -> None:
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: storage.incr(KEY, 900), range(80)))
    assert sorted(counts) == list(range(1, 81))  # each increment saw its own count
    assert storage.get(KEY) == 80


@pytest.fixture(params=["database", "redis"])
def lockout(request: pytest.FixtureRequest, storage: DatabaseStorage) -> Iterator[Lockout]:
    """A Lockout counting in the database (both kinds), or in Redis under a prefix of its own."""
    if request.param == "database":
        yield Lockout(storage)
        return
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379").ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc}")
    shared = RedisStorage("redis://127.0.0.1:6379", key_prefix=f"textback-test-{token_hex(4)}")
    yield Lockout(shared)
    shared.reset()  # only this prefix's keys


def test_lockout_after_five_failures_even_for_the_right_password(lockout: Lockout) -> None:
    for _ in range(5):
        assert lockout.begin("192.0.2.1")  # each a wrong password
    assert not lockout.begin("192.0.2.1")
    assert lockout.begin("192.0.2.2")  # another address is not locked out
    assert 0 < lockout.seconds_left("192.0.2.1") <= LIMIT.get_expiry()


def test_successful_logins_do_not_count(lockout: Lockout) -> None:
    for _ in range(20):
        assert lockout.begin("192.0.2.1")
        lockout.succeeded("192.0.2.1")
    assert lockout.failures("192.0.2.1") == 0


def test_parallel_attempts_check_no_more_than_five_passwords(lockout: Lockout) -> None:
    with ThreadPoolExecutor(8) as pool:
        allowed = list(pool.map(lambda _: lockout.begin("192.0.2.1"), range(40)))
    assert allowed.count(True) == 5


def test_limiter_storage_setting(engine: Engine) -> None:
    assert Settings.load({}, environ={}).limiter_storage == "database"
    assert isinstance(storage_for("database", engine), DatabaseStorage)
    assert isinstance(storage_for("memory://", engine), MemoryStorage)
    with pytest.raises(ConfigError, match="TEXTBACK_LIMITER_STORAGE='nowhere://'"):
        storage_for("nowhere://", engine)
    with pytest.raises(ConfigError, match="TEXTBACK_LIMITER_STORAGE='redis'"):
        Settings.load({"TEXTBACK_LIMITER_STORAGE": "redis"}, environ={})


def test_password_key_is_the_same_on_every_worker(tmp_path: Path) -> None:
    environ = {"TEXTBACK_INSTANCE": str(tmp_path), "TEXTBACK_ADMIN_PASSWORD": PASSWORD}
    first, second = Settings.load(environ=environ), Settings.load(environ=environ)
    assert first.admin_password_hash != second.admin_password_hash  # salted per process
    assert first.admin_password_key == second.admin_password_key
    assert first.admin_password_key is not None and PASSWORD not in first.admin_password_key
    other = Settings.load({"TEXTBACK_ADMIN_PASSWORD": "another one"}, environ=environ)
    assert other.admin_password_key != first.admin_password_key
    hashed = Settings.load({"TEXTBACK_ADMIN_PASSWORD": first.admin_password_hash}, environ=environ)
    assert hashed.admin_password_key not in (None, first.admin_password_key)
    elsewhere = Settings.load({"TEXTBACK_SECRET_KEY": "another key"}, environ=environ)
    assert elsewhere.admin_password_key != first.admin_password_key
    assert Settings.load(environ={"TEXTBACK_INSTANCE": str(tmp_path)}).admin_password_key is None


def _secret_key(instance: str) -> str:
    return Settings.load(environ={"TEXTBACK_INSTANCE": instance}).secret_key


def test_workers_starting_at_once_share_one_secret_key(tmp_path: Path) -> None:
    for attempt in range(5):
        instance = str(tmp_path / f"instance-{attempt}")
        with multiprocessing.get_context("fork").Pool(8) as pool:
            keys = pool.map(_secret_key, [instance] * 16)
        assert len(set(keys)) == 1 and len(keys[0]) == 64
        assert [path.name for path in Path(instance).iterdir()] == [SECRET_KEY_FILE]
        assert (Path(instance) / SECRET_KEY_FILE).stat().st_mode & 0o077 == 0


def test_an_empty_secret_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE).write_text("\n")
    with pytest.raises(ConfigError, match="secret-key is empty"):
        _secret_key(str(tmp_path))
