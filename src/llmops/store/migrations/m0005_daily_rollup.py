"""Daily rollups (``llm_rollup_daily``), backfilled from the hourly rollups."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.store import schema

_KEYS = (
    "environment_id",
    "config_id",
    "variant_id",
    "variant_version",
    "provider",
    "model",
    "endpoint",
    "status_class",
)
_NAMES = ("environment_name", "config_slug", "variant_name")


def upgrade(conn: Connection) -> None:
    schema.llm_rollup_daily.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        # date_trunc of a timestamptz cuts at the session's midnight: cut the UTC wall time.
        day = "timezone('UTC', date_trunc('day', timezone('UTC', bucket)))"
    else:  # SQLite stores buckets as 'YYYY-MM-DD HH:MM:SS.ffffff'
        day = "substr(bucket, 1, 10) || ' 00:00:00.000000'"
    sums = (*schema.ROLLUP_COUNTERS, *schema.LATENCY_COLUMNS)
    columns = ["bucket", *_KEYS, *_NAMES, *sums, "latency_min", "latency_max"]
    select = [
        day,
        *_KEYS,
        *(f"max({name})" for name in _NAMES),
        *(f"sum({name})" for name in sums),
        "min(latency_min)",
        "max(latency_max)",
    ]
    conn.execute(
        sa.text(
            f"INSERT INTO llm_rollup_daily ({', '.join(columns)}) "
            f"SELECT {', '.join(select)} FROM llm_rollup_hourly "
            f"GROUP BY {', '.join([day, *_KEYS])}"
        )
    )
