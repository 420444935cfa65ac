"""PostgreSQL through asyncpg: SQLAlchemy's async engine for queries, COPY for bulk inserts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

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
        self.engine = create_async_engine(
            async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )

    async def run(self, fn: Callable[[Connection], T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def insert_rows(
        self,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedupe: bool = False,
        after: After | None = None,
    ) -> int:
        async with self.engine.begin() as conn:
            todo = rows
            if dedupe:
                ids = [r[0] for r in rows]
                seen = await conn.run_sync(lambda c: existing_ids(c, table, ids))
                todo = [r for r in rows if r[0] not in seen]
            if not todo:
                return 0
            # SQLAlchemy's asyncpg adapter sends BEGIN lazily, before its first statement; COPY
            # goes around it, so a statement must come first or the COPY would autocommit on its
            # own (rows without their rollups if the connection then dies).
            if after is not None:
                hook = after
                await conn.run_sync(lambda c: hook(c, todo))
            else:
                await conn.execute(sa.text("SELECT 1"))
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            assert driver.is_in_transaction()
            records = [tuple(map(_to_postgres, r)) for r in todo]
            await driver.copy_records_to_table(table.name, records=records, columns=list(columns))
            return len(todo)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
