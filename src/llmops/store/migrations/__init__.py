"""The one migration sequence, applied in order and recorded in ``llmops_migrations``.

Each migration is a module ``mNNNN_name`` with ``upgrade(conn)`` taking a SQLAlchemy Connection.
Write per-dialect SQL only where the dialects differ (``conn.dialect.name``). Once a later migration
alters a table that an earlier one created from ``schema.py``, freeze the earlier one's table
definitions first: ``tests/test_migrations.py`` compares a migrated database with ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from llmops.store.migrations import (
    m0001_initial,
    m0002_observability,
    m0003_admin,
    m0004_query_indexes,
    m0005_daily_rollup,
    m0006_tag_totals,
)

MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_initial", m0001_initial.upgrade),
    ("0002_observability", m0002_observability.upgrade),
    ("0003_admin", m0003_admin.upgrade),
    ("0004_query_indexes", m0004_query_indexes.upgrade),
    ("0005_daily_rollup", m0005_daily_rollup.upgrade),
    ("0006_tag_totals", m0006_tag_totals.upgrade),
]
