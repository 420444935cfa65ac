"""Storage: schema, migrations and the SQLite / PostgreSQL stores behind one protocol."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.settings import Settings
from llmops.store import postgres, sqlite
from llmops.store.base import Store
from llmops.store.postgres import PostgresStore
from llmops.store.sqlite import SQLiteStore


def upsert_insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT construct that supports ``on_conflict_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgres.upsert_insert(table)
    return sqlite.upsert_insert(table)


def open_store(settings: Settings) -> Store:
    """The store the settings name: PostgreSQL for a postgresql:// URL, else a SQLite file."""
    if settings.is_postgres:
        return PostgresStore(settings.database_url)
    if settings.database_url.startswith("sqlite:///"):
        from pathlib import Path

        return SQLiteStore(Path(settings.database_url.removeprefix("sqlite:///")))
    return SQLiteStore(settings.sqlite_path)


__all__ = ["PostgresStore", "SQLiteStore", "Store", "open_store", "upsert_insert"]
