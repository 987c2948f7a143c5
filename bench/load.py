"""The load generator: wrk with bench/twilio.lua, installed from Debian's packages if missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "twilio.lua"
THREADS = 2


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reports (bench/twilio.lua's done() line)."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    issued: list[int]

    @classmethod
    def parse(cls, output: str) -> WrkResult:
        line = next(line for line in output.splitlines() if line.startswith("BENCH "))
        data = json.loads(line.removeprefix("BENCH "))
        return cls(
            requests=int(data["requests"]),
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            errors=sum(int(count) for count in data["errors"].values()),
            issued=[int(count) for count in data["issued"]],
        )


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get (as root, or through sudo) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def start_wrk(url: str, pool: Path, *, seconds: float, connections: int) -> subprocess.Popen[str]:
    """Start loading ``url`` for ``seconds`` with ``connections`` connections from ``pool``."""
    command = [
        ensure_wrk(),
        f"--threads={THREADS}",
        f"--connections={connections}",
        f"--duration={seconds:g}s",
        "--timeout=10s",
        f"--script={SCRIPT}",
        url,
        "--",
        str(pool),
        str(THREADS),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def finish_wrk(process: subprocess.Popen[str]) -> WrkResult:
    output, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output}")
    return WrkResult.parse(output)


def run_wrk(url: str, pool: Path, *, seconds: float, connections: int) -> WrkResult:
    """Load ``url`` for ``seconds`` with ``connections`` connections, sending ``pool``'s lines."""
    return finish_wrk(start_wrk(url, pool, seconds=seconds, connections=connections))
