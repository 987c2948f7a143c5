"""textback under another WSGI server, as the README's Deployment section shows: gunicorn."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.served import TEXTBACK
from tests.served import free_port
from textback.channel.forms import inbound_form
from textback.channel.forms import signed_request
from textback.testing import TEST_TOKEN

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def test_gunicorn_serves_the_factory_after_db_upgrade(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": TEST_TOKEN,
        "TEXTBACK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gunicorn.db'}",
        "TEXTBACK_SECRET_KEY": "test",
    }
    subprocess.run([TEXTBACK, "db", "upgrade"], env=env, cwd=tmp_path, check=True)
    command = [GUNICORN, "--workers=2", f"--bind=127.0.0.1:{port}"]
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "textback:create_app(check_schema=False)"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=out,
        )
    try:
        payload, headers = signed_request(
            TEST_TOKEN, f"http://127.0.0.1:{port}/twilio", inbound_form("hello")
        )
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            # the workers import textback after binding: the first request waits for one
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                connection.request("POST", "/twilio", body=payload, headers=headers)
                response = connection.getresponse()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status == 200
        assert b"Hello back to you!" in response.read()
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
