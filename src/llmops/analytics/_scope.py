"""Which table answers a query, and the WHERE clauses that apply the filters to each table.

A query is cut into time *segments*, each answered by one source:

- ``daily`` (``llm_rollup_daily``) and ``hourly`` (``llm_rollup_hourly``), which share one key,
  when every filter and grouping maps to its key columns: environment, config, variant, provider,
  model, endpoint and status *classes* (``success``, ``error``, ``4xx``…, or a code that is its own
  class such as 499); groupings by those or by hour/day. No tag, streaming, latency or cost
  filter. Daily rows answer the whole UTC days of the range (unless grouped by hour), hourly rows
  the whole hours around them, raw rows the partial hours at the edges.
- ``tag_daily`` and ``tag_hourly`` (``llm_rollup_tag_daily``/``_hourly``, keyed by bucket, tag key
  and value only) when exactly one tag key is involved (filtered, grouped by, or both), that key is
  in ``indexed_tags``, and nothing else is filtered or grouped but time: a breakdown by tenant or
  one tenant's summary. They keep a latency histogram and count rows without the key, so they
  answer like the hourly/daily pair (whole days, whole hours, raw partial hours).
- ``daily_tags`` (``llm_rollup_daily_tags``) when exactly one indexed tag key is involved and
  everything else maps to its keys (as hourly, minus endpoint; time only by day): a tenant's cost
  per model.
- ``raw`` (``llm_requests``) otherwise, and for the partial hours (days) at the edges of a range
  that is not aligned: rollups answer the whole hours (days) in the middle and raw rows the rest,
  so ``range=30d`` at 10:37 reads 29 days of daily rows, 23 hours of hourly rows and two partial
  hours of raw rows.

Counters and sums are additive, so segments combine exactly; ``force="raw"`` reads only raw rows
and gives the same counters (tests compare the two).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement

from llmops.analytics import dialect
from llmops.analytics.filters import Filters
from llmops.analytics.lookups import resolve_ids
from llmops.observability.rollups import status_class
from llmops.store import schema as s

Source = Literal["raw", "hourly", "daily", "daily_tags", "tag_hourly", "tag_daily"]
Force = Literal["raw", "rollup"] | None

HOURLY_DIMS = frozenset(
    ("model", "provider", "config", "variant", "environment", "endpoint", "status")
)
DAILY_DIMS = HOURLY_DIMS - {"endpoint"}
# Sources with a latency histogram, from which percentiles are estimated.
HISTOGRAM_SOURCES = frozenset(("hourly", "daily", "tag_hourly", "tag_daily"))
_TAG_VALUE_MAX = 512
_STEP = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}


class NotFromRollups(ValueError):
    """``force="rollup"`` was asked of a query that the rollups cannot answer."""


@dataclass(frozen=True, slots=True)
class Segment:
    source: Source
    start: dt.datetime
    end: dt.datetime
    tag_key: str | None = None  # the tag key a daily_tags or tag_* segment reads


@dataclass(frozen=True, slots=True)
class Scope:
    """Filters with entity names resolved to ids, bound to one connection's dialect."""

    f: Filters
    dialect: str
    environment_ids: frozenset[uuid.UUID] | None
    config_ids: frozenset[uuid.UUID] | None
    variant_ids: frozenset[uuid.UUID] | None
    tag_since: Mapping[str, dt.datetime]  # llm_tag_rollup_keys

    def tag_rollups(self, indexed_tags: Collection[str]) -> dict[str, dt.datetime]:
        """The keys of ``indexed_tags`` (the settings) that have tag rollups, and from when."""
        return {key: self.tag_since[key] for key in indexed_tags if key in self.tag_since}

    @property
    def tag_key(self) -> str | None:
        """The one tag key filtered on, if exactly one is."""
        return self.f.tags[0][0] if len(self.f.tags) == 1 else None


def open_scope(conn: Connection, f: Filters) -> Scope:
    def ids(entity: Literal["environment", "config", "variant"], values: Collection[str]) -> Any:
        return resolve_ids(conn, entity, values, f.start, f.end) if values else None

    return Scope(
        f=f,
        dialect=conn.dialect.name,
        environment_ids=ids("environment", f.environments),
        config_ids=ids("config", f.configs),
        variant_ids=ids("variant", f.variants),
        tag_since={
            key: dialect.as_utc(since)
            for key, since in conn.execute(sa.select(s.llm_tag_rollup_keys))
        },
    )


def floor(moment: dt.datetime, unit: str) -> dt.datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == "day" else moment


def ceil(moment: dt.datetime, unit: str) -> dt.datetime:
    down = floor(moment, unit)
    return down if down == moment else down + _STEP[unit]


# --- planning ---------------------------------------------------------------------------------


def _common_blocker(f: Filters) -> str | None:
    if f.streaming is not None:
        return "a streaming filter"
    if (f.min_latency, f.max_latency, f.min_cost, f.max_cost) != (None, None, None, None):
        return "a latency or cost range"
    for word in f.statuses:
        if word.isdigit() and status_class(int(word)) != word:
            return f"status {word} (rollups keep status classes)"
    return None


def _hourly_blocker(f: Filters, dims: Sequence[str]) -> str | None:
    if f.tags:
        return "a tag filter"
    for dim in dims:
        if dim not in HOURLY_DIMS and dim not in ("time:hour", "time:day"):
            return f"grouping by {dim}"
    return _common_blocker(f)


def _tag_keys(f: Filters, dims: Sequence[str]) -> list[str]:
    return sorted({key for key, _ in f.tags} | {d[4:] for d in dims if d.startswith("tag:")})


def _tag_key_blocker(f: Filters, dims: Sequence[str], indexed_tags: Collection[str]) -> str | None:
    keys = _tag_keys(f, dims)
    if len(keys) != 1:
        return "more than one tag key" if keys else "no tag key"
    (key,) = keys
    if key not in indexed_tags:
        return f"tag {key!r}, which is not indexed"
    if "\x00" in key or len(key) > 64:
        return "a tag key that rollups cannot store"
    values = [v for _, vs in f.tags for v in vs]
    if any(len(v) > _TAG_VALUE_MAX or "\x00" in v for v in values):
        return "a tag value that rollups cannot store"
    return None


def _tag_totals_blocker(
    f: Filters, dims: Sequence[str], indexed_tags: Collection[str]
) -> str | None:
    if (blocker := _tag_key_blocker(f, dims, indexed_tags)) is not None:
        return blocker
    keyed = (f.environments, f.configs, f.variants, f.providers, f.models, f.endpoints, f.statuses)
    if any(keyed):
        return "a filter besides the tag"
    for dim in dims:
        if not (dim.startswith(("time:", "tag:"))):
            return f"grouping by {dim}"
    return _common_blocker(f)


def _daily_blocker(f: Filters, dims: Sequence[str], indexed_tags: Collection[str]) -> str | None:
    if (blocker := _tag_key_blocker(f, dims, indexed_tags)) is not None:
        return blocker
    (key,) = _tag_keys(f, dims)
    if f.endpoints:
        return "an endpoint filter"
    for dim in dims:
        if dim not in DAILY_DIMS and dim not in ("time:day", f"tag:{key}"):
            return f"grouping by {dim}"
    return _common_blocker(f)


def plan(
    f: Filters, dims: Sequence[str], indexed_tags: Mapping[str, dt.datetime], force: Force
) -> list[Segment]:
    """The segments that answer a query grouped by ``dims`` (see the module docstring);
    ``indexed_tags`` maps each tag key with tag rollups to the time they count every row from
    (``Scope.tag_rollups``): earlier rows are read raw."""
    whole = [Segment("raw", f.start, f.end)]
    if force == "raw":
        return whole
    hourly = _hourly_blocker(f, dims)
    if hourly is None:
        return _hourly_plan(f.start, f.end, dims, "hourly", "daily")
    if _tag_totals_blocker(f, dims, indexed_tags) is None:
        key = _tag_keys(f, dims)[0]
        start = min(max(f.start, indexed_tags[key]), f.end)
        tail = _hourly_plan(start, f.end, dims, "tag_hourly", "tag_daily", key)
        return _cut([Segment("raw", f.start, start), *tail])
    if (daily := _daily_blocker(f, dims, indexed_tags)) is not None:
        if force == "rollup":
            raise NotFromRollups(f"rollups cannot answer {hourly}; daily tag rollups: {daily}")
        return whole
    key = _tag_keys(f, dims)[0]
    low, high = ceil(max(f.start, indexed_tags[key]), "day"), floor(f.end, "day")
    if low >= high:
        return whole
    return _cut(
        [
            Segment("raw", f.start, low),
            Segment("daily_tags", low, high, key),
            Segment("raw", high, f.end),
        ]
    )


def _hourly_plan(
    start: dt.datetime,
    end: dt.datetime,
    dims: Sequence[str],
    hourly: Source,
    daily: Source,
    tag_key: str | None = None,
) -> list[Segment]:
    """Raw rows for the partial hours at the edges, ``hourly`` rollups for the whole hours
    outside whole days, ``daily`` rollups for the whole days (not when grouped by hour)."""
    low, high = ceil(start, "hour"), floor(end, "hour")
    if low >= high:
        return _cut([Segment("raw", start, end)])
    day_low, day_high = ceil(low, "day"), floor(high, "day")
    if "time:hour" in dims or day_low >= day_high:
        day_low = day_high = high
    return _cut(
        [
            Segment("raw", start, low),
            Segment(hourly, low, day_low, tag_key),
            Segment(daily, day_low, day_high, tag_key),
            Segment(hourly, day_high, high, tag_key),
            Segment("raw", high, end),
        ]
    )


def _cut(segments: Sequence[Segment]) -> list[Segment]:
    """``segments`` without the empty ones."""
    return [seg for seg in segments if seg.start < seg.end]


def describe(segments: Sequence[Segment]) -> str:
    """``raw``, ``hourly``, ``daily``, ``daily_tags``, ``tag_daily``, ``tag_hourly`` or a mix such
    as ``daily+hourly+raw``: which tables answered."""
    rollups = sorted({seg.source for seg in segments if seg.source != "raw"})
    raw = any(seg.source == "raw" for seg in segments)
    return "+".join([*rollups, *(["raw"] if raw else [])])


# --- WHERE clauses ----------------------------------------------------------------------------


def _ids_in(
    column: ColumnElement[Any], ids: frozenset[uuid.UUID], as_text: bool
) -> ColumnElement[bool]:
    values: list[Any] = sorted(str(u) for u in ids) if as_text else sorted(ids)
    return column.in_(values) if values else sa.false()


def _raw_status(code: ColumnElement[int], word: str) -> ColumnElement[bool]:
    if word in ("success", "2xx"):
        return code.between(200, 299)
    if word == "error":
        return sa.not_(code.between(200, 299))
    if word == "4xx":
        return sa.and_(code.between(400, 499), code != 499)
    if word == "5xx":
        return code.between(500, 599)
    return code == int(word)


def _rollup_status(klass: ColumnElement[str], word: str) -> ColumnElement[bool]:
    if word in ("success", "2xx"):
        return klass == "2xx"
    if word == "error":
        return klass != "2xx"
    return klass == word


def raw_where(scope: Scope, start: dt.datetime, end: dt.datetime) -> list[ColumnElement[bool]]:
    """Conditions selecting the filtered ``llm_requests`` rows created in ``[start, end)``."""
    f, c = scope.f, s.llm_requests.c
    out: list[ColumnElement[bool]] = [c.created_at >= start, c.created_at < end]
    out += _key_where(scope, s.llm_requests, as_text=False)
    if f.statuses:
        out.append(sa.or_(*(_raw_status(c.status_code, w) for w in f.statuses)))
    if f.streaming is not None:
        out.append(c.is_streaming.is_(sa.true() if f.streaming else sa.false()))
    for key, values in f.tags:
        out.append(dialect.tag_in(scope.dialect, c.tags, key, values))
    bounds = ((c.latency_ms, f.min_latency, f.max_latency), (c.total_cost, f.min_cost, f.max_cost))
    for column, low, high in bounds:
        if low is not None:
            out.append(column >= low)
        if high is not None:
            out.append(column <= high)
    return out


def rollup_where(scope: Scope, seg: Segment) -> list[ColumnElement[bool]]:
    """Conditions selecting the rollup rows of a rollup segment."""
    f = scope.f
    table = rollup_table(seg)
    out: list[ColumnElement[bool]] = [table.c.bucket >= seg.start, table.c.bucket < seg.end]
    out += _key_where(scope, table, as_text=True)
    if seg.tag_key is not None:
        out.append(table.c.tag_key == seg.tag_key)
    if f.statuses:
        out.append(sa.or_(*(_rollup_status(table.c.status_class, w) for w in f.statuses)))
    for _key, values in f.tags:
        if "tagged" in table.c:
            out.append(table.c.tagged.is_(sa.true()))
        out.append(table.c.tag_value.in_(values))
    return out


def rollup_table(seg: Segment) -> sa.Table:
    """The table a rollup segment reads."""
    return _TABLES[seg.source]


_TABLES: dict[Source, sa.Table] = {
    "hourly": s.llm_rollup_hourly,
    "daily": s.llm_rollup_daily,
    "daily_tags": s.llm_rollup_daily_tags,
    "tag_hourly": s.llm_rollup_tag_hourly,
    "tag_daily": s.llm_rollup_tag_daily,
}


def _key_where(scope: Scope, table: sa.Table, as_text: bool) -> list[ColumnElement[bool]]:
    f, c = scope.f, table.c
    out: list[ColumnElement[bool]] = []
    for name, ids in (
        ("environment_id", scope.environment_ids),
        ("config_id", scope.config_ids),
        ("variant_id", scope.variant_ids),
    ):
        if ids is not None:
            out.append(_ids_in(c[name], ids, as_text))
    for name, values in (("provider", f.providers), ("model", f.models)):
        if values:
            out.append(c[name].in_(values))
    if f.endpoints and "endpoint" in c:
        out.append(c.endpoint.in_(f.endpoints))
    return out
