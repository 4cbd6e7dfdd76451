"""A real PostgreSQL server for the console's history tests (``postgres`` fixture).

Debian's server binaries (/usr/lib/postgresql/<version>/bin, package ``postgresql``:
``scripts/bootstrap.sh --tests`` installs it) run a throw-away cluster in a temporary
folder: trust authentication, a unix socket in that folder and a free TCP port on
127.0.0.1, fsync off (nothing here must outlive the test session). PostgreSQL refuses to
run as root, so when the tests run as root the server runs as the ``postgres`` system user
(``runuser``), which then owns the folder. One server per test session; ``postgres.new_db()``
(or the ``postgres_url`` fixture) creates a fresh database for each test.

Without the binaries the fixture fails (it does not skip): CI must run these tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SUPERUSER = "postgres"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        pytest.fail("PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/postgres): "
                    "apt-get install --no-install-recommends postgresql, or scripts/bootstrap.sh --tests")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One running cluster; :meth:`new_db` gives the URL of a fresh, empty database."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="panel-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        self.count = 0
        self.socket_dir.mkdir()
        if self.as_postgres:
            if shutil.which("runuser") is None:
                pytest.fail("the tests run as root and PostgreSQL refuses root: runuser (util-linux) is needed")
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root)

    def start(self) -> None:
        done = self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                         "--locale=C", "--no-sync")
        if done.returncode != 0:
            pytest.fail(f"initdb failed ({done.returncode}): {done.stdout}{done.stderr}")
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40")
        done = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                         "-o", options)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            pytest.fail(f"PostgreSQL did not start ({done.returncode}): {done.stdout}{done.stderr}{log}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def restart(self) -> None:
        """Stop the server (cutting every connection) and start it again on the same port."""
        done = self._run("pg_ctl", "restart", "-w", "-m", "fast", "-D", str(self.data), "-l", str(self.log))
        if done.returncode != 0:
            pytest.fail(f"PostgreSQL did not restart: {done.stdout}{done.stderr}")

    def url(self, db: str, tcp: bool = True) -> str:
        if tcp:
            return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{db}"
        return f"postgresql:///{db}?host={self.socket_dir}&port={self.port}&user={SUPERUSER}"

    def sql(self, statement: str, db: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) and return its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            cur = conn.execute(statement)  # test SQL of these tests, no parameters
            return list(cur.fetchall()) if cur.description else []

    def new_db(self) -> str:
        """Create an empty database; its name."""
        self.count += 1
        name = f"history_{os.getpid()}_{self.count}"
        self.sql(f"CREATE DATABASE {name}")
        return name

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (a few seconds to start)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The TCP URL of a fresh database on the session's server."""
    return postgres.url(postgres.new_db())
