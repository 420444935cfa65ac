"""A throw-away PostgreSQL server for the test session, from the machine's PostgreSQL install.

Used when LLMOPS_TEST_DATABASE_URL is not set. initdb refuses to run as root, so as root the
cluster is created and run as the ``postgres`` system user.
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


class TempPostgres:
    def __init__(self, port: int):
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="llmops-pg-"))
        self.data = self.dir / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as_user, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> TempPostgres:
        initdb = find_bin("initdb")
        if not initdb or not find_bin("pg_ctl"):
            raise FileNotFoundError("initdb/pg_ctl not found: install PostgreSQL")
        self._run(
            initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.resume()
        return self

    def pause(self) -> None:
        """Stop the server (its connections drop), keeping the data for ``resume``."""
        self._run(str(find_bin("pg_ctl")), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = str(self.dir / "log")
        self._run(
            str(find_bin("pg_ctl")), "-D", str(self.data), "-o", opts, "-l", log, "-w", "start"
        )

    def stop(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        if pg_ctl and self.data.exists():
            subprocess.run(
                [*self._as_user, pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
