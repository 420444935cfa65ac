"""A throw-away PostgreSQL cluster on 127.0.0.1 (the approach of tests/pg.py, kept separate so the
benchmark does not depend on the test suite's internals).

initdb refuses to run as root, so as root the cluster is created and run as the ``postgres``
system user. Durability is relaxed (fsync, synchronous_commit, full_page_writes off) exactly as
in the tests: the benchmark measures the gateway and the writer, not the disk.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


class PgCluster:
    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="llmops-bench-pg-"))
        self.data = self.dir / "data"
        self._as_user: list[str] = []
        self.started = False
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as_user, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> PgCluster:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("initdb/pg_ctl not found: install PostgreSQL")
        self._run(
            initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        self.resume()
        return self

    def pause(self) -> None:
        """Stop the server (``-m fast``: it ends every connection), keeping the data for
        ``resume`` (the soak's database outage, as ``tests/pg.py`` does it)."""
        pg_ctl = find_bin("pg_ctl")
        assert pg_ctl is not None
        self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server (again) on the same port and data directory."""
        pg_ctl = find_bin("pg_ctl")
        assert pg_ctl is not None
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        log = str(self.dir / "log")
        self._run(pg_ctl, "-D", str(self.data), "-o", opts, "-l", log, "-w", "start")
        self.started = True

    def create_database(self, name: str) -> None:
        psql = find_bin("psql")
        assert psql is not None
        self._run(
            psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {name}",
        )  # fmt: skip

    @property
    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, PermissionError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        if self.started and pg_ctl and self.data.exists():
            subprocess.run(
                [*self._as_user, pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
            self.started = False
        time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
