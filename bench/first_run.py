"""A newcomer's first minute: a fresh clone to "It works!" with ``make run``, timed.

    python -m bench.first_run                  # 5 runs on a warm package cache
    python -m bench.first_run --cold --runs 3  # each run with an empty uv cache of its own

Each run clones this checkout into a scratch folder, starts ``make run PORT=...`` there and polls
``GET /`` every 10 ms until it answers 200. ``make --trace`` says when each recipe starts, so
the time is split into steps: the virtualenv, installing (getting uv, then the packages), and
``textback run``'s start (from its command line to the first 200). Prints each run and the
medians. ``--cold`` gives each run an empty uv cache and no kept copy of uv (so uv comes from
PyPI through pip, and every package is downloaded).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def step_of(line: str) -> str | None:
    """Which step a traced recipe line begins (None: not the start of one)."""
    if "install --quiet uv" in line:
        return "install"
    if "textback run --port" in line:
        return "start"
    return None


def one_run(checkout: Path, *, cold: bool, timeout: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="textback-first-") as scratch:
        clone = Path(scratch) / "clone"
        subprocess.run(
            ["git", "clone", "--quiet", str(checkout), str(clone)], check=True, capture_output=True
        )
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        for name in ("TWILIO_AUTH_TOKEN", "DATABASE_URL", "TEXTBACK_RULES", "TEXTBACK_BOT"):
            env.pop(name, None)
        if cold:
            env["UV_CACHE_DIR"] = str(Path(scratch) / "uv-cache")
            env["UV_COPY"] = str(Path(scratch) / "uv-copy")
            env["PIP_NO_CACHE_DIR"] = "1"
        port = free_port()
        marks: dict[str, float] = {}
        start = time.monotonic()
        make = subprocess.Popen(
            ["make", "--trace", "--no-print-directory", "run", f"PORT={port}"],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        output: list[str] = []

        def read() -> None:
            assert make.stdout is not None
            for line in make.stdout:
                output.append(line)
                step = step_of(line)
                if step and step not in marks:
                    marks[step] = time.monotonic()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while not answers(f"http://127.0.0.1:{port}/"):
                if make.poll() is not None or time.monotonic() - start > timeout:
                    sys.exit("make run did not answer:\n" + "".join(output))
                time.sleep(0.01)
            end = time.monotonic()
        finally:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(timeout=30)
        times = {
            "venv": marks["install"] - start,
            "install": marks["start"] - marks["install"],
            "start": end - marks["start"],
            "total": end - start,
        }
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="an empty uv cache for each run")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the git checkout to clone")
    args = parser.parse_args()
    if shutil.which("make") is None:
        sys.exit("make is not installed")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    runs = []
    for number in range(1, args.runs + 1):
        times = one_run(args.checkout, cold=args.cold, timeout=args.timeout)
        runs.append(times)
        print(f"run {number}: " + "  ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    print(
        "median: "
        + "  ".join(f"{k} {statistics.median(r[k] for r in runs):.2f} s" for k in runs[0])
    )
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
