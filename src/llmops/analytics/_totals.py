"""Grouped totals over segments: one SELECT … GROUP BY per segment, merged in Python.

Raw rows and rollup rows yield the same ``Totals`` per group key: raw SQL computes the counters
exactly as ``observability.rollups`` adds them (an error is status ≥ 400 or a non-empty
``error_type``; unpriced is usage without a cost…), and group keys are normalised the same way
(ids as dashed text, None for "none", status codes → status classes). Merging is exact integer
addition, so a query answered from rollups and from raw rows gives identical counters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement

from llmops.analytics import dialect
from llmops.analytics._scope import (
    HISTOGRAM_SOURCES,
    Scope,
    Segment,
    raw_where,
    rollup_table,
    rollup_where,
)
from llmops.observability.rollups import latency_bucket, status_class
from llmops.store import schema as s

COUNTERS = s.ROLLUP_COUNTERS
_SUMMED = COUNTERS[5:16]
_INDEX = {name: i for i, name in enumerate(COUNTERS)}
Key = tuple[Hashable, ...]
K = TypeVar("K", bound=Hashable)


class Totals:
    """Counters for one group; latency min/max; optionally the latency histogram."""

    __slots__ = ("counts", "histogram", "latency_max", "latency_min")

    def __init__(self) -> None:
        self.counts = [0] * len(COUNTERS)
        self.latency_min: int | None = None
        self.latency_max: int | None = None
        self.histogram: list[int] | None = None

    def __getitem__(self, name: str) -> int:
        return self.counts[_INDEX[name]]

    def add(self, other: Totals) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        if other.latency_min is not None:
            if self.latency_min is None or other.latency_min < self.latency_min:
                self.latency_min = other.latency_min
        if other.latency_max is not None:
            if self.latency_max is None or other.latency_max > self.latency_max:
                self.latency_max = other.latency_max
        if other.histogram is not None:
            mine = self.histogram or [0] * s.LATENCY_BUCKETS
            self.histogram = [a + b for a, b in zip(mine, other.histogram, strict=True)]

    def minus(self, other: Totals) -> Totals:
        """Counters of ``self`` less ``other`` (min/max cannot be subtracted: None)."""
        out = Totals()
        out.counts = [a - b for a, b in zip(self.counts, other.counts, strict=True)]
        return out


def merge(target: dict[K, Totals], key: K, totals: Totals) -> None:
    """Add ``totals`` into ``target[key]``."""
    if (mine := target.get(key)) is None:
        target[key] = mine = Totals()
    mine.add(totals)


# --- grouping dimensions ----------------------------------------------------------------------

_ID_DIMS = {"environment": "environment_id", "config": "config_id", "variant": "variant_id"}


def _dim_column(scope: Scope, seg: Segment, dim: str) -> ColumnElement[Any]:
    raw = seg.source == "raw"
    table = s.llm_requests if raw else rollup_table(seg)
    if dim in _ID_DIMS:
        return table.c[_ID_DIMS[dim]]
    if dim == "status":
        return table.c.status_code if raw else table.c.status_class
    if dim.startswith("tag:"):
        if raw:
            return dialect.tag_value(scope.dialect, table.c.tags, dim[4:])
        if "tagged" in table.c:  # rows without the key: NULL, as from raw rows
            return sa.case((table.c.tagged.is_(sa.true()), table.c.tag_value), else_=sa.null())
        return table.c.tag_value
    if dim.startswith("time:"):
        unit: dialect.Unit = "day" if dim == "time:day" else "hour"
        if raw:
            return dialect.truncate(scope.dialect, unit, table.c.created_at)
        if unit == "day" and seg.source in ("hourly", "tag_hourly"):
            return dialect.truncate(scope.dialect, unit, table.c.bucket)
        return table.c.bucket
    return table.c[dim]  # model, provider, endpoint


def _dim_key(seg: Segment, dim: str, value: Any) -> Hashable:
    if dim.startswith("time:"):
        return dialect.as_utc(value)
    if dim.startswith("tag:"):
        return None if value is None else str(value)
    if dim == "status":
        return status_class(value) if seg.source == "raw" else value
    if value is None or value == "":
        return None
    return str(value)  # ids: UUID (raw) or dashed text (rollups) → dashed text


# --- queries ----------------------------------------------------------------------------------


def _raw_metrics() -> list[ColumnElement[Any]]:
    c = s.llm_requests.c

    def flag(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    def total(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.coalesce(sa.func.sum(column), 0)

    has_error_type = sa.and_(c.error_type.is_not(None), c.error_type != "")
    return [
        sa.func.count(),
        flag(sa.or_(c.status_code >= 400, has_error_type)),
        flag(sa.and_(c.prompt_tokens.is_not(None), c.total_cost.is_(None))),
        flag(c.usage_source == "missing"),
        flag(c.is_streaming.is_(sa.true())),
        *(total(c[name]) for name in _SUMMED),
        total(c.latency_ms),
        total(c.ttft_ms),
        sa.func.count(c.ttft_ms),
        sa.func.min(c.latency_ms),
        sa.func.max(c.latency_ms),
    ]


def _rollup_metrics(table: sa.Table, histogram: bool) -> list[ColumnElement[Any]]:
    names = (*COUNTERS, *(s.LATENCY_COLUMNS if histogram else ()))
    return [
        *(sa.func.coalesce(sa.func.sum(table.c[name]), 0) for name in names[: len(COUNTERS)]),
        sa.func.min(table.c.latency_min),
        sa.func.max(table.c.latency_max),
        *(sa.func.coalesce(sa.func.sum(table.c[name]), 0) for name in names[len(COUNTERS) :]),
    ]


def _read(values: Sequence[Any], histogram: bool) -> Totals:
    out = Totals()
    n = len(COUNTERS)
    out.counts = [int(v) for v in values[:n]]
    out.latency_min = None if values[n] is None else int(values[n])
    out.latency_max = None if values[n + 1] is None else int(values[n + 1])
    if histogram:
        out.histogram = [int(v) for v in values[n + 2 :]]
    return out


def _query(
    conn: Connection, scope: Scope, seg: Segment, dims: Sequence[str], histogram: bool
) -> dict[Key, Totals]:
    if seg.source == "raw":
        table, metrics = s.llm_requests, _raw_metrics()
        where = raw_where(scope, seg.start, seg.end)
        histogram = False
    else:
        table = rollup_table(seg)
        histogram = histogram and seg.source in HISTOGRAM_SOURCES
        metrics, where = _rollup_metrics(table, histogram), rollup_where(scope, seg)
    groups = [_dim_column(scope, seg, dim).label(f"g{i}") for i, dim in enumerate(dims)]
    stmt = sa.select(*groups, *metrics).select_from(table).where(*where)
    if groups:
        stmt = stmt.group_by(*groups)
    out: dict[Key, Totals] = {}
    for row in conn.execute(stmt):
        key = tuple(_dim_key(seg, dim, row[i]) for i, dim in enumerate(dims))
        totals = _read(row[len(dims) :], histogram)
        if totals["requests"]:  # an ungrouped query over no rows still returns one row
            merge(out, key, totals)
    return out


def _daily_with_untagged(
    conn: Connection, scope: Scope, seg: Segment, dims: Sequence[str]
) -> dict[Key, Totals]:
    """A daily_tags segment grouped by its tag, plus the rows *without* the tag (tag None).

    Daily tag rollups only count rows that carry the tag; the others are the daily totals of the
    same whole days less the tagged ones (all are written in the same transaction, so they agree).
    """
    out = _query(conn, scope, seg, dims, histogram=False)
    at = next(i for i, dim in enumerate(dims) if dim.startswith("tag:"))
    rest = [dim for i, dim in enumerate(dims) if i != at]
    untagged = _query(conn, scope, Segment("daily", seg.start, seg.end), rest, histogram=False)
    tagged: dict[Key, Totals] = {}
    for key, totals in out.items():
        merge(tagged, key[:at] + key[at + 1 :], totals)
    for key, totals in untagged.items():
        left = totals.minus(tagged[key]) if key in tagged else totals.minus(Totals())
        if left["requests"]:
            merge(out, (*key[:at], None, *key[at:]), left)
    return out


def grouped_totals(
    conn: Connection,
    scope: Scope,
    segments: Sequence[Segment],
    dims: Sequence[str],
    *,
    histogram: bool = False,
) -> dict[Key, Totals]:
    """Totals per group key (one value per dim) over all segments; ``histogram`` adds the
    latency histogram, from rollups or computed from raw latencies."""
    out: dict[Key, Totals] = {}
    for seg in segments:
        untagged = seg.source == "daily_tags" and not scope.f.tags
        if untagged and any(dim.startswith("tag:") for dim in dims):
            part = _daily_with_untagged(conn, scope, seg, dims)
        else:
            part = _query(conn, scope, seg, dims, histogram)
        if histogram and seg.source == "raw" and part and not dims:
            hist = [0] * s.LATENCY_BUCKETS
            for latency, count in latency_counts(conn, scope, seg.start, seg.end).items():
                hist[latency_bucket(latency)] += count
            for totals in part.values():
                totals.histogram = hist
        for key, totals in part.items():
            merge(out, key, totals)
    return out


def latency_counts(
    conn: Connection, scope: Scope, start: dt.datetime, end: dt.datetime
) -> dict[int, int]:
    """How many filtered raw rows in ``[start, end)`` took each latency (ms)."""
    c = s.llm_requests.c
    stmt = (
        sa.select(c.latency_ms, sa.func.count())
        .where(*raw_where(scope, start, end))
        .group_by(c.latency_ms)
    )
    return {int(latency): int(count) for latency, count in conn.execute(stmt)}
