"""A PostgreSQL server of a test's own, for tests that stop and start the database.

The shared server must never be stopped; this one runs from Debian's binaries
(/usr/lib/postgresql/*/bin) as user ``postgres`` (PostgreSQL refuses to run as root), on a free
port, with its data, socket and log in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.served import free_port


class PrivatePostgres:
    """One private PostgreSQL server: ``url`` to connect, ``stop()`` and ``start()``."""

    def __init__(self, binaries: Path, folder: Path, port: int, user: str | None) -> None:
        self.binaries = binaries
        self.folder = folder
        self.port = port
        self.user = user

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.binaries / program), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.folder / "data"), "-U", "postgres", "-A", "trust")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.folder / "data"), str(self.folder / "log")
        self._run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.folder / "data" / "postmaster.pid").exists()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh, running private PostgreSQL; stopped and deleted after the block."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("CI needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)")
        pytest.skip("needs PostgreSQL's server binaries in /usr/lib/postgresql/*/bin")
    user = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root needs a postgres user to run PostgreSQL as")
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="textback-pg-"))
    if user:
        os.chown(folder, account.pw_uid, account.pw_gid)
    server = PrivatePostgres(Path(found[-1]).parent, folder, free_port(), user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
