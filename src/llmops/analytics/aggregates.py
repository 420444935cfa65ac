"""Aggregates: summary, time series, breakdown and cost by model, as plain dicts.

Each function is ``fn(conn, filters, …)``, run through ``store.run``. The keyword arguments
``indexed_tags`` (``settings.indexed_tag_keys``: tags with daily rollups over the whole queried
range) and ``force`` (``"raw"`` / ``"rollup"``, for tests) choose the tables; see ``_scope`` for
when rollups answer. Counters and sums are identical whichever tables answer. Latency
percentiles are exact (linear interpolation between ranks) when raw rows answer the whole range
or when daily tag rollups answer (they keep no histogram, so percentiles come from raw rows);
with hourly/daily rollups or tag totals they are estimated from the latency histogram (within
one half-octave bucket, typically a few percent). ``"percentiles"`` says which, ``"source"``
which tables answered.

Money is integer micro-dollars; averages and rates are floats.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Hashable, Sequence
from typing import Any, Literal, cast

from sqlalchemy import Connection

from llmops.analytics._scope import (
    HISTOGRAM_SOURCES,
    HOURLY_DIMS,
    Force,
    describe,
    floor,
    open_scope,
    plan,
)
from llmops.analytics._totals import Key, Totals, grouped_totals, latency_counts, merge
from llmops.analytics.filters import FilterError, Filters
from llmops.analytics.lookups import Entity, labels
from llmops.observability.rollups import estimate_percentile

Sort = Literal["cost", "requests", "tokens", "latency", "errors"]
SORTS = ("cost", "requests", "tokens", "latency", "errors")
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
_MAX_BUCKETS = 10_000
_STEP = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
_COST_PARTS = ("input_cost", "cached_cost", "cache_write_cost", "output_cost", "total_cost")
_TOKENS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _ratio(part: int, whole: int, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def _per_request(cost: int, requests: int) -> int | None:
    """Micro-dollars per request, rounded half up (money stays integer)."""
    return (2 * cost + requests) // (2 * requests) if requests else None


def check_dimension(by: str, param: str) -> str:
    """``by`` if it names a grouping (see ``breakdown``), else FilterError naming ``param``."""
    if by in HOURLY_DIMS:
        return by
    if by.startswith("tag:") and 0 < len(by) - 4 <= 64:
        return by
    allowed = ", ".join(sorted(HOURLY_DIMS))
    raise FilterError(param, f"{param} must be one of {allowed} or tag:<key>")


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise FilterError("limit", "limit must be between 1 and 1000")


# --- summary ----------------------------------------------------------------------------------


def _exact_percentile(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile of the latencies, interpolating between the two nearest ranks."""
    n = sum(counts.values())
    if n == 0:
        return None
    position = q * (n - 1)
    low_rank = int(position)
    high_rank = min(low_rank + 1, n - 1)
    low: int | None = None
    seen = 0
    for latency in sorted(counts):
        seen += counts[latency]
        if low is None and seen > low_rank:
            low = latency
        if low is not None and seen > high_rank:
            return low + (latency - low) * (position - low_rank)
    raise AssertionError("unreachable: the count total was reached")


def summary(
    conn: Connection,
    f: Filters,
    *,
    force: Force = None,
    indexed_tags: Collection[str] = (),
    percentiles: bool = True,
) -> dict[str, Any]:
    """Totals over the filtered requests: cost and its parts, requests, errors, success rate,
    tokens, latency (avg/min/max/p50/p95/p99), time to first token, unpriced and usage-missing
    counts. ``percentiles=False`` leaves the latency percentiles out (None), and their cost."""
    scope = open_scope(conn, f)
    segments = plan(f, (), scope.tag_rollups(indexed_tags), force)
    estimated = any(seg.source in HISTOGRAM_SOURCES for seg in segments)
    histogram = estimated and percentiles
    t = grouped_totals(conn, scope, segments, (), histogram=histogram).get((), Totals())
    requests = t["requests"]
    out: dict[str, Any] = {
        "from": f.start.isoformat(),
        "to": f.end.isoformat(),
        "requests": requests,
        "errors": t["errors"],
        "success_rate": _ratio(requests - t["errors"], requests),
        **{name: t[name] for name in _COST_PARTS},
        **{name: t[name] for name in _TOKENS},
        "unpriced": t["unpriced"],
        "usage_missing": t["usage_missing"],
        "streams": t["streams"],
        "latency_avg_ms": _ratio(t["latency_sum"], requests, 2),
        "latency_min_ms": t.latency_min,
        "latency_max_ms": t.latency_max,
        "ttft_avg_ms": _ratio(t["ttft_sum"], t["ttft_count"], 2),
    }
    if not percentiles:
        out.update({f"latency_{name}_ms": None for name in QUANTILES})
    elif estimated:
        for name, q in QUANTILES.items():
            value = estimate_percentile(t.histogram or [], q)
            out[f"latency_{name}_ms"] = None if value is None else round(value, 1)
    else:
        counts = latency_counts(conn, scope, f.start, f.end) if requests else {}
        for name, q in QUANTILES.items():
            value = _exact_percentile(counts, q)
            out[f"latency_{name}_ms"] = None if value is None else round(value, 1)
    out["percentiles"] = None if not percentiles else "histogram" if estimated else "exact"
    out["source"] = describe(segments)
    return out


# --- breakdown --------------------------------------------------------------------------------


def _metric(t: Totals, sort: str) -> float:
    if sort == "latency":
        return t["latency_sum"] / t["requests"] if t["requests"] else 0.0
    name = {"cost": "total_cost", "tokens": "total_tokens"}.get(sort, sort)
    return t[name]


def _ranked(groups: dict[Hashable, Totals], sort: str) -> list[tuple[Hashable, Totals]]:
    """Largest first; ties by key, "none" last, so the order never depends on the table."""
    return sorted(
        groups.items(), key=lambda kv: (-_metric(kv[1], sort), kv[0] is None, str(kv[0] or ""))
    )


def _row(key: Hashable, label: str, t: Totals, other: bool = False) -> dict[str, Any]:
    requests = t["requests"]
    return {
        "key": key,
        "label": label,
        "is_other": other,
        "requests": requests,
        "errors": t["errors"],
        "error_rate": _ratio(t["errors"], requests),
        "total_cost": t["total_cost"],
        "cost_per_request": _per_request(t["total_cost"], requests),
        "prompt_tokens": t["prompt_tokens"],
        "completion_tokens": t["completion_tokens"],
        "total_tokens": t["total_tokens"],
        "latency_avg_ms": _ratio(t["latency_sum"], requests, 2),
        "unpriced": t["unpriced"],
    }


def _labels(conn: Connection, f: Filters, by: str, keys: list[Hashable]) -> dict[Hashable, str]:
    out: dict[Hashable, str] = {None: "(none)"}
    if by in ("environment", "config", "variant"):
        texts = [str(k) for k in keys if k is not None]
        out.update(labels(conn, cast(Entity, by), texts, f.start, f.end))
    else:
        out.update({k: str(k) for k in keys if k is not None})
    return out


def breakdown(
    conn: Connection,
    f: Filters,
    by: str,
    sort: str = "cost",
    limit: int = 10,
    *,
    force: Force = None,
    indexed_tags: Collection[str] = (),
) -> dict[str, Any]:
    """Totals grouped ``by`` model, provider, config, variant, environment, endpoint, status
    (class) or ``tag:<key>``, largest first by ``sort``; the top ``limit`` rows, then one
    ``is_other`` row adding up the rest. Rows without the dimension have key None."""
    return breakdowns(conn, f, (by,), sort, limit, force=force, indexed_tags=indexed_tags)[0]


def breakdowns(
    conn: Connection,
    f: Filters,
    dims: Sequence[str],
    sort: str = "cost",
    limit: int = 10,
    *,
    force: Force = None,
    indexed_tags: Collection[str] = (),
) -> list[dict[str, Any]]:
    """``breakdown`` by each of ``dims``, from one grouped query (a filter bar's options)."""
    dims = tuple(check_dimension(by, "by") for by in dims)
    if sort not in SORTS:
        raise FilterError("sort", f"sort must be one of {', '.join(SORTS)}")
    _check_limit(limit)
    scope = open_scope(conn, f)
    segments = plan(f, dims, scope.tag_rollups(indexed_tags), force)
    grouped = grouped_totals(conn, scope, segments, dims)
    out = []
    for i, by in enumerate(dims):
        groups: dict[Hashable, Totals] = {}
        for key, t in grouped.items():
            merge(groups, key[i], t)
        ranked = _ranked(groups, sort)
        top, rest = ranked[:limit], ranked[limit:]
        names = _labels(conn, f, by, [key for key, _ in top])
        rows = [_row(key, names[key], t) for key, t in top]
        if rest:
            other = Totals()
            for _, t in rest:
                other.add(t)
            rows.append(_row(None, "Other", other, other=True))
        out.append({"by": by, "sort": sort, "rows": rows, "source": describe(segments)})
    return out


# --- time series ------------------------------------------------------------------------------


def _buckets(f: Filters, unit: str) -> list[dt.datetime]:
    first, last = floor(f.start, unit), floor(f.end - dt.timedelta(microseconds=1), unit)
    count = (last - first) // _STEP[unit] + 1
    if count > _MAX_BUCKETS:
        raise FilterError("bucket", f"{count} {unit}s is too many points: choose a longer bucket")
    return [first + i * _STEP[unit] for i in range(count)]


def _point(t: Totals | None) -> dict[str, Any]:
    t = t or Totals()
    return {
        "requests": t["requests"],
        "errors": t["errors"],
        "total_cost": t["total_cost"],
        "prompt_tokens": t["prompt_tokens"],
        "completion_tokens": t["completion_tokens"],
        "total_tokens": t["total_tokens"],
        "latency_avg_ms": _ratio(t["latency_sum"], t["requests"], 2),
    }


def timeseries(
    conn: Connection,
    f: Filters,
    bucket: str | None = None,
    split_by: str | None = None,
    *,
    limit: int = 10,
    force: Force = None,
    indexed_tags: Collection[str] = (),
) -> dict[str, Any]:
    """Totals per UTC hour or day, every bucket of the range present (zero-filled). ``bucket``
    None picks hours for ranges up to 48 h, else days. ``split_by`` (a ``breakdown`` dimension)
    adds per-point ``series`` values for the top ``limit`` keys by cost plus one "Other"."""
    unit = bucket or ("hour" if f.end - f.start <= dt.timedelta(hours=48) else "day")
    if unit not in ("hour", "day"):
        raise FilterError("bucket", "bucket must be hour or day")
    dims: tuple[str, ...] = (f"time:{unit}",)
    if split_by is not None:
        dims += (check_dimension(split_by, "split_by"),)
        _check_limit(limit)
    times = _buckets(f, unit)
    scope = open_scope(conn, f)
    segments = plan(f, dims, scope.tag_rollups(indexed_tags), force)
    groups = grouped_totals(conn, scope, segments, dims)
    per_time: dict[Key, Totals] = {}
    for key, t in groups.items():
        merge(per_time, key[:1], t)
    out: dict[str, Any] = {"bucket": unit, "source": describe(segments)}
    points = [{"time": at.isoformat(), **_point(per_time.get((at,)))} for at in times]
    if split_by is not None:
        out["series"], values = _series(conn, f, split_by, groups, times, limit)
        for point, row in zip(points, values, strict=True):
            point["series"] = row
    out["points"] = points
    return out


def _series(
    conn: Connection,
    f: Filters,
    by: str,
    groups: dict[Key, Totals],
    times: list[dt.datetime],
    limit: int,
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    overall: dict[Hashable, Totals] = {}
    for (_, key), t in groups.items():
        merge(overall, key, t)
    ranked = [key for key, _ in _ranked(overall, "cost")]
    top = ranked[:limit]
    slot = {key: i for i, key in enumerate(top)}
    names = _labels(conn, f, by, top)
    series = [{"key": key, "label": names[key], "is_other": False} for key in top]
    if len(ranked) > limit:
        series.append({"key": None, "label": "Other", "is_other": True})
    cells: dict[tuple[Hashable, int], Totals] = {}
    for (at, key), t in groups.items():
        merge(cells, (at, slot.get(key, limit)), t)
    values = [
        [
            {
                name: value
                for name, value in _point(cells.get((at, i))).items()
                if name in ("requests", "errors", "total_cost", "total_tokens")
            }
            for i in range(len(series))
        ]
        for at in times
    ]
    return series, values


# --- cost by model ----------------------------------------------------------------------------


def costs_by_model(
    conn: Connection,
    f: Filters,
    *,
    force: Force = None,
    indexed_tags: Collection[str] = (),
) -> dict[str, Any]:
    """Cost per (provider, model) with its parts and token counts, most expensive first, and
    the total: ``{"rows": [...], "total": {...}, "source"}``."""
    dims = ("provider", "model")
    scope = open_scope(conn, f)
    segments = plan(f, dims, scope.tag_rollups(indexed_tags), force)
    groups = grouped_totals(conn, scope, segments, dims)
    fields = ("requests", *_COST_PARTS, *_TOKENS, "unpriced", "usage_missing")
    total = Totals()
    rows: list[dict[str, Any]] = []
    for (provider, model), t in groups.items():
        total.add(t)
        rows.append({"provider": provider, "model": model, **{n: t[n] for n in fields}})
    rows.sort(
        key=lambda r: (
            -r["total_cost"],
            -r["requests"],
            *((r[n] is None, r[n] or "") for n in dims),
        )
    )
    return {
        "rows": rows,
        "total": {name: total[name] for name in fields},
        "source": describe(segments),
    }
