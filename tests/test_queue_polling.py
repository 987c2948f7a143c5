"""The worker's queue. How soon a worker sees a task: huey's consumer backs off on an empty
queue, by default to a poll every 10 s, which a reply from the admin or a slow handler, or a
broadcast come due, would wait for; both consumers (`textback worker`, the one inside `textback
run`) poll at least once a second. And a queue storage whose client library is missing is named
in one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from huey import Huey

from textback import create_app
from textback.cli import main
from textback.cli.serving import embedded_worker
from textback.errors import ConfigError
from textback.outbound.queue import POLL_AT_LEAST_EVERY
from textback.outbound.queue import make_queue
from textback.testing import TEST_TOKEN

from .prism import ACCOUNT


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, str]:
    return {
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'textback.db'}",
        "TEXTBACK_QUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TEST_TOKEN,
    }


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The worker sets up logging: the root logger as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_worker_inside_textback_run_polls_at_least_once_a_second(
    settings: dict[str, str],
) -> None:
    app = create_app(settings)
    consumer = embedded_worker(app)
    assert consumer is not None
    try:
        assert consumer.max_delay == POLL_AT_LEAST_EVERY <= 1
        assert all(worker.max_delay == POLL_AT_LEAST_EVERY for worker, _ in consumer.worker_threads)
    finally:
        consumer.stop()
        app.extensions["textback"].store.engine.dispose()


def test_textback_worker_polls_at_least_once_a_second(
    settings: dict[str, str], monkeypatch: pytest.MonkeyPatch, root_logging: None
) -> None:
    made: list[dict[str, Any]] = []
    # `textback worker` points PROMETHEUS_MULTIPROC_DIR at its metrics folder, as its own process
    # should; here it runs inside pytest's, so the variable is put back afterwards (else later
    # tests' in-process metrics would be read from that folder).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")

    class Stopped:
        def run(self) -> None:
            pass

    def create_consumer(queue: Huey, **options: Any) -> Stopped:
        made.append(options)
        return Stopped()

    monkeypatch.setattr(Huey, "create_consumer", create_consumer)
    result = CliRunner().invoke(main, ["worker"], env=settings, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [options.get("max_delay") for options in made] == [POLL_AT_LEAST_EVERY]


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("redis://127.0.0.1:6379/0?name=x", "redis", "redis"),
        ("postgresql://user:secret@db/textback", "psycopg", "postgres"),
    ],
)
def test_a_queue_without_its_client_library_is_one_line(
    url: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(ConfigError) as raised:
        make_queue(url)
    message = str(raised.value)
    assert f"pip install 'textback[{extra}]'" in message and "\n" not in message
    assert "secret" not in message
