"""SQLite's ping tells "locked by someone else" from "reachable", so that the writer spills rows
while another process holds the write lock instead of dead-lettering them as bad."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.store.migrate import migrate
from llmops.store.sqlite import SQLiteStore


def test_ping_fails_while_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    # Reads still succeed under the lock in WAL mode; before the fix ping was a SELECT 1, so the
    # writer thought the database fine, bisected every locked batch and, after ~2.5 min of lock,
    # dead-lettered good rows (bench/README.md, Soak: a SQLite lock longer than ~2.5 min).
    async def go() -> None:
        path = tmp_path / "llmops.db"
        store = SQLiteStore(path)
        await store.run(migrate)
        await store.ping()
        other = sqlite3.connect(path, isolation_level=None)  # as a sqlite3 shell or backup would
        other.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            with pytest.raises(sa.exc.OperationalError, match="database is locked"):
                await store.ping()
            assert time.monotonic() - started >= 9  # it waited busy_timeout (10 s) for the lock
            # Reading still works meanwhile: the lock is what ping has to notice.
            assert await store.run(lambda c: c.execute(sa.text("SELECT 1")).scalar()) == 1
        finally:
            other.execute("ROLLBACK")
            other.close()
        await store.ping()  # the lock is free again, and ping left no transaction open
        await store.run(lambda c: c.execute(sa.text("CREATE TABLE after_ping (x INTEGER)")))
        await store.close()

    asyncio.run(go())
