"""Tag totals (``llm_rollup_tag_hourly``, ``llm_rollup_tag_daily``), backfilled from raw rows,
and the registry of indexed tag keys (``llm_tag_rollup_keys``).

The backfill covers the tag keys that already have daily tag rollups (the keys that were indexed)
and computes, in SQL, exactly what ``observability.rollups`` adds per row: the same counters, the
same half-octave latency bucket, rows without the key under ``tagged`` false. A test compares a
backfilled table with the one the batch writer wrote. Each such key is registered from the day
after its first daily tag rollup: the first day may have been indexed from its middle only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement

from llmops.store import schema
from llmops.store.base import utc

_SUMMED = schema.ROLLUP_COUNTERS[5:16]  # straight sums of the request columns of the same name
_KEY = ("bucket", "tag_key", "tagged", "tag_value")


def upgrade(conn: Connection) -> None:
    tables = {"hour": schema.llm_rollup_tag_hourly, "day": schema.llm_rollup_tag_daily}
    for table in tables.values():
        table.create(conn, checkfirst=True)
    schema.llm_tag_rollup_keys.create(conn, checkfirst=True)
    daily_tags = schema.llm_rollup_daily_tags
    first = conn.execute(
        sa.select(daily_tags.c.tag_key, sa.func.min(daily_tags.c.bucket)).group_by(
            daily_tags.c.tag_key
        )
    ).all()
    for key, day in sorted(first):
        for unit, table in tables.items():
            columns, select = _backfill(conn.dialect.name, unit, key)
            conn.execute(sa.insert(table).from_select(columns, select))
        since = _utc(day) + dt.timedelta(days=1)
        conn.execute(sa.insert(schema.llm_tag_rollup_keys).values(tag_key=key, since=since))


def _utc(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):  # SQLite's text, when the driver did not parse it
        value = dt.datetime.fromisoformat(value)
    return utc(value)


def _bucket(dialect: str, unit: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        # date_trunc of a timestamptz cuts at the session's midnight: cut the UTC wall time.
        cut = f"timezone('UTC', date_trunc('{unit}', timezone('UTC', created_at)))"
    else:  # SQLite stores UTC times as 'YYYY-MM-DD HH:MM:SS.ffffff'
        fmt = "%Y-%m-%d %H:00:00.000000" if unit == "hour" else "%Y-%m-%d 00:00:00.000000"
        cut = f"strftime('{fmt}', created_at)"
    return sa.literal_column(cut)


def _latency_bucket(latency: ColumnElement[int]) -> ColumnElement[int]:
    whens = [(latency < edge, k) for k, edge in enumerate(schema.LATENCY_EDGES)]
    return sa.case(*whens, else_=len(schema.LATENCY_EDGES))


def _backfill(dialect: str, unit: str, key: str) -> tuple[list[str], sa.Select[Any]]:
    c = schema.llm_requests.c
    value = c.tags[key].as_string()
    has_error_type = sa.and_(c.error_type.is_not(None), c.error_type != "")
    flags = {
        "errors": sa.or_(c.status_code >= 400, has_error_type),
        "unpriced": sa.and_(c.prompt_tokens.is_not(None), c.total_cost.is_(None)),
        "usage_missing": c.usage_source == "missing",
        "streams": c.is_streaming.is_(sa.true()),
    }
    rows = sa.select(
        _bucket(dialect, unit).label("bucket"),
        value.is_not(None).label("tagged"),
        sa.func.coalesce(sa.func.substr(value, 1, 512), "").label("tag_value"),
        _latency_bucket(c.latency_ms).label("lat_bucket"),
        *(sa.case((flag, 1), else_=0).label(name) for name, flag in flags.items()),
        *(sa.func.coalesce(c[name], 0).label(name) for name in _SUMMED),
        c.latency_ms,
        sa.func.coalesce(c.ttft_ms, 0).label("ttft"),
        sa.case((c.ttft_ms.is_not(None), 1), else_=0).label("has_ttft"),
    ).subquery()
    r = rows.c
    sums: dict[str, ColumnElement[Any]] = {
        "requests": sa.func.count(),
        **{name: sa.func.sum(r[name]) for name in (*flags, *_SUMMED)},
        "latency_sum": sa.func.sum(r.latency_ms),
        "ttft_sum": sa.func.sum(r.ttft),
        "ttft_count": sa.func.sum(r.has_ttft),
        "latency_min": sa.func.min(r.latency_ms),
        "latency_max": sa.func.max(r.latency_ms),
        **{
            name: sa.func.sum(sa.case((r.lat_bucket == k, 1), else_=0))
            for k, name in enumerate(schema.LATENCY_COLUMNS)
        },
    }
    group = (r.bucket, r.tagged, r.tag_value)
    select = sa.select(
        r.bucket, sa.literal(key, sa.String), r.tagged, r.tag_value, *sums.values()
    ).group_by(*group)
    return [*_KEY, *sums], select
