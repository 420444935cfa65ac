"""PostgreSQL through asyncpg: SQLAlchemy Core for queries, COPY for bulk inserts.

The engine is SQLAlchemy's *synchronous* ``Engine`` over its asyncpg dialect, driven with
``greenlet_spawn``: each ``run`` executes the domain function, a plain function of a
``Connection``, in a greenlet whose every database wait becomes an ``await`` on the event loop.
That is the bridge ``AsyncConnection.run_sync`` uses, without ``sqlalchemy.ext.asyncio``, whose
package imports the ORM: 5–6 MB of the gateway's idle memory for nothing it calls (bench/README.md,
*Idle memory on PostgreSQL*). A whole transaction is also one greenlet instead of one per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.util import greenlet_spawn

from llmops.store.base import After, existing_ids

T = TypeVar("T")


def async_url(url: str) -> str:
    """``postgresql://…`` → ``postgresql+asyncpg://…`` (another driver in the URL is replaced)."""
    scheme, _, rest = url.partition("://")
    return f"postgresql+asyncpg://{rest}"


def _to_postgres(value: Any) -> Any:
    """Python value → what asyncpg's COPY expects; NUL bytes are stripped (PostgreSQL rejects them
    in text, and one such row must not fail a whole batch)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode().replace("\\u0000", "")
    return value


def upsert_insert(table: sa.Table) -> Any:
    """INSERT with PostgreSQL's ON CONFLICT … DO UPDATE support."""
    return postgresql.insert(table)


class PostgresStore:
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 5):
        self.url = url
        # An asyncpg dialect gets an asyncio-aware pool (AsyncAdaptedQueuePool); its connections
        # may only be used inside greenlet_spawn, which is what every method below does.
        self.engine = sa.create_engine(
            async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        return await greenlet_spawn(self._transaction, fn)

    async def insert_rows(
        self,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedupe: bool = False,
        after: After | None = None,
    ) -> int:
        def write(conn: Connection) -> int:
            todo = rows
            if dedupe:
                seen = existing_ids(conn, table, [r[0] for r in rows])
                todo = [r for r in rows if r[0] not in seen]
            if not todo:
                return 0
            # SQLAlchemy's asyncpg adapter sends BEGIN lazily, before its first statement; COPY
            # goes around it, so a statement must come first or the COPY would autocommit on its
            # own (rows without their rollups if the connection then dies).
            if after is not None:
                after(conn, todo)
            else:
                conn.exec_driver_sql("SELECT 1")
            adapted = conn.connection.dbapi_connection
            assert isinstance(adapted, AdaptedConnection)
            assert adapted.driver_connection.is_in_transaction()
            records = [tuple(map(_to_postgres, r)) for r in todo]
            # run_async: the await of an asyncpg coroutine from inside the greenlet.
            adapted.run_async(
                lambda driver: driver.copy_records_to_table(
                    table.name, records=records, columns=list(columns)
                )
            )
            return len(todo)

        return await self.run(write)

    async def ping(self) -> None:
        def select_one() -> None:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")

        await greenlet_spawn(select_one)

    async def close(self) -> None:
        await greenlet_spawn(self.engine.dispose)
