"""SQLite: a file next to the process, WAL mode, one writer thread.

All statements run on one dedicated thread that owns the connection, as Datasette's write thread
does: SQLite allows one writer at a time, and a single owner turns contention inside this process
into a queue instead of "database is locked" errors. ``busy_timeout`` covers other processes
(``llmops apply`` while the server runs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection, event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import NullPool

from llmops.store.base import After, existing_ids

T = TypeVar("T")


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _to_sqlite(value: Any) -> Any:
    """Python value → what SQLAlchemy's SQLite types store (so Core queries read it back)."""
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(" ", "microseconds")
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def upsert_insert(table: sa.Table) -> Any:
    """INSERT with SQLite's ON CONFLICT … DO UPDATE support."""
    return sqlite_dialect.insert(table)


class SQLiteStore:
    dialect = "sqlite"

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool)
        event.listen(self.engine, "connect", _on_connect)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmops-sqlite")
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a transaction on the calling thread (for the CLI and the writer thread)."""
        conn = self._connection()
        with conn.begin():
            return fn(conn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, fn)

    async def insert_rows(
        self,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedupe: bool = False,
        after: After | None = None,
    ) -> int:
        names = ", ".join(columns)
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})"

        def write(conn: Connection) -> int:
            todo = rows
            if dedupe:
                seen = existing_ids(conn, table, [r[0] for r in rows])
                todo = [r for r in rows if r[0] not in seen]
            if todo:
                conn.exec_driver_sql(sql, [tuple(map(_to_sqlite, r)) for r in todo])
                if after is not None:
                    after(conn, todo)
            return len(todo)

        return await self.run(write)

    async def ping(self) -> None:
        """Raise unless the database can be written to: take the write lock, then let it go.

        A read is not enough. In WAL mode reads go through while another process holds the
        write lock (a backup, a migration, a sqlite3 shell), and the writer would then take its
        "database is locked" errors for bad rows and bisect good ones into the dead letters. Like
        any write, this waits up to ``busy_timeout`` for the lock."""

        def take_write_lock(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the transaction's commit releases it

        await self.run(take_write_lock)

    async def close(self) -> None:
        def shutdown() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shutdown)
        self._executor.shutdown(wait=True)
        self.engine.dispose()
