"""The Store protocol: the only seam between the product and a database.

Domain code writes its queries as plain functions of a SQLAlchemy ``Connection`` and hands them
to ``Store.run``, which executes them in one transaction: on SQLite on the store's single writer
thread, on PostgreSQL through asyncpg (SQLAlchemy's ``run_sync`` bridge). Dialect differences
live only in ``sqlite.py`` and ``postgres.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")


class Store(Protocol):
    dialect: str

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction and return its result."""
        ...

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert many rows in one transaction, the fastest way the backend offers."""
        ...

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    async def close(self) -> None: ...
