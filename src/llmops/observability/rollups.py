"""Rollups: the batch writer adds each flushed batch into aggregate rows, in the same transaction.

``write_rollups`` sums a batch of ``llm_requests`` rows in Python, then upserts one row per key
into ``llm_rollup_hourly`` (hour × environment × config × variant/version × provider × model ×
endpoint × status class, with a latency histogram), ``llm_rollup_daily`` (the same per UTC day),
``llm_rollup_daily_tags`` (day × indexed tag key/value × environment × config × variant ×
provider × model × status class), ``llm_rollup_tag_hourly`` / ``llm_rollup_tag_daily`` (hour or
day × indexed tag key × value, with a latency histogram; rows without the key are counted under
``tagged`` false) and ``llm_tag_values`` (every tag key/value seen). Upserts *add* to existing
counters, so rows written by several writer processes, or by several flushes within one hour,
add up.

Keys are sorted before they are written: concurrent writers on PostgreSQL then take row locks in
the same order and cannot deadlock on each other. Text keys are cut to their column's length and
stripped of NUL bytes (PostgreSQL rejects both), so a strange tag cannot fail a batch.

The histogram (``schema.LATENCY_COLUMNS``) has half-octave buckets: bucket 0 counts < 1 ms, bucket
k (1–39) counts [2^((k-1)/2), 2^(k/2)) ms and bucket 40 counts ≥ 2^19.5 ms. Summed over any range
of rollup rows, it gives percentiles through ``estimate_percentile`` (bucket width ≈ 41%, so
estimates are typically within a few percent, worst case within one bucket).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.observability.records import COLUMNS
from llmops.store import schema, upsert_insert, utc

_EDGES = schema.LATENCY_EDGES

# Additive counters, in schema order; `_contribution` yields one row's share in this order.
_COUNTS = schema.ROLLUP_COUNTERS
_SUMMED = _COUNTS[5:16]  # summed straight from the request columns of the same name
_NAMES = ("environment_name", "config_slug", "variant_name")
_ADDITIVE = frozenset((*_COUNTS, *schema.LATENCY_COLUMNS))


def latency_bucket(latency_ms: int) -> int:
    """The histogram bucket (0–40) that counts a request of ``latency_ms`` milliseconds."""
    return bisect.bisect_right(_EDGES, latency_ms)


def status_class(status_code: int) -> str:
    """``"2xx"``, ``"4xx"``, ``"5xx"``; ``"499"`` (the client went away) stays apart from 4xx;
    any other code (0 for a request that never got a status, 3xx…) is its own class."""
    if 200 <= status_code <= 299:
        return "2xx"
    if status_code == 499:
        return "499"
    if 400 <= status_code <= 499:
        return "4xx"
    if 500 <= status_code <= 599:
        return "5xx"
    return str(status_code)


def estimate_percentile(histogram: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (0 < q < 1) in ms of the latencies a histogram counts; None if empty.

    Interpolates linearly inside the bucket holding the q-th observation; the open-ended last
    bucket has no upper edge, so an estimate that falls there is its lower edge (2^19.5 ms).
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be between 0 and 1, got {q}")
    total = sum(histogram)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for k, count in enumerate(histogram):
        if count > 0 and seen + count >= rank:
            if k >= len(_EDGES):
                return _EDGES[-1]
            lower = 0.0 if k == 0 else _EDGES[k - 1]
            return lower + (_EDGES[k] - lower) * (rank - seen) / count
        seen += count
    raise AssertionError("unreachable: the histogram total was reached")


class _Totals:
    """The sums for one rollup key within one batch."""

    __slots__ = ("counts", "histogram", "latency_max", "latency_min", "names")

    def __init__(self, histogram: bool, names: bool = True):
        self.counts = [0] * len(_COUNTS)
        self.histogram = [0] * schema.LATENCY_BUCKETS if histogram else None
        self.latency_min: int | None = None
        self.latency_max: int | None = None
        self.names: dict[str, str | None] = dict.fromkeys(_NAMES) if histogram and names else {}

    def add(self, contribution: Sequence[int], latency: int, bucket: int) -> None:
        counts = self.counts
        for i, value in enumerate(contribution):
            counts[i] += value
        if self.latency_min is None or latency < self.latency_min:
            self.latency_min = latency
        if self.latency_max is None or latency > self.latency_max:
            self.latency_max = latency
        if self.histogram is not None:
            self.histogram[bucket] += 1

    def params(self, key: Mapping[str, Any]) -> dict[str, Any]:
        out = {**key, **dict(zip(_COUNTS, self.counts, strict=True)), **self.names}
        out["latency_min"] = self.latency_min
        out["latency_max"] = self.latency_max
        if self.histogram is not None:
            out.update(zip(schema.LATENCY_COLUMNS, self.histogram, strict=True))
        return out


def _contribution(row: Mapping[str, Any]) -> list[int]:
    ttft = row["ttft_ms"]
    return [
        1,
        int(row["status_code"] >= 400 or bool(row["error_type"])),
        int(row["prompt_tokens"] is not None and row["total_cost"] is None),
        int(row["usage_source"] == "missing"),
        int(bool(row["is_streaming"])),
        *(row[name] or 0 for name in _SUMMED),
        row["latency_ms"],
        ttft or 0,
        int(ttft is not None),
    ]


def _limit(table: sa.Table, column: str) -> int | None:
    length: int | None = getattr(table.c[column].type, "length", None)
    return length


_LIMITS = {
    name: _limit(schema.llm_rollup_daily_tags, name)
    for name in ("tag_key", "tag_value", "provider", "model")
} | {
    "endpoint": _limit(schema.llm_rollup_hourly, "endpoint"),
    **{name: _limit(schema.llm_rollup_hourly, name) for name in _NAMES},
}


def _text(value: Any, column: str) -> str:
    """A key value as stored: '' for None, no NUL bytes, cut to the column's length."""
    if value is None:
        return ""
    text = str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text[: _LIMITS[column]]


_IDS = ("environment_id", "config_id", "variant_id")
_HOURLY_KEY = (
    "bucket",
    "environment_id",
    "config_id",
    "variant_id",
    "variant_version",
    "provider",
    "model",
    "endpoint",
    "status_class",
)
_TAG_KEY = ("bucket", "tag_key", "tagged", "tag_value")
_DAILY_KEY = (
    "bucket",
    "tag_key",
    "tag_value",
    "environment_id",
    "config_id",
    "variant_id",
    "provider",
    "model",
    "status_class",
)


class _Batch:
    """A batch summed per rollup key, ready to be upserted."""

    def __init__(self, indexed_tags: Sequence[str]):
        self.indexed = tuple(dict.fromkeys(indexed_tags))
        self.hourly: dict[tuple[Any, ...], _Totals] = {}
        self.by_day: dict[tuple[Any, ...], _Totals] = {}  # the hourly key with bucket = day
        self.daily: dict[tuple[Any, ...], _Totals] = {}
        self.tag_hourly: dict[tuple[Any, ...], _Totals] = {}
        self.tag_daily: dict[tuple[Any, ...], _Totals] = {}
        self.tag_values: dict[tuple[str, str], list[Any]] = {}  # [requests, last_seen]

    def add(self, row: Mapping[str, Any], created: dt.datetime) -> None:
        """Add one row; rows must come oldest first so the latest display names win."""
        hour = created.replace(minute=0, second=0, microsecond=0)
        ids = tuple("" if row[c] is None else str(row[c]) for c in _IDS)
        provider, model = _text(row["provider"], "provider"), _text(row["model"], "model")
        status = status_class(row["status_code"])
        latency = row["latency_ms"]
        bucket = latency_bucket(latency)
        share = _contribution(row)

        version = row["variant_version"] or 0
        endpoint = _text(row["endpoint"], "endpoint")
        day = hour.replace(hour=0)
        rest = (*ids, version, provider, model, endpoint, status)
        for table, key in ((self.hourly, (hour, *rest)), (self.by_day, (day, *rest))):
            if (totals := table.get(key)) is None:
                totals = table[key] = _Totals(histogram=True)
            totals.add(share, latency, bucket)
            for name in _NAMES:
                if row.get(name) is not None:
                    totals.names[name] = _text(row[name], name)

        tags: Mapping[str, Any] = row["tags"] or {}
        for tag in self.indexed:
            name = _text(tag, "tag_key")
            tagged = tag in tags
            value = _text(tags[tag], "tag_value") if tagged else ""
            for table, key in (
                (self.tag_hourly, (hour, name, tagged, value)),
                (self.tag_daily, (day, name, tagged, value)),
            ):
                if (totals := table.get(key)) is None:
                    totals = table[key] = _Totals(histogram=True, names=False)
                totals.add(share, latency, bucket)
            if tagged:
                key = (day, name, value, *ids, provider, model, status)
                if (totals := self.daily.get(key)) is None:
                    totals = self.daily[key] = _Totals(histogram=False)
                totals.add(share, latency, bucket)
        for tag, value in tags.items():
            pair = (_text(tag, "tag_key"), _text(value, "tag_value"))
            seen = self.tag_values.setdefault(pair, [0, created])
            seen[0] += 1
            seen[1] = created

    def hourly_params(self) -> list[dict[str, Any]]:
        return _params(_HOURLY_KEY, self.hourly)

    def by_day_params(self) -> list[dict[str, Any]]:
        return _params(_HOURLY_KEY, self.by_day)

    def daily_params(self) -> list[dict[str, Any]]:
        return _params(_DAILY_KEY, self.daily)

    def tag_params(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Parameters for ``llm_rollup_tag_hourly`` and ``llm_rollup_tag_daily``."""
        return _params(_TAG_KEY, self.tag_hourly), _params(_TAG_KEY, self.tag_daily)

    def tag_value_params(self) -> list[dict[str, Any]]:
        return [
            {"tag_key": k, "tag_value": v, "requests": n, "last_seen": last}
            for (k, v), (n, last) in sorted(self.tag_values.items())
        ]


def _params(
    names: Sequence[str], totals: Mapping[tuple[Any, ...], _Totals]
) -> list[dict[str, Any]]:
    # Sorted: writers on PostgreSQL lock rows in one order, so they cannot deadlock each other.
    return [totals[key].params(dict(zip(names, key, strict=True))) for key in sorted(totals)]


def write_rollups(
    conn: Connection,
    rows: Sequence[Mapping[str, Any]],
    indexed_tags: Sequence[str],
    *,
    tag_values: bool = True,
) -> None:
    """Add ``rows`` (``llm_requests`` rows keyed by column name) to the rollup tables.

    Call it in the transaction that inserts the rows, so that rollups and rows never disagree.
    Every tag key/value goes to ``llm_tag_values``; only ``indexed_tags`` get tag rollups.
    """
    batch = _Batch(indexed_tags)
    ordered = sorted(((utc(r["created_at"]), r) for r in rows), key=lambda p: p[0])
    for created, row in ordered:
        batch.add(row, created)
    if ordered:
        _register(conn, batch.indexed, ordered[0][0], [r["id"] for r in rows])
    _upsert(conn, schema.llm_rollup_hourly, batch.hourly_params())
    _upsert(conn, schema.llm_rollup_daily, batch.by_day_params())
    _upsert(conn, schema.llm_rollup_daily_tags, batch.daily_params())
    tag_hourly, tag_daily = batch.tag_params()
    _upsert(conn, schema.llm_rollup_tag_hourly, tag_hourly)
    _upsert(conn, schema.llm_rollup_tag_daily, tag_daily)
    if tag_values:  # off when rebuilding rollups of rows already counted there
        _upsert(conn, schema.llm_tag_values, batch.tag_value_params())


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _register(
    conn: Connection, indexed: Sequence[str], oldest: dt.datetime, ids: Sequence[Any]
) -> None:
    """Keep ``llm_tag_rollup_keys`` to the keys indexed now, each with the time from which every
    request is counted in its tag rollups; queries read the rollups only from then on.

    A key indexed for the first time counts from the hour after this batch's oldest row: older
    rows were written without it (or, when the table holds no other row, from the beginning). A
    key no longer indexed is dropped, so that indexing it again starts afresh.
    """
    keys = schema.llm_tag_rollup_keys
    registered = set(conn.execute(sa.select(keys.c.tag_key)).scalars())
    wanted = {_text(tag, "tag_key") for tag in indexed}
    if stale := registered - wanted:
        conn.execute(sa.delete(keys).where(keys.c.tag_key.in_(sorted(stale))))
    if new := wanted - registered:
        t = schema.llm_requests
        others = conn.execute(sa.select(t.c.id).where(t.c.id.not_in(ids)).limit(1)).first()
        since = _EPOCH
        if others is not None:
            hour = oldest.replace(minute=0, second=0, microsecond=0)
            since = hour + dt.timedelta(hours=1)
        stmt = upsert_insert(conn.dialect.name, keys).on_conflict_do_nothing()
        conn.execute(stmt, [{"tag_key": key, "since": since} for key in sorted(new)])


def _upsert(conn: Connection, table: sa.Table, params: list[dict[str, Any]]) -> None:
    """One executemany INSERT … ON CONFLICT DO UPDATE that adds ``params`` to existing rows."""
    if not params:
        return
    conn.execute(_upsert_statement(conn.dialect.name, table, tuple(params[0])), params)


@functools.cache
def _upsert_statement(dialect: str, table: sa.Table, names: tuple[str, ...]) -> Any:
    # Built once per table and column set: constructing it per flush cost ~1.3 ms (bench/).
    stmt = upsert_insert(dialect, table)
    new, old = stmt.excluded, table.c
    update: dict[str, Any] = {}
    for column in table.c:
        name = column.name
        if column.primary_key or name not in names:
            continue
        if name in _ADDITIVE:
            update[name] = old[name] + new[name]
        elif name == "latency_min":
            # CASE rather than min()/LEAST: SQLite's min(a, NULL) is NULL, LEAST ignores NULLs.
            first = sa.or_(old[name].is_(None), new[name] < old[name])
            update[name] = sa.case((first, new[name]), else_=old[name])
        elif name in ("latency_max", "last_seen"):
            first = sa.or_(old[name].is_(None), new[name] > old[name])
            update[name] = sa.case((first, new[name]), else_=old[name])
        else:  # display names: the batch's latest, unless the batch had none
            update[name] = sa.func.coalesce(new[name], old[name])
    return stmt.on_conflict_do_update(index_elements=table.primary_key.columns, set_=update)


def write_request_rollups(
    conn: Connection, rows: Sequence[Sequence[Any]], indexed_tags: Sequence[str]
) -> None:
    """The batch writer's ``after`` hook: ``rows`` are llm_requests tuples in COLUMNS order."""
    write_rollups(conn, [dict(zip(COLUMNS, r, strict=True)) for r in rows], indexed_tags)
