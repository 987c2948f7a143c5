"""``textback serve`` survives a worker restart during a database outage (issue 11, defect 12).

The schema is checked once, when serve starts; workers boot without the database and their
pools reconnect when it is back, so a worker killed (a crash, an OOM kill) while PostgreSQL is
down comes back and answers again once PostgreSQL does, without restarting serve.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.private_postgres import private_postgres
from tests.served import TEXTBACK
from tests.served import free_port
from tests.served import textback_serve
from textback.testing import TEST_TOKEN

RECOVERY_SECONDS = 60


def test_a_worker_killed_during_an_outage_comes_back_with_the_database(tmp_path: Path) -> None:
    with (
        private_postgres() as database,
        textback_serve(tmp_path, database_url=database.url, workers=2) as served,
    ):
        for _ in range(10):  # both workers have pooled connections to lose
            assert served.post_webhook()[0] == 200
        database.stop()
        for _ in range(4):
            status, _ = served.post_webhook()
            assert status >= 500  # what exactly a webhook answers during an outage is not ours
        victim, survivor = served.worker_pids()
        os.kill(victim, signal.SIGKILL)
        # granian logs "Started worker-N" after the worker built its app: it booted without
        # the database (before the fix, it failed at boot and the whole server exited)
        served.wait_for("Started worker-", 3)
        assert served.alive()
        assert victim not in served.worker_pids()
        assert survivor in served.worker_pids()

        database.start()
        deadline = time.monotonic() + RECOVERY_SECONDS
        while served.post_webhook()[0] != 200:
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.2)
        statuses = [served.post_webhook()[0] for _ in range(20)]  # new connections: both workers
        assert statuses == [200] * 20
        assert served.alive()


def test_serve_checks_the_schema_once_at_start(tmp_path: Path) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    result = subprocess.run(
        [TEXTBACK, "serve", f"--bind=127.0.0.1:{free_port()}", "--workers=2"],
        env={**os.environ, "TWILIO_AUTH_TOKEN": TEST_TOKEN, "DATABASE_URL": unreachable},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "textback: error: cannot open the database" in result.stderr
    assert "Traceback" not in result.stderr
