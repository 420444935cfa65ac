"""Apply the migration sequence to a database, each migration once."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.store.migrations import MIGRATIONS

_applied = sa.Table(
    "llmops_migrations",
    sa.MetaData(),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

# An arbitrary constant: serialises concurrent `migrate` runs of several processes on PostgreSQL.
_PG_LOCK_ID = 0x11A0_0B5


def migrate(conn: Connection) -> list[str]:
    """Apply pending migrations inside the caller's transaction; return the names applied."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    _applied.create(conn, checkfirst=True)
    done = set(conn.execute(sa.select(_applied.c.name)).scalars())
    applied = []
    for name, upgrade in MIGRATIONS:
        if name in done:
            continue
        upgrade(conn)
        conn.execute(_applied.insert().values(name=name, applied_at=dt.datetime.now(dt.UTC)))
        applied.append(name)
    return applied


def pending(conn: Connection) -> list[str]:
    """Names of migrations not yet applied."""
    if not sa.inspect(conn).has_table(_applied.name):
        return [name for name, _ in MIGRATIONS]
    done = set(conn.execute(sa.select(_applied.c.name)).scalars())
    return [name for name, _ in MIGRATIONS if name not in done]
