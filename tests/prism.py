"""Prism serving Twilio's OpenAPI description: a mock of Twilio's REST API that checks every
request against the real contract (422 for a request Twilio would refuse)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from click.testing import Result

from textback.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPEC = "twilio_api_v2010.json"
STARTUP_SECONDS = 120
ACCOUNT = "AC" + "a" * 32


def openapi_dir() -> Path:
    """Where Twilio's OpenAPI files are: TEXTBACK_OPENAPI_DIR, or ../shared/twilio-openapi."""
    configured = os.environ.get("TEXTBACK_OPENAPI_DIR")
    return Path(configured) if configured else ROOT.parent / "shared" / "twilio-openapi"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def unavailable(what: str) -> None:
    """Skip for want of ``what``; fail in CI, where the API tests must run."""
    if os.environ.get("CI"):
        pytest.fail(f"CI needs {what}")
    pytest.skip(f"the API tests need {what}")


@pytest.fixture(scope="session")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a Prism mock of Twilio's API (static examples), for this session."""
    spec = openapi_dir() / SPEC
    binary = ROOT / "node_modules" / ".bin" / "prism"
    if not spec.is_file():
        unavailable(f"Twilio's OpenAPI description at {spec} (set TEXTBACK_OPENAPI_DIR)")
    if not binary.exists():
        unavailable("Prism in node_modules (run `make setup` or `npm install`)")
    port = free_port()
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "mock", str(spec), "-p", str(port), "-h", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"Prism exited: {log_path.read_text()[-2000:]}")
            try:
                requests.get(url, timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # a loaded machine: slow start
                if time.monotonic() > deadline:
                    pytest.fail(f"Prism did not answer at {url}: {log_path.read_text()[-2000:]}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_cli(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def cli_env(base_url: str, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": "secret-token",
        "TWILIO_API_BASE_URL": base_url,
        "DATABASE_URL": database_url,
        **extra,
    }
