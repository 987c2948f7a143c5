"""TEXTBACK_LOG_FORMAT=json: one JSON object per line, and still no bodies or whole numbers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from twilio.rest import Client

from tests.served import free_port
from textback.channel.rest import BaseUrlHttpClient
from textback.errors import ConfigError
from textback.logs import JsonFormatter
from textback.logs import log_format
from textback.logs import setup_logging
from textback.testing import TEST_TOKEN

from .prism import ACCOUNT
from .standin import StandIn
from .standin import standin_api  # noqa: F401

NUMBER = "+15557654321"
BODY = "my secret order 4242"


def test_a_record_becomes_one_object_with_its_fields_and_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "textback.service", logging.ERROR, __file__, 1, "answered %s", ("SM1",), sys.exc_info()
        )
    record.sid = "SM1"
    record.duration_ms = 1.5
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR" and line["logger"] == "textback.service"
    assert line["message"] == "answered SM1"
    assert line["sid"] == "SM1" and line["duration_ms"] == 1.5
    assert "ValueError: boom" in line["exception"]
    assert line["time"].endswith("+00:00")


def test_a_wrong_format_is_named() -> None:
    with pytest.raises(ConfigError, match="TEXTBACK_LOG_FORMAT='xml': use text or json"):
        log_format({"TEXTBACK_LOG_FORMAT": "xml"})
    assert log_format({}) == "text"


def test_a_served_webhook_logs_json_lines_without_the_body_or_number(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEXTBACK_", "TWILIO_")) and key != "DATABASE_URL"
    }
    env.update(TEXTBACK_LOG_FORMAT="json", TEXTBACK_INSTANCE=str(tmp_path / "instance"))
    command = [sys.executable, "-m", "textback.cli"]
    server = subprocess.Popen(
        [*command, "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # imports alone take 10 s on a busy 2-core machine
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        answered = subprocess.run(
            [*command, "simulate", BODY, "--from", NUMBER, "--url", f"{url}/twilio"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert answered.returncode == 0, answered.stderr
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    records = [json.loads(line) for line in lines if line.startswith("{")]
    # Every line textback itself writes is JSON (werkzeug's banner lines may be plain).
    ours = [line for line in lines if "textback" in line]
    assert ours and all(line.startswith("{") for line in ours)
    assert any(r["logger"].startswith("textback") and r["level"] == "INFO" for r in records)
    (answered,) = [r for r in records if r["message"].startswith("answered SM")]
    assert answered["outcome"] == "answered" and answered["source"] == "default"
    assert answered["sid"].startswith("SM") and answered["number"].endswith("21")
    assert answered["number"].startswith("+*") and isinstance(answered["duration_ms"], float)
    assert BODY not in stderr and NUMBER not in stderr


def test_twilio_api_requests_log_no_number_at_info(
    standin: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    """twilio's HTTP client logs each request at INFO, a list's query (To, From) included: a
    lookup of an unknown outcome would log whole numbers. Its lines are WARNING and up only."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        setup_logging()
        client = Client(
            ACCOUNT, TEST_TOKEN, http_client=BaseUrlHttpClient(standin.url), environment={}
        )
        client.messages.create(to="+14155550123", from_="+15559990000", body="a private text")
        assert len(client.messages.list(to="+14155550123", from_="+15559990000", limit=5)) == 1
        logging.getLogger("textback.outbound.outbox").info("sent")  # INFO still gets through
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])
    written = capsys.readouterr().err
    assert "INFO textback.outbound.outbox: sent" in written
    assert "4155550123" not in written and "5559990000" not in written, written
