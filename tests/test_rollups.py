"""Rollups add each batch into hourly, daily, daily-tag and tag-value rows that match the raw
rows, on both backends; the latency histogram estimates percentiles."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.analytics import breakdown, parse_filters, summary, timeseries
from llmops.cli import run_in_store
from llmops.observability.records import COLUMNS
from llmops.observability.reprice import rebuild_rollups, rebuild_rollups_and_keys
from llmops.observability.rollups import (
    estimate_percentile,
    latency_bucket,
    status_class,
    write_rollups,
)
from llmops.settings import Settings
from llmops.store import schema as s
from llmops.store.migrations import m0005_daily_rollup, m0006_tag_totals

UTC = dt.UTC
HOUR = dt.datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
ENV, CONFIG, VARIANT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
OTHER_VARIANT = uuid.uuid4()
INDEXED = ["tenantSlug", "team"]

HOURLY_KEY = (
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
DAILY_KEY = (
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
TAG_KEY = ("bucket", "tag_key", "tagged", "tag_value")
SUMMED = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "input_cost",
    "cached_cost",
    "cache_write_cost",
    "output_cost",
    "total_cost",
)
CLASSES = {200: "2xx", 201: "2xx", 400: "4xx", 429: "4xx", 499: "499", 500: "5xx", 502: "5xx"}


def request(created_at: dt.datetime, **values: Any) -> dict[str, Any]:
    """An llm_requests row as the writer passes it: a routed, priced, non-streaming 200."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        id=uuid.uuid4(),
        created_at=created_at,
        environment_id=ENV,
        environment_name="production",
        config_id=CONFIG,
        config_slug="chat",
        variant_id=VARIANT,
        variant_name="default",
        variant_version=2,
        provider="openai",
        model="gpt-4o-mini",
        endpoint="chat.completions",
        prompt_tokens=100,
        completion_tokens=20,
        total_tokens=120,
        cached_tokens=10,
        reasoning_tokens=0,
        input_cost=15,
        cached_cost=1,
        output_cost=12,
        total_cost=28,
        price_source="genai-prices",
        usage_source="provider",
        latency_ms=250,
        status_code=200,
        is_streaming=False,
        tags={},
    )
    row.update(values)
    return row


UNROUTED: dict[str, Any] = dict.fromkeys(
    ("environment_id", "environment_name", "config_id", "config_slug", "variant_id")
) | {"variant_name": None, "variant_version": None}
NO_USAGE: dict[str, Any] = dict.fromkeys((*SUMMED, "price_source")) | {"usage_source": "missing"}
UNPRICED: dict[str, Any] = dict.fromkeys(
    ("input_cost", "cached_cost", "cache_write_cost", "output_cost", "total_cost", "price_source")
)


def first_batch() -> list[dict[str, Any]]:
    m = dt.timedelta(minutes=1)
    return [
        request(HOUR + 1 * m, tags={"tenantSlug": "acme", "userId": "u1"}),
        request(HOUR + 2 * m, latency_ms=900, is_streaming=True, ttft_ms=120, tags={"team": "ml"}),
        request(HOUR + 3 * m, status_code=502, error_type="upstream_error", latency_ms=30,
                **NO_USAGE),
        request(HOUR + 4 * m, status_code=499, is_streaming=True, ttft_ms=80, latency_ms=5000),
        request(HOUR + 5 * m, status_code=499, is_streaming=True, latency_ms=7, **NO_USAGE),
        request(HOUR + 6 * m, status_code=200, error_type="stream_interrupted", latency_ms=1448),
        # A renamed environment: the rollup keeps the latest name (this row's time is 10:30 UTC).
        request(dt.datetime(2025, 3, 4, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                environment_name="prod", tags={"tenantSlug": "acme"}),
        request(HOUR + 7 * m, variant_id=OTHER_VARIANT, variant_version=1, model="gpt-4o"),
        request(HOUR + 8 * m, provider="anthropic", model="claude-3-5-haiku", latency_ms=0,
                **UNROUTED, **UNPRICED, tags={"tenantSlug": "globex"}),
        request(HOUR + 9 * m, status_code=429, error_type="rate_limited", latency_ms=1449,
                **UNROUTED, **NO_USAGE),
        request(HOUR + 10 * m, provider=None, model=None, endpoint="embeddings", status_code=400,
                error_type="invalid_request", **UNROUTED, **NO_USAGE, tags={"tenantSlug": "acme"}),
        request(HOUR + 75 * m, latency_ms=2, is_streaming=True, ttft_ms=0, cache_write_tokens=7,
                cache_write_cost=3, total_cost=31),
    ]  # fmt: skip


def second_batch() -> list[dict[str, Any]]:
    m = dt.timedelta(minutes=1)
    return [
        # Lower latency_min and higher latency_max for existing keys, new names, a new key.
        request(HOUR + 40 * m, latency_ms=3, environment_name="prod-eu", tags={"team": "ml"}),
        request(HOUR + 21 * m, latency_ms=200_000, is_streaming=True, ttft_ms=900),
        request(HOUR + 22 * m, status_code=502, error_type="upstream_error", latency_ms=31,
                **NO_USAGE),
        request(HOUR + 23 * m, provider="anthropic", model="claude-3-5-haiku", latency_ms=5,
                **UNROUTED, **UNPRICED, tags={"tenantSlug": "globex"}),
        request(HOUR + 24 * m, status_code=201, latency_ms=10**9, tags={"tenantSlug": "initech"}),
    ]  # fmt: skip


# --- independent expectations, computed from the raw row dicts --------------------------------


def hist_bucket(ms: int) -> int:
    return next((k for k in range(40) if ms < 2 ** (k / 2)), 40)


def sid(value: uuid.UUID | None) -> str:
    return "" if value is None else str(value)


def totals(group: list[dict[str, Any]], histogram: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requests": len(group),
        "errors": sum(1 for r in group if r["status_code"] >= 400 or r["error_type"]),
        "unpriced": sum(
            1 for r in group if r["prompt_tokens"] is not None and r["total_cost"] is None
        ),
        "usage_missing": sum(1 for r in group if r["usage_source"] == "missing"),
        "streams": sum(1 for r in group if r["is_streaming"]),
        **{c: sum(r[c] or 0 for r in group) for c in SUMMED},
        "latency_sum": sum(r["latency_ms"] for r in group),
        "ttft_sum": sum(r["ttft_ms"] for r in group if r["ttft_ms"] is not None),
        "ttft_count": sum(1 for r in group if r["ttft_ms"] is not None),
        "latency_min": min(r["latency_ms"] for r in group),
        "latency_max": max(r["latency_ms"] for r in group),
    }
    if histogram:
        for k in range(41):
            out[f"lat_h{k:02d}"] = sum(1 for r in group if hist_bucket(r["latency_ms"]) == k)
        ordered = sorted(group, key=lambda r: r["created_at"])
        for name in ("environment_name", "config_slug", "variant_name"):
            out[name] = next((r[name] for r in reversed(ordered) if r[name] is not None), None)
    return out


def grouped(
    rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], tuple[Any, ...] | None]
) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        k = key(r)
        if k is not None:
            groups.setdefault(k, []).append(r)
    return groups


def expected_hourly(
    rows: list[dict[str, Any]], by_day: bool = False
) -> dict[tuple[Any, ...], dict[str, Any]]:
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        at = r["created_at"].astimezone(UTC)
        return (
            dt.datetime(at.year, at.month, at.day, 0 if by_day else at.hour, tzinfo=UTC),
            sid(r["environment_id"]),
            sid(r["config_id"]),
            sid(r["variant_id"]),
            r["variant_version"] or 0,
            r["provider"] or "",
            r["model"] or "",
            r["endpoint"],
            CLASSES[r["status_code"]],
        )

    return {k: totals(g, histogram=True) for k, g in grouped(rows, key).items()}


def expected_daily(rows: list[dict[str, Any]], tag: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    def key(r: dict[str, Any]) -> tuple[Any, ...] | None:
        if tag not in r["tags"]:
            return None
        at = r["created_at"].astimezone(UTC)
        return (
            dt.datetime(at.year, at.month, at.day, tzinfo=UTC),
            tag,
            r["tags"][tag],
            sid(r["environment_id"]),
            sid(r["config_id"]),
            sid(r["variant_id"]),
            r["provider"] or "",
            r["model"] or "",
            CLASSES[r["status_code"]],
        )

    return {k: totals(g, histogram=False) for k, g in grouped(rows, key).items()}


def expected_tag_totals(
    rows: list[dict[str, Any]], tags: Sequence[str], by_day: bool
) -> dict[tuple[Any, ...], dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for tag in tags:

        def key(r: dict[str, Any], tag: str = tag) -> tuple[Any, ...]:
            at = r["created_at"].astimezone(UTC)
            bucket = dt.datetime(at.year, at.month, at.day, 0 if by_day else at.hour, tzinfo=UTC)
            return (bucket, tag, tag in r["tags"], r["tags"].get(tag, ""))

        for k, g in grouped(rows, key).items():
            out[k] = totals(g, histogram=True)
            for name in ("environment_name", "config_slug", "variant_name"):
                del out[k][name]
    return out


# --- running and reading ----------------------------------------------------------------------


def settings_for(database_url: str, tmp_path: Path) -> Settings:
    return Settings.load({}, database_url=database_url, data_dir=tmp_path)


def write(settings: Settings, rows: list[dict[str, Any]], indexed: Sequence[str] = INDEXED) -> None:
    def go(conn: Connection) -> None:
        conn.execute(s.llm_requests.insert(), rows)
        write_rollups(conn, rows, indexed)

    run_in_store(settings, go)


def utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive UTC datetimes, PostgreSQL aware ones.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read(
    settings: Settings, table: sa.Table, key: Sequence[str]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    def query(conn: Connection) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in conn.execute(sa.select(table))]

    out = {}
    for row in run_in_store(settings, query):
        for name in ("bucket", "last_seen"):
            if name in row:
                row[name] = utc(row[name])
        out[tuple(row.pop(n) for n in key)] = row
    return out


# --- tests ------------------------------------------------------------------------------------


def test_hourly_rollup_equals_sums_of_raw_rows(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    rows = first_batch()
    write(settings, rows)
    found = read(settings, s.llm_rollup_hourly, HOURLY_KEY)
    expected = expected_hourly(rows)
    assert found == expected
    assert len(found) == 8
    main = found[(HOUR, str(ENV), str(CONFIG), str(VARIANT), 2, "openai", "gpt-4o-mini",
                  "chat.completions", "2xx")]  # fmt: skip
    assert main["environment_name"] == "prod"
    assert (main["requests"], main["errors"]) == (4, 1)


def test_second_batch_adds_counters_and_combines_min_max(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    one, two = first_batch(), second_batch()
    write(settings, one)
    write(settings, two)
    assert read(settings, s.llm_rollup_hourly, HOURLY_KEY) == expected_hourly(one + two)
    for tag in INDEXED:
        found = read(settings, s.llm_rollup_daily_tags, DAILY_KEY)
        want = expected_daily(one + two, tag)
        assert {k: v for k, v in found.items() if k[1] == tag} == want
    main = (HOUR, str(ENV), str(CONFIG), str(VARIANT), 2, "openai", "gpt-4o-mini",
            "chat.completions", "2xx")  # fmt: skip
    row = read(settings, s.llm_rollup_hourly, HOURLY_KEY)[main]
    assert (row["latency_min"], row["latency_max"]) == (3, 10**9)
    assert row["environment_name"] == "prod-eu"


def test_min_max_combine_with_null_existing_values(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    rows = first_batch()[:2]
    key = dict(zip(HOURLY_KEY, next(iter(expected_hourly(rows))), strict=True))
    run_in_store(
        settings,
        lambda c: c.execute(
            s.llm_rollup_hourly.insert(), [{**key, "requests": 5, "latency_sum": 70, "lat_h05": 5}]
        ),
    )
    write(settings, rows)
    [row] = read(settings, s.llm_rollup_hourly, HOURLY_KEY).values()
    assert (row["latency_min"], row["latency_max"]) == (250, 900)
    assert (row["requests"], row["latency_sum"], row["lat_h05"]) == (7, 70 + 250 + 900, 5)
    assert row["environment_name"] == "production"


def test_hour_and_day_boundaries_split_buckets(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    late = dt.datetime(2025, 3, 4, 23, 59, 59, 999_000, tzinfo=UTC)
    midnight = dt.datetime(2025, 3, 5, tzinfo=UTC)
    rows = [
        request(late, tags={"tenantSlug": "acme"}),
        request(midnight, tags={"tenantSlug": "acme"}),
    ]
    write(settings, rows)
    hourly = read(settings, s.llm_rollup_hourly, HOURLY_KEY)
    assert sorted(k[0] for k in hourly) == [dt.datetime(2025, 3, 4, 23, tzinfo=UTC), midnight]
    assert all(v["requests"] == 1 for v in hourly.values())
    daily = read(settings, s.llm_rollup_daily_tags, DAILY_KEY)
    assert sorted(k[0] for k in daily) == [dt.datetime(2025, 3, 4, tzinfo=UTC), midnight]
    values = read(settings, s.llm_tag_values, ("tag_key", "tag_value"))
    assert values == {("tenantSlug", "acme"): {"requests": 2, "last_seen": midnight}}


def several_days() -> list[dict[str, Any]]:
    """Both batches plus rows around midnights, so that days hold several hours."""
    late = dt.datetime(2025, 3, 4, 23, 59, 59, 999_000, tzinfo=UTC)
    day = dt.timedelta(days=1)
    rows = [
        *first_batch(),
        *second_batch(),
        request(late, latency_ms=77, environment_name="late-name"),
        request(late + dt.timedelta(milliseconds=1), status_code=502, latency_ms=4, **NO_USAGE),
        request(late - day, latency_ms=12, is_streaming=True, ttft_ms=3),
        request(late + 2 * day, provider="anthropic", model="claude-3-5-haiku", **UNROUTED),
    ]
    for row in rows:  # in UTC, as the writer stores them (SQLite would drop another offset)
        row["created_at"] = row["created_at"].astimezone(UTC)
    return rows


def test_daily_rollup_equals_sums_of_raw_rows(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    rows = several_days()
    write(settings, rows[:9])
    write(settings, rows[9:])
    found = read(settings, s.llm_rollup_daily, HOURLY_KEY)
    assert found == expected_hourly(rows, by_day=True)
    assert {k[0] for k in found} == {dt.datetime(2025, 3, d, tzinfo=UTC) for d in (3, 4, 5, 6)}
    main = (dt.datetime(2025, 3, 4, tzinfo=UTC), str(ENV), str(CONFIG), str(VARIANT), 2,
            "openai", "gpt-4o-mini", "chat.completions", "2xx")  # fmt: skip
    assert found[main]["environment_name"] == "late-name"  # the day's latest name


def test_migration_backfills_daily_rollups_from_hourly(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    rows = several_days()
    write(settings, rows)
    written = read(settings, s.llm_rollup_daily, HOURLY_KEY)

    def backfill(conn: Connection) -> None:
        conn.execute(sa.delete(s.llm_rollup_daily))
        m0005_daily_rollup.upgrade(conn)  # the table exists: only the backfill runs

    run_in_store(settings, backfill)
    names = ("environment_name", "config_slug", "variant_name")  # the backfill keeps any name

    def counters(table: dict[tuple[Any, ...], dict[str, Any]]) -> Any:
        return {k: {n: v for n, v in row.items() if n not in names} for k, row in table.items()}

    assert counters(read(settings, s.llm_rollup_daily, HOURLY_KEY)) == counters(written)


def test_rebuilding_rollups_rebuilds_the_touched_days(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    rows = several_days()
    write(settings, rows)
    hourly = read(settings, s.llm_rollup_hourly, HOURLY_KEY)

    def rebuild(conn: Connection) -> None:
        for day in (s.llm_rollup_daily, s.llm_rollup_tag_daily):  # drifted rows
            conn.execute(sa.update(day).values(requests=day.c.requests + 100))
        since = dt.datetime(2025, 3, 4, 12, tzinfo=UTC)
        rebuild_rollups(conn, since, since + dt.timedelta(hours=1), INDEXED)

    run_in_store(settings, rebuild)
    found = read(settings, s.llm_rollup_daily, HOURLY_KEY)
    want = expected_hourly(rows, by_day=True)
    assert {k: v for k, v in found.items() if k[0].day == 4} == {
        k: v for k, v in want.items() if k[0].day == 4
    }
    untouched = {k: v["requests"] - 100 for k, v in found.items() if k[0].day != 4}
    assert untouched == {k: v["requests"] for k, v in want.items() if k[0].day != 4}
    assert read(settings, s.llm_rollup_hourly, HOURLY_KEY) == hourly
    assert read(settings, s.llm_rollup_tag_hourly, TAG_KEY) == expected_tag_totals(
        rows, INDEXED, by_day=False
    )
    tag_days = read(settings, s.llm_rollup_tag_daily, TAG_KEY)
    want_tags = expected_tag_totals(rows, INDEXED, by_day=True)
    assert {k: v for k, v in tag_days.items() if k[0].day == 4} == {
        k: v for k, v in want_tags.items() if k[0].day == 4
    }
    assert {k: v["requests"] - 100 for k, v in tag_days.items() if k[0].day != 4} == {
        k: v["requests"] for k, v in want_tags.items() if k[0].day != 4
    }


def test_daily_tag_rollup_covers_only_indexed_keys(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    rows = first_batch()
    write(settings, rows, indexed=["tenantSlug", "tenantSlug", "region"])
    found = read(settings, s.llm_rollup_daily_tags, DAILY_KEY)
    assert found == expected_daily(rows, "tenantSlug")
    assert {k[1] for k in found} == {"tenantSlug"}
    assert sum(v["requests"] for v in found.values()) == 4


def test_tag_totals_count_every_value_and_the_untagged_rows(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path)
    rows = several_days()
    write(settings, rows[:9])
    write(settings, rows[9:])
    for table, by_day in ((s.llm_rollup_tag_hourly, False), (s.llm_rollup_tag_daily, True)):
        found = read(settings, table, TAG_KEY)
        assert found == expected_tag_totals(rows, INDEXED, by_day)
        for tag in INDEXED:  # every row counted once per indexed key, tagged or not
            assert sum(v["requests"] for k, v in found.items() if k[1] == tag) == len(rows)
    untagged = [k for k in read(settings, s.llm_rollup_tag_daily, TAG_KEY) if not k[2]]
    assert untagged and all(k[3] == "" for k in untagged)


def test_migration_backfills_tag_totals_from_raw_rows(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    rows = several_days()
    rows.append(request(HOUR, latency_ms=0, tags={"tenantSlug": ""}))  # '' is a value
    rows += [request(HOUR, latency_ms=ms) for ms in (1, 2, 181, 182, 2**20)]  # bucket edges
    write(settings, rows)
    tables = (s.llm_rollup_tag_hourly, s.llm_rollup_tag_daily)
    written = [read(settings, table, TAG_KEY) for table in tables]
    assert any(k[2] and k[3] == "" for k in written[1])

    def backfill(conn: Connection) -> None:
        for table in (*tables, s.llm_tag_rollup_keys):
            conn.execute(sa.delete(table))
        m0006_tag_totals.upgrade(conn)  # the tables exist: only the backfill runs

    run_in_store(settings, backfill)
    assert [read(settings, table, TAG_KEY) for table in tables] == written
    # Registered from the day after each key's first daily tag rollup (it may have been partial).
    keys = read(settings, s.llm_tag_rollup_keys, ("tag_key",))
    first = {
        tag: min(r["created_at"] for r in rows if tag in r["tags"]).replace(hour=0, minute=0,
                 second=0, microsecond=0) for tag in INDEXED
    }  # fmt: skip
    assert {k: utc(v["since"]) for (k,), v in keys.items()} == {
        tag: day + dt.timedelta(days=1) for tag, day in first.items()
    }


def test_tag_values_count_every_key_and_keep_latest_last_seen(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path)
    one, two = first_batch(), second_batch()
    # A late-arriving batch row older than what is stored must not move last_seen back.
    two.append(request(HOUR - dt.timedelta(days=1), tags={"userId": "u1", "team": "ml"}))
    write(settings, one, indexed=[])
    write(settings, two, indexed=[])
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for r in one + two:
        for k, v in r["tags"].items():
            e = expected.setdefault((k, v), {"requests": 0, "last_seen": r["created_at"]})
            e["requests"] += 1
            e["last_seen"] = max(e["last_seen"], r["created_at"])
    assert read(settings, s.llm_tag_values, ("tag_key", "tag_value")) == expected
    assert read(settings, s.llm_rollup_daily_tags, DAILY_KEY) == {}


def test_long_and_nul_tag_values_are_cut_and_merged(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    long_a, long_b = "x" * 512 + "a", "x" * 512 + "b"
    rows = [
        request(HOUR, tags={"tenantSlug": long_a}),
        request(HOUR, tags={"tenantSlug": long_b}),
        request(HOUR, tags={"tenantSlug": "ac\x00me"}),
    ]
    write(settings, [{**r, "tags": {}} for r in rows], indexed=[])  # the raw rows are not the point
    run_in_store(settings, lambda c: write_rollups(c, rows, INDEXED))
    values = read(settings, s.llm_tag_values, ("tag_key", "tag_value"))
    assert {k: v["requests"] for k, v in values.items()} == {
        ("tenantSlug", "x" * 512): 2,
        ("tenantSlug", "acme"): 1,
    }
    daily = read(settings, s.llm_rollup_daily_tags, DAILY_KEY)
    assert sorted((k[2], v["requests"]) for k, v in daily.items()) == [("acme", 1), ("x" * 512, 2)]


def test_empty_batch_writes_nothing(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    run_in_store(settings, lambda c: write_rollups(c, [], INDEXED))
    assert read(settings, s.llm_rollup_hourly, HOURLY_KEY) == {}


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [
        (-5, 0),
        (0, 0),
        (1, 1),  # [1, 1.41)
        (2, 3),  # 2 = 2^(2/2) opens bucket 3; bucket 2, [1.41, 2), holds no whole ms
        (3, 4),  # [2.83, 4)
        (4, 5),
        (1023, 20),
        (1024, 21),
        (1448, 21),  # 2^10.5 ≈ 1448.15
        (1449, 22),
        (741_455, 39),  # 2^19.5 ≈ 741455.2
        (741_456, 40),
        (10**12, 40),
    ],
)
def test_latency_bucket_boundaries(ms: int, bucket: int) -> None:
    assert latency_bucket(ms) == bucket
    assert hist_bucket(ms) == bucket


def test_status_classes() -> None:
    codes = [200, 204, 299, 301, 400, 404, 429, 498, 499, 500, 503, 599, 0, 600]
    assert [status_class(c) for c in codes] == [
        "2xx", "2xx", "2xx", "301", "4xx", "4xx", "4xx", "4xx", "499", "5xx", "5xx", "5xx",
        "0", "600",
    ]  # fmt: skip


@pytest.mark.parametrize(("mu", "sigma"), [(math.log(400), 1.0), (math.log(30), 0.4)])
def test_estimated_percentiles_are_close_to_exact(mu: float, sigma: float) -> None:
    rng = random.Random(20250304)
    samples = sorted(round(rng.lognormvariate(mu, sigma)) for _ in range(10_000))
    histogram = [0] * s.LATENCY_BUCKETS
    for ms in samples:
        histogram[latency_bucket(ms)] += 1
    for q in (0.5, 0.95, 0.99):
        exact = samples[math.ceil(q * len(samples)) - 1]
        estimate = estimate_percentile(histogram, q)
        assert estimate is not None
        assert abs(estimate - exact) / exact < 0.2, (q, estimate, exact)


def test_estimate_percentile_edges() -> None:
    assert estimate_percentile([0] * s.LATENCY_BUCKETS, 0.5) is None
    assert estimate_percentile([], 0.5) is None
    only_last = [0] * 40 + [3]
    assert estimate_percentile(only_last, 0.99) == 2**19.5
    only_first = [4] + [0] * 40
    assert estimate_percentile(only_first, 0.5) == 0.5
    halves = [0] * 21 + [10] + [0] * 19  # [2^10, 2^10.5)
    assert estimate_percentile(halves, 0.5) == pytest.approx(1024 + (2**10.5 - 1024) / 2)
    with pytest.raises(ValueError):
        estimate_percentile(halves, 1.0)


def test_a_tag_key_indexed_later_is_read_from_its_rollups_only_from_then_on(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path)
    day = dt.datetime(2025, 3, 3, tzinfo=UTC)
    rows = [
        request(day + dt.timedelta(hours=h), latency_ms=10 + h, tags={"team": team})
        for h, team in ((1, "ml"), (5, "ops"), (30, "ml"), (31, "ml"), (53, "ops"), (60, None))
    ]
    for row in rows:
        row["tags"] = {k: v for k, v in row["tags"].items() if v is not None}
    write(settings, rows[:2], indexed=["tenantSlug"])  # before "team" was indexed
    write(settings, rows[2:], indexed=["tenantSlug", "team"])

    def registry() -> dict[str, dt.datetime]:
        found = read(settings, s.llm_tag_rollup_keys, ("tag_key",))
        return {k: utc(v["since"]) for (k,), v in found.items()}

    indexed_at = day + dt.timedelta(hours=31)  # the hour after the first batch that indexed it
    assert registry() == {"tenantSlug": dt.datetime(1970, 1, 1, tzinfo=UTC), "team": indexed_at}

    f = parse_filters({"from": "2025-03-01", "to": "2025-03-08"}, day + dt.timedelta(days=9))

    def answers(force: Any = None) -> list[dict[str, Any]]:
        kw: dict[str, Any] = {"force": force, "indexed_tags": INDEXED}
        team_ml = dataclasses.replace(f, tags=(("team", ("ml",)),))
        return run_in_store(
            settings,
            lambda c: [
                breakdown(c, f, "tag:team", sort="requests", **kw),
                summary(c, team_ml, **kw),
                timeseries(c, team_ml, "day", **kw),
            ],
        )

    def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
        def strip(r: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in r.items() if k not in ("source", "percentiles")
                    and not k.startswith("latency_p")}  # fmt: skip

        assert [strip(r) for r in a] == [strip(r) for r in b]

    raw = answers("raw")
    assert pick_rows(raw[0]) == [("ml", 3), ("ops", 2), (None, 1)]
    before = answers()
    same(before, raw)
    assert [r["source"] for r in before] == ["tag_daily+tag_hourly+raw"] * 3

    # Rebuilding the rollups from the 1st makes them count every row from then on.
    run_in_store(
        settings, lambda c: rebuild_rollups_and_keys(c, day - dt.timedelta(days=2), None, INDEXED)
    )
    assert registry()["team"] == day - dt.timedelta(days=2)
    after = answers()
    same(after, raw)
    assert [r["source"] for r in after] == ["tag_daily"] * 3

    # A key no longer indexed is dropped: indexing it again starts afresh.
    write(settings, [request(day + dt.timedelta(days=4), tags={"team": "ml"})], ["tenantSlug"])
    assert set(registry()) == {"tenantSlug"}


def pick_rows(result: dict[str, Any]) -> list[tuple[Any, int]]:
    return [(r["key"], r["requests"]) for r in result["rows"]]
