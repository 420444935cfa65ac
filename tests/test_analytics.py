"""Analytics queries on both backends: exact totals computed by hand from seeded rows, rollups
and raw rows giving identical counters, keyset pagination without duplicates or gaps, filters,
streamed export, and the tag dictionary.

Rows are seeded through the writer's path (``insert_rows`` with the rollup hook), so the rollups
are exactly what production writes.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import io
import json
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection

import llmops.analytics as analytics
from llmops.analytics import (
    FilterError,
    Filters,
    NotFromRollups,
    breakdown,
    breakdowns,
    costs_by_model,
    export,
    list_requests,
    parse_filters,
    request_detail,
    summary,
    tag_keys,
    tag_values,
    timeseries,
)
from llmops.observability.records import COLUMNS, RequestRecord
from llmops.observability.rollups import write_request_rollups
from llmops.observability.usage import Usage
from llmops.settings import Settings
from llmops.store import Store, open_store
from llmops.store import schema as s
from llmops.store.migrate import migrate

T = TypeVar("T")
UTC = dt.UTC
D0 = dt.datetime(2025, 3, 3, tzinfo=UTC)
D1, D2 = D0 + dt.timedelta(days=1), D0 + dt.timedelta(days=2)
NOW = D2 + dt.timedelta(hours=5)
INDEXED = ("tenantSlug", "feature")
H, M = dt.timedelta(hours=1), dt.timedelta(minutes=1)

PROD, STAGING = uuid.uuid4(), uuid.uuid4()
CHAT, SEARCH = uuid.uuid4(), uuid.uuid4()
DEFAULT, FAST = uuid.uuid4(), uuid.uuid4()


def rec(
    at: dt.datetime,
    *,
    env: tuple[uuid.UUID, str] | None = (PROD, "production"),
    route: str | None = "chat",
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    endpoint: str = "chat.completions",
    usage: tuple[int, int, int, int, int] | None = None,  # prompt, completion, cached, write, reas.
    costs: tuple[int, int, int, int] | None = None,  # input, cached, cache write, output
    latency: int = 100,
    ttft: int | None = None,
    status: int = 200,
    error: str | None = None,
    stream: bool = False,
    tags: dict[str, str] | None = None,
) -> RequestRecord:
    r = RequestRecord(id=uuid.uuid4(), created_at=at, endpoint=endpoint)
    if env is not None:
        r.environment_id, r.environment_name = env
    if route == "chat":
        r.config_id, r.config_slug, r.variant_id, r.variant_name = CHAT, "chat", DEFAULT, "default"
        r.variant_version = 1
    elif route == "search":
        r.config_id, r.config_slug, r.variant_id, r.variant_name = SEARCH, "search", FAST, "fast"
        r.variant_version = 3
    r.provider, r.model = provider, model
    if usage is not None:
        p, c, cached, write, reasoning = usage
        r.usage = Usage(p, c, p + c, cached, write, reasoning)
        r.usage_source = "provider"
    if costs is not None:
        r.input_cost, r.cached_cost, r.cache_write_cost, r.output_cost = costs
        r.price_source = "test"
    r.latency_ms, r.ttft_ms, r.status_code, r.error_type = latency, ttft, status, error
    r.is_streaming, r.tags = stream, tags or {}
    return r


def seed_records() -> dict[str, RequestRecord]:
    haiku: dict[str, Any] = dict(provider="anthropic", model="claude-3-5-haiku", route="search")
    staging = (STAGING, "staging")
    return {
        "r1": rec(D0 + 10 * H + 5 * M, env=(PROD, "prod"), usage=(100, 20, 10, 0, 0),
                  costs=(15, 1, 0, 12), latency=250,
                  tags={"tenantSlug": "acme", "feature": "chat"}),
        "r2": rec(D0 + 10 * H + 20 * M, env=(PROD, "prod"), usage=(200, 50, 0, 0, 0),
                  costs=(30, 0, 0, 30), latency=400, ttft=100, stream=True,
                  tags={"tenantSlug": "acme"}),
        "r3": rec(D0 + 10 * H + 40 * M, env=(PROD, "prod"), model="gpt-4o",
                  usage=(1000, 100, 0, 0, 0), costs=(2500, 0, 0, 1000), latency=1200,
                  tags={"tenantSlug": "globex", "feature": "search"}),
        "r4": rec(D0 + 11 * H, env=staging, latency=30, status=502, error="upstream_error",
                  tags={"tenantSlug": "acme"}),
        "r5": rec(D0 + 11 * H + 30 * M, **haiku, usage=(500, 100, 200, 100, 0),
                  costs=(160, 16, 100, 400), latency=800, ttft=300, stream=True,
                  tags={"tenantSlug": "initech", "feature": "search", "userId": "u1"}),
        "r6": rec(D0 + 11 * H + 30 * M, **haiku, usage=(50, 10, 0, 0, 0), latency=800,
                  tags={"tenantSlug": "initech"}),
        "r7": rec(D0 + 12 * H + 15 * M, env=None, route=None, endpoint="embeddings",
                  usage=(300, 0, 0, 0, 0), costs=(6, 0, 0, 0), latency=50),
        "r8": rec(D0 + 12 * H + 45 * M, latency=5, status=429, error="rate_limited",
                  tags={"tenantSlug": "globex"}),
        "r9": rec(D0 + 13 * H + 10 * M, usage=(100, 20, 10, 0, 0), costs=(15, 1, 0, 12),
                  latency=250, ttft=90, stream=True, error="stream_interrupted",
                  tags={"tenantSlug": "acme", "feature": "chat"}),
        "r10": rec(D1 - dt.timedelta(microseconds=1), env=staging, **haiku,
                   usage=(10, 5, 0, 0, 0), costs=(3, 0, 0, 20), latency=600,
                   tags={"tenantSlug": "acme"}),
        "r11": rec(D1, usage=(100, 20, 0, 0, 0), costs=(16, 0, 0, 12), latency=300,
                   tags={"tenantSlug": "acme", "feature": "chat"}),
        "r12": rec(D1 + 2 * H + 30 * M, model="gpt-4o", usage=(2000, 500, 0, 0, 50),
                   costs=(5000, 0, 0, 5000), latency=2500, ttft=400, stream=True, status=499,
                   tags={"tenantSlug": "globex", "feature": "chat"}),
        "r13": rec(D1 + 5 * H, latency=3, status=400, error="invalid_request",
                   tags={"feature": "chat"}),
        "r14": rec(D1 + 5 * H, **haiku, usage=(40, 8, 0, 0, 0), latency=120,
                   tags={"tenantSlug": "initech"}),
    }  # fmt: skip


RECS = seed_records()
NAMES = {str(r.id): name for name, r in RECS.items()}


# --- running ----------------------------------------------------------------------------------


def settings_for(database_url: str, tmp_path: Path) -> Settings:
    return Settings.load({}, database_url=database_url, data_dir=tmp_path)


async def _write(store: Store, records: Sequence[RequestRecord]) -> None:
    hook = functools.partial(write_request_rollups, indexed_tags=INDEXED)
    for start in range(0, len(records), 5):  # several batches, as the writer flushes them
        rows = [r.row() for r in records[start : start + 5]]
        await store.insert_rows(s.llm_requests, COLUMNS, rows, after=hook)


def seed(settings: Settings, records: Sequence[RequestRecord]) -> None:
    def entities(conn: Connection) -> None:
        conn.execute(
            s.environments.insert(),
            [{"id": PROD, "slug": "production", "name": "Production", "created_at": D0}],
        )

    async def go() -> None:
        store = open_store(settings)
        try:
            await store.run(migrate)
            await store.run(entities)
            await _write(store, records)
        finally:
            await store.close()

    asyncio.run(go())


def run_all(settings: Settings, fns: Sequence[Callable[[Connection], T]]) -> list[T]:
    async def go() -> list[T]:
        store = open_store(settings)
        try:
            return [await store.run(fn) for fn in fns]
        finally:
            await store.close()

    return asyncio.run(go())


def run(settings: Settings, fn: Callable[[Connection], T]) -> T:
    return run_all(settings, [fn])[0]


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Settings:
    settings = settings_for(database_url, tmp_path)
    seed(settings, list(RECS.values()))
    return settings


def flt(start: dt.datetime = D0, end: dt.datetime = D2, **params: str | list[str]) -> Filters:
    return parse_filters({"from": start.isoformat(), "to": end.isoformat(), **params}, NOW)


def names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [NAMES[row["id"]] for row in rows]


# --- exact totals -----------------------------------------------------------------------------

SUMMARY_ALL = {
    "requests": 14,
    "errors": 5,  # 502, 429, a broken stream that returned 200, 499, 400
    "success_rate": 0.6429,
    "input_cost": 7745,
    "cached_cost": 18,
    "cache_write_cost": 100,
    "output_cost": 6486,
    "total_cost": 14349,
    "prompt_tokens": 4400,
    "completion_tokens": 833,
    "total_tokens": 5233,
    "cached_tokens": 220,
    "cache_write_tokens": 100,
    "reasoning_tokens": 50,
    "unpriced": 2,
    "usage_missing": 3,
    "streams": 4,
    "latency_avg_ms": 522.0,
    "latency_min_ms": 3,
    "latency_max_ms": 2500,
    "ttft_avg_ms": 222.5,
}
EXACT_PERCENTILES = {"latency_p50_ms": 275.0, "latency_p95_ms": 1655.0, "latency_p99_ms": 2331.0}


def test_summary_totals_match_the_rows_on_raw_and_rollups(db: Settings) -> None:
    raw, rolled = run_all(
        db, [lambda c: summary(c, flt(), force="raw"), lambda c: summary(c, flt(), force="rollup")]
    )
    assert raw["source"] == "raw" and raw["percentiles"] == "exact"
    assert rolled["source"] == "daily" and rolled["percentiles"] == "histogram"
    for result in (raw, rolled):
        assert {k: result[k] for k in SUMMARY_ALL} == SUMMARY_ALL
    assert {k: raw[k] for k in EXACT_PERCENTILES} == EXACT_PERCENTILES
    for name, exact in EXACT_PERCENTILES.items():
        assert abs(rolled[name] - exact) / exact < 0.42  # one half-octave histogram bucket


def test_summary_without_percentiles_has_the_same_totals(db: Settings) -> None:
    for f in (flt(), flt(*UNALIGNED), flt(tag="tenantSlug=acme")):
        full, lean = run_all(
            db,
            [
                functools.partial(summary, f=f, indexed_tags=INDEXED),
                functools.partial(summary, f=f, indexed_tags=INDEXED, percentiles=False),
            ],
        )
        assert lean["percentiles"] is None and lean["latency_p50_ms"] is None
        assert full["latency_p50_ms"] is not None
        assert strip(lean) == strip(full)


def test_summary_of_an_empty_range(db: Settings) -> None:
    result = run(db, lambda c: summary(c, flt(D2, D2 + H)))
    assert result["requests"] == 0 and result["total_cost"] == 0
    assert result["success_rate"] is None and result["latency_p50_ms"] is None
    assert result["latency_min_ms"] is None and result["latency_avg_ms"] is None


def test_breakdown_by_model_with_other_row(db: Settings) -> None:
    result = run(db, lambda c: breakdown(c, flt(), "model", limit=2))
    assert result["source"] == "daily"
    assert result["rows"] == [
        {"key": "gpt-4o", "label": "gpt-4o", "is_other": False, "requests": 2, "errors": 1,
         "error_rate": 0.5, "total_cost": 13500, "cost_per_request": 6750, "prompt_tokens": 3000,
         "completion_tokens": 600, "total_tokens": 3600, "latency_avg_ms": 1850.0, "unpriced": 0},
        {"key": "claude-3-5-haiku", "label": "claude-3-5-haiku", "is_other": False, "requests": 4,
         "errors": 0, "error_rate": 0.0, "total_cost": 699, "cost_per_request": 175,
         "prompt_tokens": 600, "completion_tokens": 123, "total_tokens": 723,
         "latency_avg_ms": 580.0, "unpriced": 2},
        {"key": None, "label": "Other", "is_other": True, "requests": 8, "errors": 4,
         "error_rate": 0.5, "total_cost": 150, "cost_per_request": 19, "prompt_tokens": 800,
         "completion_tokens": 110, "total_tokens": 910, "latency_avg_ms": 161.0, "unpriced": 0},
    ]  # fmt: skip


def pick(rows: list[dict[str, Any]], *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(row[f] for f in fields) for row in rows]


def test_breakdowns_by_environment_status_tag_and_variant(db: Settings) -> None:
    env, status_req, status_cost, tenant, user, variant = run_all(
        db,
        [
            lambda c: breakdown(c, flt(), "environment", sort="requests"),
            lambda c: breakdown(c, flt(), "status", sort="requests"),
            lambda c: breakdown(c, flt(), "status", sort="cost"),
            lambda c: breakdown(c, flt(), "tag:tenantSlug", indexed_tags=INDEXED),
            lambda c: breakdown(c, flt(), "tag:userId", indexed_tags=INDEXED),
            lambda c: breakdown(c, flt(), "variant", sort="tokens"),
        ],
    )
    # The entity's slug labels production; staging is known only from the rows it logged.
    assert pick(env["rows"], "key", "label", "requests", "total_cost") == [
        (str(PROD), "production", 11, 14320),
        (str(STAGING), "staging", 2, 23),
        (None, "(none)", 1, 6),
    ]
    assert pick(status_req["rows"], "key", "requests", "errors") == [
        ("2xx", 10, 1),
        ("4xx", 2, 2),
        ("499", 1, 1),
        ("5xx", 1, 1),
    ]
    assert pick(status_cost["rows"], "key", "total_cost") == [
        ("499", 10000),
        ("2xx", 4349),
        ("4xx", 0),
        ("5xx", 0),
    ]
    assert tenant["source"] == "tag_daily"
    assert pick(tenant["rows"], "key", "requests", "total_cost", "errors") == [
        ("globex", 3, 13500, 2),
        ("initech", 3, 676, 0),
        ("acme", 6, 167, 2),
        (None, 2, 6, 1),  # rows without the tag: r7 and r13
    ]
    assert user["source"] == "raw"
    assert pick(user["rows"], "key", "requests", "total_cost") == [
        (None, 13, 13673),
        ("u1", 1, 676),
    ]
    assert pick(variant["rows"], "label", "total_tokens") == [
        ("chat/default", 4210),
        ("search/fast", 723),
        ("(none)", 300),
    ]


def test_several_breakdowns_from_one_query_equal_one_each(db: Settings) -> None:
    dims = ("environment", "config", "variant", "model")
    for f in (flt(), flt(*UNALIGNED), flt(tag="tenantSlug=acme")):
        together, *alone = run_all(
            db,
            [
                lambda c, f=f: breakdowns(c, f, dims, "requests", 2, indexed_tags=INDEXED),
                *(
                    functools.partial(
                        breakdown, f=f, by=by, sort="requests", limit=2, indexed_tags=INDEXED
                    )
                    for by in dims
                ),
            ],
        )
        assert [strip(r) for r in together] == [strip(r) for r in alone]
        assert [r["rows"] for r in together] != [[]] * 4


def test_costs_by_model(db: Settings) -> None:
    result = run(db, lambda c: costs_by_model(c, flt()))
    assert result["source"] == "daily"
    zero = {"cached_cost": 0, "cache_write_cost": 0, "cached_tokens": 0, "cache_write_tokens": 0}
    assert result["rows"] == [
        {"provider": "openai", "model": "gpt-4o", "requests": 2, **zero, "input_cost": 7500,
         "output_cost": 6000, "total_cost": 13500, "prompt_tokens": 3000,
         "completion_tokens": 600, "total_tokens": 3600, "reasoning_tokens": 50, "unpriced": 0,
         "usage_missing": 0},
        {"provider": "anthropic", "model": "claude-3-5-haiku", "requests": 4, "input_cost": 163,
         "cached_cost": 16, "cache_write_cost": 100, "output_cost": 420, "total_cost": 699,
         "prompt_tokens": 600, "completion_tokens": 123, "total_tokens": 723,
         "cached_tokens": 200, "cache_write_tokens": 100, "reasoning_tokens": 0, "unpriced": 2,
         "usage_missing": 0},
        {"provider": "openai", "model": "gpt-4o-mini", "requests": 8, "input_cost": 82,
         "cached_cost": 2, "cache_write_cost": 0, "output_cost": 66, "total_cost": 150,
         "prompt_tokens": 800, "completion_tokens": 110, "total_tokens": 910,
         "cached_tokens": 20, "cache_write_tokens": 0, "reasoning_tokens": 0, "unpriced": 0,
         "usage_missing": 3},
    ]  # fmt: skip
    assert result["total"]["total_cost"] == 14349
    assert result["total"]["requests"] == 14


def test_timeseries_hourly_daily_zero_filled_and_split(db: Settings) -> None:
    hours, days, split = run_all(
        db,
        [
            lambda c: timeseries(c, flt(D0 + 10 * H, D0 + 14 * H)),
            lambda c: timeseries(c, flt(D0, D0 + dt.timedelta(days=3))),
            lambda c: timeseries(c, flt(D0 + 10 * H, D0 + 14 * H), split_by="provider"),
        ],
    )
    assert hours["bucket"] == "hour"
    assert pick(hours["points"], "time", "requests", "total_cost", "errors", "total_tokens") == [
        ((D0 + 10 * H).isoformat(), 3, 3588, 0, 1470),
        ((D0 + 11 * H).isoformat(), 3, 676, 1, 660),
        ((D0 + 12 * H).isoformat(), 2, 6, 1, 300),
        ((D0 + 13 * H).isoformat(), 1, 28, 1, 120),
    ]
    assert days["bucket"] == "day"
    assert pick(days["points"], "time", "requests", "total_cost") == [
        (D0.isoformat(), 10, 4321),
        (D1.isoformat(), 4, 10028),
        (D2.isoformat(), 0, 0),
    ]
    assert [(x["key"], x["is_other"]) for x in split["series"]] == [
        ("openai", False),
        ("anthropic", False),
    ]
    cells = [[(v["requests"], v["total_cost"]) for v in p["series"]] for p in split["points"]]
    assert cells == [[(3, 3588), (0, 0)], [(1, 0), (2, 676)], [(2, 6), (0, 0)], [(1, 28), (0, 0)]]
    one = run(db, lambda c: timeseries(c, flt(D0, D2), "day", split_by="model", limit=1))
    assert [(x["key"], x["is_other"]) for x in one["series"]] == [("gpt-4o", False), (None, True)]
    assert [[v["requests"] for v in p["series"]] for p in one["points"]] == [[1, 9], [1, 3]]


def test_day_buckets_are_utc_whatever_the_session_time_zone(db: Settings) -> None:
    def query(conn: Connection) -> Any:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'America/New_York'")
        return timeseries(conn, flt(D0, D2), "day", force="raw"), list_requests(conn, flt())

    series, (rows, _) = run(db, query)
    assert pick(series["points"], "time", "requests") == [(D0.isoformat(), 10), (D1.isoformat(), 4)]
    assert rows[-1]["created_at"] == RECS["r1"].created_at.isoformat()


# --- rollups and raw rows agree ---------------------------------------------------------------

ALIGNED: list[dict[str, Any]] = [
    {},
    {"environment": "prod"},  # an old name: stands for the environment, all its rows
    {"environment": "Production", "config": "chat"},
    {"environment": str(STAGING)},
    {"provider": "openai", "model": ["gpt-4o-mini", "gpt-4o"]},
    {"status": "error"},
    {"status": "success"},
    {"status": ["4xx", "499"]},
    {"endpoint": "embeddings"},
    {"variant": "fast"},
    {"config": "nope"},
]
TAGGED: list[dict[str, Any]] = [
    {"tag": "tenantSlug=acme"},
    {"tag": ["tenantSlug=acme", "tenantSlug=globex"], "provider": "openai"},
    {"tag": "feature=chat", "status": "error"},
    {"tag": "tenantSlug=initech", "variant": "fast", "environment": "production"},
]
UNALIGNED = (D0 + 10 * H + 30 * M, D1 + 3 * H)


def strip(result: Any) -> Any:
    """A result without the fields that may differ between tables: which tables answered, and
    histogram-estimated percentiles (compared separately)."""
    if isinstance(result, dict):
        return {
            k: strip(v)
            for k, v in result.items()
            if k not in ("source", "percentiles") and not k.startswith("latency_p")
        }
    if isinstance(result, list):
        return [strip(v) for v in result]
    return result


def queries(f: Filters, dims: Sequence[str]) -> list[Callable[..., Any]]:
    out: list[Callable[..., Any]] = [
        functools.partial(summary, f=f),
        functools.partial(costs_by_model, f=f),
        functools.partial(timeseries, f=f, bucket="day"),
    ]
    for dim in dims:
        out.append(functools.partial(breakdown, f=f, by=dim, limit=2))
        out.append(functools.partial(breakdown, f=f, by=dim, sort="latency"))
        out.append(functools.partial(timeseries, f=f, bucket="day", split_by=dim, limit=1))
    return out


def compare(db: Settings, cases: list[tuple[Filters, Sequence[str]]], *sources: str) -> None:
    """Each query forced to raw rows and to rollups: identical but for the stripped fields."""
    fns: list[Callable[[Connection], Any]] = []
    for f, dims in cases:
        for query in queries(f, dims):
            for force in ("raw", "rollup"):
                fns.append(functools.partial(query, force=force, indexed_tags=INDEXED))
    results = run_all(db, fns)
    assert len(results) == len(fns)
    for i in range(0, len(results), 2):
        raw, rolled = results[i], results[i + 1]
        assert raw["source"] == "raw"
        assert rolled["source"] in sources
        assert strip(raw) == strip(rolled), fns[i]


def test_rollups_and_raw_rows_agree_on_aligned_ranges(db: Settings) -> None:
    dims = ("model", "provider", "config", "variant", "environment", "endpoint", "status")
    compare(db, [(flt(**params), dims) for params in ALIGNED], "daily")
    hourly = [functools.partial(timeseries, f=flt(**p), bucket="hour") for p in ALIGNED[:6]]
    pairs = run_all(
        db, [functools.partial(q, force=fr) for q in hourly for fr in ("raw", "rollup")]
    )
    for raw, rolled in zip(pairs[::2], pairs[1::2], strict=True):
        assert rolled["source"] == "hourly"  # daily rollups cannot split days into hours
        assert strip(raw) == strip(rolled)


def test_daily_tag_rollups_and_raw_rows_agree(db: Settings) -> None:
    dims = ("model", "provider", "config", "variant", "environment", "status")
    cases = [(flt(**params), dims) for params in TAGGED]
    cases.append((flt(**TAGGED[1]), ("tag:tenantSlug",)))
    compare(db, cases[1:], "daily_tags")
    # A tag filter alone: tag totals, except when grouped by another key (daily tag rollups).
    compare(db, cases[:1], "daily_tags", "tag_daily")


def test_tag_totals_and_raw_rows_agree(db: Settings) -> None:
    cases: list[tuple[Filters, Sequence[str]]] = [
        (flt(), ("tag:tenantSlug", "tag:feature")),  # summary, cost by model: daily rollups
        (flt(tag="tenantSlug=acme"), ("tag:tenantSlug",)),
        (flt(tag=["tenantSlug=acme", "tenantSlug=globex"]), ("tag:tenantSlug",)),
        (flt(tag="feature=chat"), ("tag:feature",)),
        (flt(tag="tenantSlug=nobody"), ("tag:tenantSlug",)),
    ]
    queries: list[Callable[..., Any]] = []
    for f, dims in cases:
        for dim in dims:
            queries.append(functools.partial(breakdown, f=f, by=dim))
            queries.append(functools.partial(timeseries, f=f, bucket="hour", split_by=dim))
        if f.tags:
            queries.append(functools.partial(summary, f=f))
            queries.append(functools.partial(timeseries, f=f, bucket="day"))
    fns = [
        functools.partial(query, force=force, indexed_tags=INDEXED)
        for query in queries
        for force in ("raw", "rollup")
    ]
    results = run_all(db, fns)
    for i in range(0, len(results), 2):
        raw, rolled = results[i], results[i + 1]
        assert raw["source"] == "raw"
        assert rolled["source"] in ("tag_daily", "tag_hourly"), fns[i]
        assert strip(raw) == strip(rolled), fns[i]


def test_tag_totals_estimate_percentiles_and_count_untagged_rows(db: Settings) -> None:
    raw, rolled, by_tenant = run_all(
        db,
        [
            lambda c: summary(c, flt(tag="tenantSlug=acme"), force="raw"),
            lambda c: summary(c, flt(tag="tenantSlug=acme"), indexed_tags=INDEXED),
            lambda c: breakdown(c, flt(), "tag:tenantSlug", sort="requests", indexed_tags=INDEXED),
        ],
    )
    assert raw["percentiles"] == "exact"
    assert (rolled["source"], rolled["percentiles"]) == ("tag_daily", "histogram")
    assert rolled["requests"] == raw["requests"] == 6
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        assert abs(rolled[name] - raw[name]) / raw[name] < 0.42  # one half-octave bucket
    # Rows without the tag are stored as such: the "(none)" row is read, not subtracted.
    assert pick(by_tenant["rows"], "key", "requests") == [
        ("acme", 6),
        ("globex", 3),
        ("initech", 3),
        (None, 2),
    ]


def test_partial_edges_come_from_raw_rows(db: Settings) -> None:
    dims = ("model", "environment", "status")
    compare(db, [(flt(*UNALIGNED, **params), dims) for params in ALIGNED[:6]], "hourly+raw")
    tagged = [(flt(UNALIGNED[0], D2, **params), dims) for params in TAGGED]
    compare(db, tagged, "daily_tags+raw", "tag_daily+tag_hourly+raw")
    by_tag = [(flt(*UNALIGNED, tag="tenantSlug=acme"), ("tag:tenantSlug",))]
    compare(db, by_tag, "tag_hourly+raw", "raw")  # cost by model: no whole day of tag rollups
    result = run(db, lambda c: summary(c, flt(*UNALIGNED)))
    assert result["source"] == "hourly+raw"
    # r3 (10:40 on day 0) … r12 (02:30 on day 1)
    assert (result["requests"], result["total_cost"]) == (10, 14349 - 28 - 60)


def extra_days() -> list[RequestRecord]:
    """Rows two days before D0 and on D2, at the edges of ``SEVERAL_DAYS`` and inside it."""
    day, s_ = dt.timedelta(days=1), dt.timedelta(seconds=1)
    haiku: dict[str, Any] = dict(provider="anthropic", model="claude-3-5-haiku", route="search")
    return [
        rec(D0 - 2 * day + 10 * H + 40 * M, usage=(10, 2, 0, 0, 0), costs=(4, 0, 0, 5),
            latency=70, tags={"tenantSlug": "acme"}),
        rec(D0 - 2 * day + 11 * H - s_, env=(STAGING, "staging"), latency=9, status=503,
            error="upstream_error", tags={"feature": "chat"}),
        rec(D0 - 2 * day + 15 * H + 5 * M, env=(STAGING, "staging"), status=502, latency=40,
            error="upstream_error", tags={"feature": "chat"}),
        rec(D0 - day + 3 * H, **haiku, usage=(70, 30, 5, 0, 0), costs=(7, 1, 0, 9), latency=650,
            ttft=210, stream=True, tags={"tenantSlug": "initech"}),
        rec(D0 - dt.timedelta(microseconds=1), model="gpt-4o", usage=(900, 90, 0, 0, 9),
            costs=(900, 0, 0, 900), latency=3100, status=499, tags={"tenantSlug": "globex"}),
        rec(D2 + 10 * M, usage=(60, 6, 0, 0, 0), costs=(6, 0, 0, 6), latency=180,
            tags={"tenantSlug": "globex", "feature": "search"}),
        rec(D2 + 2 * H - s_, env=None, route=None, endpoint="embeddings", latency=20, status=429,
            error="rate_limited"),
        rec(D2 + 2 * H + 10 * M, usage=(30, 3, 0, 0, 0), costs=(3, 0, 0, 3), latency=95,
            tags={"tenantSlug": "acme", "feature": "chat"}),
    ]  # fmt: skip


# Raw rows for [10:30, 11:00) two days before D0, hourly rollups for [11:00, midnight), daily
# rollups for the three whole days D0-1, D0 and D1, hourly for [D2, D2 02:00), raw for the rest.
SEVERAL_DAYS = (D0 - dt.timedelta(days=2) + 10 * H + 30 * M, D2 + 2 * H + 30 * M)


@pytest.fixture
def db_days(database_url: str, tmp_path: Path) -> Settings:
    settings = settings_for(database_url, tmp_path)
    seed(settings, [*RECS.values(), *extra_days()])
    return settings


def test_daily_rollups_answer_whole_days_between_hourly_and_raw_edges(db_days: Settings) -> None:
    dims = ("model", "provider", "config", "variant", "environment", "endpoint", "status")
    cases = [(flt(*SEVERAL_DAYS, **params), dims) for params in ALIGNED]
    compare(db_days, cases, "daily+hourly+raw")
    tag_dims = ("model", "provider", "config", "variant", "environment", "status")
    tagged = [(flt(*SEVERAL_DAYS, **params), tag_dims) for params in TAGGED]
    compare(db_days, tagged, "daily_tags+raw", "tag_daily+tag_hourly+raw")
    by_tag = [(flt(*SEVERAL_DAYS), ("tag:tenantSlug",))]  # summary, costs: daily; tag: tag totals
    compare(db_days, by_tag, "daily+hourly+raw", "tag_daily+tag_hourly+raw")
    hours = [
        functools.partial(timeseries, f=flt(*SEVERAL_DAYS, **p), bucket="hour") for p in ALIGNED
    ]
    pairs = run_all(
        db_days, [functools.partial(q, force=fr) for q in hours for fr in ("raw", "rollup")]
    )
    for raw, rolled in zip(pairs[::2], pairs[1::2], strict=True):
        assert rolled["source"] == "hourly+raw"
        assert strip(raw) == strip(rolled)
    total = run(db_days, lambda c: summary(c, flt(*SEVERAL_DAYS)))
    assert total["source"] == "daily+hourly+raw" and total["percentiles"] == "histogram"
    assert total["requests"] == 14 + 8
    assert total["total_cost"] == 14349 + 9 + 17 + 1800 + 12 + 6
    assert (total["latency_min_ms"], total["latency_max_ms"]) == (3, 3100)


def test_which_table_answers(db: Settings) -> None:
    def source(f: Filters, **kw: Any) -> Callable[[Connection], str]:
        return lambda c: str(summary(c, f, indexed_tags=INDEXED, **kw)["source"])

    found = run_all(
        db,
        [
            source(flt()),
            source(flt(tag="tenantSlug=acme")),
            source(flt(tag="userId=u1")),  # not an indexed tag
            source(flt(tag=["tenantSlug=acme", "feature=chat"])),  # two keys
            source(flt(status="429")),  # a code inside a class
            source(flt(status="499")),  # a class of its own
            source(flt(streaming="true")),
            source(flt(min_latency="10")),
            source(flt(D0 + 10 * H + M, D0 + 11 * H + 59 * M)),  # no whole hour
            source(flt(endpoint="embeddings", tag="tenantSlug=acme")),
            source(flt(model="gpt-4o", tag="tenantSlug=acme")),
        ],
    )
    assert found == [
        "daily",
        "tag_daily",
        "raw",
        "raw",
        "raw",
        "daily",
        "raw",
        "raw",
        "raw",
        "raw",
        "daily_tags",
    ]
    with pytest.raises(NotFromRollups):
        run(db, lambda c: summary(c, flt(streaming="true"), force="rollup"))
    with pytest.raises(NotFromRollups):
        run(db, lambda c: breakdown(c, flt(tag="tenantSlug=acme"), "endpoint", force="rollup"))


# --- filters ----------------------------------------------------------------------------------


def listed(db: Settings, f: Filters) -> set[str]:
    rows, cursor = run(db, lambda c: list_requests(c, f, limit=1000))
    assert cursor is None
    return set(names(rows))


def test_filters_select_the_right_rows(db: Settings) -> None:
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"tag": ["tenantSlug=acme", "feature=chat"]}, {"r1", "r9", "r11"}),
        ({"tag": ["tenantSlug=acme", "tenantSlug=globex"]},
         {"r1", "r2", "r3", "r4", "r8", "r9", "r10", "r11", "r12"}),
        ({"tag": ["tenantSlug=acme", "tenantSlug=globex", "feature=chat"]},
         {"r1", "r9", "r11", "r12"}),
        ({"tag": "tenantSlug=nobody"}, set()),
        ({"status": "429"}, {"r8"}),
        ({"status": "error"}, {"r4", "r8", "r12", "r13"}),
        ({"status": ["5xx", "400"]}, {"r4", "r13"}),
        ({"streaming": "true"}, {"r2", "r5", "r9", "r12"}),
        ({"streaming": "false", "provider": "anthropic"}, {"r6", "r10", "r14"}),
        ({"min_latency": "800", "max_latency": "1200"}, {"r3", "r5", "r6"}),
        ({"min_cost": "28", "max_cost": "676"}, {"r1", "r2", "r5", "r9", "r11"}),
        ({"environment": str(STAGING)}, {"r4", "r10"}),
        ({"environment": ["staging", str(uuid.uuid4())]}, {"r4", "r10"}),
        ({"config": str(SEARCH), "model": "claude-3-5-haiku"}, {"r5", "r6", "r10", "r14"}),
        ({"variant": "default", "environment": "staging"}, {"r4"}),
        ({"endpoint": "embeddings"}, {"r7"}),
        ({"model": "", "config": "nope"}, set()),
    ]  # fmt: skip
    for params, expected in cases:
        assert listed(db, flt(**params)) == expected, params


def test_relative_ranges_and_dates() -> None:
    now = dt.datetime(2025, 3, 4, 6, 0, 0, tzinfo=UTC)
    f = parse_filters({}, now)
    assert (f.start, f.end, f.range) == (now - dt.timedelta(days=7), now, "7d")
    f = parse_filters({"range": "15m"}, now)
    assert (f.start, f.end) == (now - 15 * M, now)
    f = parse_filters(
        {"range": ["3h"], "tag": ["b=2", "a=1", "a=0"], "status": ["ERROR", "429"]}, now
    )
    assert f.start == now - 3 * H
    assert f.tags == (("a", ("0", "1")), ("b", ("2",)))
    assert f.statuses == ("429", "error")
    f = parse_filters({"from": "2025-03-01", "to": "2025-03-02"}, now)
    assert (f.start, f.end) == (
        dt.datetime(2025, 3, 1, tzinfo=UTC),
        dt.datetime(2025, 3, 3, tzinfo=UTC),
    )
    f = parse_filters({"from": "2025-03-01T12:00:00+02:00", "to": "2025-03-01T12:30"}, now)
    assert f.start == dt.datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert f.end == dt.datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    assert parse_filters(dict(parse_filters({"range": "24h", "model": "m"}, now).to_params()), now)
    again = parse_filters({"from": "2025-03-01"}, now)
    assert again.end == now and again.range is None


def test_relative_range_selects_recent_rows(db: Settings) -> None:
    now = D1 + 6 * H
    assert listed(db, parse_filters({"range": "3h"}, now)) == {"r13", "r14"}
    assert len(listed(db, parse_filters({"range": "24h"}, now))) == 14
    assert listed(db, parse_filters({"range": "15m"}, D0 + 10 * H + 21 * M)) == {"r2"}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-13-01"}, "to"),
        ({"range": "7x"}, "range"),
        ({"range": "0d"}, "range"),
        ({"range": "7d", "from": "2025-03-01"}, "range"),
        ({"range": ["7d", "1d"]}, "range"),
        ({"from": "2025-03-02", "to": "2025-03-01"}, "from"),
        ({"status": "teapot"}, "status"),
        ({"status": "1000"}, "status"),
        ({"tag": "tenantSlug"}, "tag"),
        ({"tag": "=x"}, "tag"),
        ({"min_cost": "-1"}, "min_cost"),
        ({"max_latency": "1.5"}, "max_latency"),
        ({"min_latency": "10", "max_latency": "5"}, "min_latency"),
        ({"streaming": "maybe"}, "streaming"),
    ],
)
def test_bad_filters_name_the_parameter(params: dict[str, str | list[str]], param: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filters(params, NOW)
    assert info.value.param == param
    assert info.value.status == 400


def test_bad_query_arguments_name_the_parameter(db: Settings) -> None:
    bad: list[tuple[Callable[[Connection], Any], str]] = [
        (lambda c: breakdown(c, flt(), "colour"), "by"),
        (lambda c: breakdown(c, flt(), "model", sort="vibes"), "sort"),
        (lambda c: breakdown(c, flt(), "model", limit=0), "limit"),
        (lambda c: timeseries(c, flt(), "week"), "bucket"),
        (lambda c: timeseries(c, flt(D0 - dt.timedelta(days=900)), "hour"), "bucket"),
        (lambda c: timeseries(c, flt(), split_by="tag:"), "split_by"),
        (lambda c: list_requests(c, flt(), sort="name"), "sort"),
        (lambda c: list_requests(c, flt(), direction="up"), "direction"),
        (lambda c: list_requests(c, flt(), limit=5000), "limit"),
        (lambda c: list_requests(c, flt(), cursor="not a cursor"), "cursor"),
        (lambda c: tag_values(c, "tenantSlug", limit=0), "limit"),
    ]
    for fn, param in bad:
        with pytest.raises(FilterError) as info:
            run(db, fn)
        assert info.value.param == param
    _, cursor = run(db, lambda c: list_requests(c, flt(), sort="cost", limit=2))
    assert cursor is not None
    with pytest.raises(FilterError):  # a cursor from another sort order
        run(db, lambda c: list_requests(c, flt(), sort="latency", cursor=cursor))


# --- request list and detail ------------------------------------------------------------------


def tie_records(count: int = 37) -> list[RequestRecord]:
    """Rows with many equal times, costs, latencies and token counts, some without cost."""
    rng = random.Random(7)
    out = []
    for _ in range(count):
        priced = rng.random() < 0.7
        used = rng.random() < 0.8
        out.append(
            rec(
                D0 + rng.choice([0, 1, 2]) * M,
                usage=(rng.choice([10, 20]), 5, 0, 0, 0) if used else None,
                costs=(rng.choice([0, 10, 20]), 0, 0, 5) if priced else None,
                latency=rng.choice([100, 200, 300]),
                tags={"n": str(rng.randint(0, 3))},
            )
        )
    return out


def expected_order(records: list[RequestRecord], sort: str, direction: str) -> list[str]:
    column = {"time": "created_at", "cost": "total_cost", "latency": "latency_ms"}.get(sort)
    rows = [dict(zip(COLUMNS, r.row(), strict=True)) for r in records]
    name = column or "total_tokens"
    present = sorted(
        (r for r in rows if r[name] is not None),
        key=lambda r: (r[name], r["id"]),
        reverse=direction == "desc",
    )
    missing = sorted(
        (r for r in rows if r[name] is None), key=lambda r: r["id"], reverse=direction == "desc"
    )
    return [str(r["id"]) for r in present + missing]


def test_keyset_pages_walk_every_row_once_in_order(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    records = tie_records()
    seed(settings, records)
    f = flt()
    for sort in ("time", "cost", "latency", "tokens"):
        for direction in ("desc", "asc"):
            for limit in (1, 4, 37, 50):
                seen: list[str] = []
                cursor: str | None = None
                pages = 0
                while True:
                    page = functools.partial(
                        list_requests, f=f, sort=sort, direction=direction, limit=limit,
                        cursor=cursor,
                    )  # fmt: skip
                    rows, cursor = run(settings, page)
                    pages += 1
                    assert len(rows) <= limit
                    seen += [row["id"] for row in rows]
                    if cursor is None:
                        break
                assert seen == expected_order(records, sort, direction), (sort, direction, limit)
                assert pages == max(1, -(-len(records) // limit))


def test_request_list_rows_and_detail(db: Settings) -> None:
    r3 = RECS["r3"]

    def add_body(conn: Connection) -> None:
        conn.execute(
            s.llm_request_bodies.insert(),
            [{"request_id": r3.id, "created_at": r3.created_at, "request_body": '{"a": 1}',
              "response_body": None, "truncated": True}],
        )  # fmt: skip

    run(db, add_body)
    rows, cursor = run(db, lambda c: list_requests(c, flt(), limit=3))
    assert names(rows) == ["r14", "r13", "r12"] or names(rows) == ["r13", "r14", "r12"]
    assert cursor is not None
    first = rows[2]
    assert first["created_at"] == (D1 + 2 * H + 30 * M).isoformat()
    assert first["tags"] == {"tenantSlug": "globex", "feature": "chat"}
    assert first["is_streaming"] is True and first["total_cost"] == 10000
    detail, body, missing, bad = run_all(
        db,
        [
            lambda c: request_detail(c, str(RECS["r5"].id)),
            lambda c: request_detail(c, r3.id),
            lambda c: request_detail(c, str(uuid.uuid4())),
            lambda c: request_detail(c, "not-a-uuid"),
        ],
    )
    assert detail is not None and body is not None
    assert detail["id"] == str(RECS["r5"].id) and detail["body"] is None
    assert detail["environment_id"] == str(PROD) and detail["variant_version"] == 3
    assert (detail["cached_tokens"], detail["cache_write_cost"]) == (200, 100)
    assert detail["ttft_ms"] == 300
    assert body["body"] == {"request_body": '{"a": 1}', "response_body": None, "truncated": True}
    assert missing is None and bad is None


def test_tag_keys_that_json_paths_cannot_spell(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    odd = [
        rec(D0, tags={"a.b": "dot", 'q"k': "quote", "$x": "dollar"}),
        rec(D0, tags={"a": "plain", "b": "x"}, costs=(1, 0, 0, 0)),
    ]
    seed(settings, odd)
    for key, value in (("a.b", "dot"), ('q"k', "quote"), ("$x", "dollar"), ("a", "plain")):
        found, _ = run(settings, lambda c, key=key, value=value: list_requests(
            c, flt(tag=f"{key}={value}")
        ))  # fmt: skip
        assert [row["tags"][key] for row in found] == [value]
        rows = run(settings, lambda c, key=key: breakdown(c, flt(), f"tag:{key}", sort="requests"))
        assert pick(rows["rows"], "key", "requests") == [(value, 1), (None, 1)], key


# --- tags -------------------------------------------------------------------------------------


def test_tag_keys_and_values(db: Settings) -> None:
    keys, values, prefixed, top, none = run_all(
        db,
        [
            tag_keys,
            lambda c: tag_values(c, "tenantSlug"),
            lambda c: tag_values(c, "tenantSlug", prefix="G"),
            lambda c: tag_values(c, "tenantSlug", limit=1),
            lambda c: tag_values(c, "tenantSlug", prefix="%"),
        ],
    )
    assert keys == ["tenantSlug", "feature", "userId"]
    assert [(v["value"], v["requests"]) for v in values] == [
        ("acme", 6),
        ("globex", 3),
        ("initech", 3),
    ]
    assert values[0]["last_seen"] == RECS["r11"].created_at.isoformat()
    assert [v["value"] for v in prefixed] == ["globex"]
    assert [v["value"] for v in top] == ["acme"]
    assert none == []


# --- export -----------------------------------------------------------------------------------


class CountingStore:
    """A store that counts its transactions and the rows each one returned."""

    def __init__(self, store: Store):
        self.store = store
        self.pages: list[int] = []

    async def run(self, fn: Callable[[Connection], T]) -> T:
        result = await self.store.run(fn)
        if isinstance(result, tuple):
            self.pages.append(len(result[0]))
        return result


def collect(
    settings: Settings, f: Filters, fmt: str, chunk_rows: int
) -> tuple[list[bytes], list[int]]:
    async def go() -> tuple[list[bytes], list[int]]:
        store = open_store(settings)
        counting = CountingStore(store)
        try:
            chunks = [c async for c in export(counting, f, fmt, chunk_rows=chunk_rows)]  # type: ignore[arg-type]
        finally:
            await store.close()
        return chunks, counting.pages

    return asyncio.run(go())


def test_export_streams_every_row_in_bounded_chunks(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    records = tie_records()
    seed(settings, records)
    ids = {str(r.id) for r in records}
    by_id = {str(r.id): r for r in records}

    chunks, pages = collect(settings, flt(), "csv", 5)
    assert pages == [5] * 7 + [2] and len(chunks) == 8
    table = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert {row["id"] for row in table} == ids and len(table) == len(records)
    assert chunks[0].startswith(b"id,created_at,")
    assert not chunks[1].startswith(b"id,")
    for row in table:
        r = by_id[row["id"]]
        assert json.loads(row["tags"]) == r.tags
        assert row["is_streaming"] == "false"
        if r.total_cost is None:
            assert row["total_cost"] == "" and row["total_cost_usd"] == ""
        else:
            assert int(row["total_cost"]) == r.total_cost
            assert row["total_cost_usd"] == f"0.{r.total_cost:06d}"

    chunks, pages = collect(settings, flt(), "jsonl", 10)
    assert pages == [10, 10, 10, 7] and len(chunks) == 4
    lines = [json.loads(line) for line in b"".join(chunks).splitlines()]
    assert [line["id"] for line in lines] == expected_order(records, "time", "desc")
    assert all(isinstance(line["tags"], dict) for line in lines)

    chunks, _ = collect(settings, flt(tag="n=nobody"), "csv", 5)
    assert len(chunks) == 1 and chunks[0].count(b"\r\n") == 1  # the header alone
    assert collect(settings, flt(tag="n=nobody"), "jsonl", 5)[0] == []
    with pytest.raises(FilterError) as info:
        export(CountingStore(None), flt(), "xml")  # type: ignore[arg-type]
    assert info.value.param == "format"


def test_public_names() -> None:
    assert sorted(analytics.__all__) == analytics.__all__
    for name in analytics.__all__:
        assert getattr(analytics, name) is not None
