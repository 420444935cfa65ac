"""Storage: schema, migrations and the SQLite / PostgreSQL stores behind one protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from llmops.settings import Settings
from llmops.store import sqlite
from llmops.store.base import Store
from llmops.store.base import utc as utc
from llmops.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from llmops.store.postgres import PostgresStore


def __getattr__(name: str) -> Any:
    # PostgreSQL support (asyncpg and greenlet: ~1.5 MB) loads only when used.
    if name == "PostgresStore":
        from llmops.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(name)


def upsert_insert(dialect: str, table: sa.Table) -> Any:
    """The INSERT construct of ``dialect`` (``conn.dialect.name``) that supports
    ``on_conflict_do_update``."""
    if dialect == "postgresql":
        from llmops.store import postgres

        return postgres.upsert_insert(table)
    return sqlite.upsert_insert(table)


def open_store(settings: Settings) -> Store:
    """The store the settings name: PostgreSQL for a postgresql:// URL, else a SQLite file."""
    if settings.is_postgres:
        from llmops.store.postgres import PostgresStore

        return PostgresStore(settings.database_url)
    if settings.database_url.startswith("sqlite:///"):
        from pathlib import Path

        return SQLiteStore(Path(settings.database_url.removeprefix("sqlite:///")))
    return SQLiteStore(settings.sqlite_path)


__all__ = ["PostgresStore", "SQLiteStore", "Store", "open_store", "upsert_insert"]
