"""The Store protocol: the only seam between the product and a database.

Domain code writes its queries as plain functions of a SQLAlchemy ``Connection`` and hands them
to ``Store.run``, which executes them in one transaction: on SQLite on the store's single writer
thread, on PostgreSQL on the event loop through asyncpg (in a greenlet: SQLAlchemy's bridge from
sync code to asyncio). Dialect differences live only in ``sqlite.py`` and ``postgres.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

T = TypeVar("T")
After = Callable[[Connection, Sequence[Sequence[Any]]], None]


class Store(Protocol):
    dialect: str

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction and return its result."""
        ...

    async def insert_rows(
        self,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedupe: bool = False,
        after: After | None = None,
    ) -> int:
        """Insert ``rows`` in one transaction, the fastest way the backend offers (COPY on
        PostgreSQL), and call ``after(conn, inserted)`` in that same transaction (before or after
        the insert: the two commit together or not at all). With ``dedupe``,
        rows whose ``id`` (the first column) is already stored are skipped — used when retrying a
        batch whose earlier attempt may have committed. Returns the number of rows inserted."""
        ...

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    async def close(self) -> None: ...


def existing_ids(conn: Connection, table: sa.Table, ids: Sequence[Any]) -> set[Any]:
    """The subset of ``ids`` already present in ``table`` (queried in chunks)."""
    found: set[Any] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(conn.execute(sa.select(table.c.id).where(table.c.id.in_(chunk))).scalars())
    return found


def utc(value: dt.datetime) -> dt.datetime:
    """A time as an aware UTC datetime: SQLite hands back naive UTC, PostgreSQL aware times."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
