"""The dashboard queries the analytics benchmark times, and how it times and explains them.

``queries`` lists what the Overview, Costs and Requests pages and the filter bar run, each with
its target (``page_queries`` adds whole page loads, for information), with parameters that
``discover`` reads from the data. ``measure`` runs each through ``store.run`` as the dashboard
does: one warm-up, then ``runs`` timed runs. A query that misses its target (or every query,
with ``explain_all``) runs once more with its SQL statements captured (``StatementLog``); each
statement is re-run alone with its rows fetched, and the slowest get their plans
(``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from analytics_report import console
from analytics_world import INDEXED_TAGS
from sqlalchemy import Connection

from llmops.analytics import (
    Filters,
    breakdown,
    costs_by_model,
    list_requests,
    parse_filters,
    summary,
    tag_keys,
    tag_values,
    timeseries,
)
from llmops.store import Store
from llmops.store import schema as s

OVERVIEW_MS = 100.0  # every Overview / Costs query
REQUESTS_MS = 50.0  # the first page of the Requests list


@dataclass
class Query:
    name: str
    page: str
    target_ms: float | None  # None: shown for information, no target
    fn: Callable[[Connection], Any]


@dataclass
class Params:
    """What the queries filter on, read from the seeded data (also when reusing a database)."""

    now: dt.datetime
    top_tenant: str
    rare_tenant: str
    rare_rank: int
    top_model: str
    prefix: str


async def discover(store: Store) -> Params:
    def read(conn: Connection) -> Params:
        last = conn.execute(sa.select(sa.func.max(s.llm_requests.c.created_at))).scalar_one()
        if last is None:
            raise RuntimeError("the database holds no requests: seed it first")
        if isinstance(last, str):
            last = dt.datetime.fromisoformat(last)
        now = (last if last.tzinfo else last.replace(tzinfo=dt.UTC)) + dt.timedelta(seconds=1)
        tenants = [v["value"] for v in tag_values(conn, "tenantSlug", limit=1000)]
        if not tenants:
            raise RuntimeError("no tenantSlug tags in the database")
        rank = min(100, len(tenants))
        f = parse_filters({"range": "30d"}, now)
        models = breakdown(conn, f, "model", "requests", 1, indexed_tags=INDEXED_TAGS)["rows"]
        return Params(now, tenants[0], tenants[rank - 1], rank, models[0]["key"], tenants[0][:2])

    return await store.run(read)


def queries(p: Params, pages: bool) -> list[Query]:
    def f(**params: str) -> Filters:
        return parse_filters(params, p.now)

    tags = INDEXED_TAGS
    d30 = f(range="30d")
    top = f(range="30d", tag=f"tenantSlug={p.top_tenant}")
    listing = f()  # the Requests page's default range (7d)
    out = [
        *(
            Query(f"summary {r}", "Overview", OVERVIEW_MS,
                  functools.partial(summary, f=f(range=r), indexed_tags=tags))
            for r in ("24h", "7d", "30d", "90d")
        ),
        *(
            Query(f"timeseries {r} (cost/requests/tokens)", "Overview", OVERVIEW_MS,
                  functools.partial(timeseries, f=f(range=r), indexed_tags=tags))
            for r in ("7d", "30d")
        ),
        *(
            Query(f"breakdown by {by} 30d", "Overview/Costs", OVERVIEW_MS,
                  functools.partial(breakdown, f=d30, by=by, sort="cost", limit=20,
                                    indexed_tags=tags))
            for by in ("model", "provider", "config", "tag:tenantSlug", "tag:feature")
        ),
        Query("costs_by_model 30d", "Costs", OVERVIEW_MS,
              functools.partial(costs_by_model, f=d30, indexed_tags=tags)),
        Query("timeseries 30d split by model (Costs chart)", "Costs", OVERVIEW_MS,
              functools.partial(timeseries, f=d30, split_by="model", limit=5, indexed_tags=tags)),
        Query(f"summary 30d, tenant {p.top_tenant} (busiest)", "Overview", OVERVIEW_MS,
              functools.partial(summary, f=top, indexed_tags=tags)),
        Query(f"summary 30d, tenant {p.rare_tenant} (#{p.rare_rank})", "Overview", OVERVIEW_MS,
              functools.partial(summary, f=f(range="30d", tag=f"tenantSlug={p.rare_tenant}"),
                                indexed_tags=tags)),
        Query(f"summary 30d, model {p.top_model}", "Overview", OVERVIEW_MS,
              functools.partial(summary, f=f(range="30d", model=p.top_model), indexed_tags=tags)),
        Query("requests page 1, newest first (7d)", "Requests", REQUESTS_MS,
              functools.partial(list_requests, f=listing, limit=50)),
        Query(f"requests page 1, tenant {p.top_tenant} (busiest)", "Requests", REQUESTS_MS,
              functools.partial(list_requests, f=f(tag=f"tenantSlug={p.top_tenant}"), limit=50)),
        Query(f"requests page 1, tenant {p.rare_tenant} (#{p.rare_rank})", "Requests",
              REQUESTS_MS,
              functools.partial(list_requests, f=f(tag=f"tenantSlug={p.rare_tenant}"), limit=50)),
        Query("requests page 1, by cost (7d)", "Requests", REQUESTS_MS,
              functools.partial(list_requests, f=listing, sort="cost", limit=50)),
        Query(f"tag_values tenantSlug prefix {p.prefix!r}", "Filter bar", OVERVIEW_MS,
              functools.partial(tag_values, key="tenantSlug", prefix=p.prefix, limit=20)),
        Query("tag_keys", "Filter bar", OVERVIEW_MS, tag_keys),
    ]  # fmt: skip
    if pages:
        out += page_queries(p, d30, listing)
    return out


def page_queries(p: Params, d30: Filters, listing: Filters) -> list[Query]:
    """Whole page loads as the dashboard runs them (one transaction each): information only."""
    try:
        from llmops.dashboard import views
        from llmops.dashboard.compare import Comparison
        from llmops.dashboard.filterbar import filter_options
    except ImportError as e:  # the dashboard is optional for this benchmark
        console.print(f"[yellow]dashboard pages skipped[/]: {e}")
        return []
    tags = INDEXED_TAGS

    def page(load: Callable[[Connection], Any], f: Filters) -> Callable[[Connection], Any]:
        return lambda conn: (load(conn), filter_options(conn, f, tags))

    return [
        Query("filter bar options 30d (4 breakdowns + tag keys)", "every page", None,
              functools.partial(filter_options, f=d30, indexed_tags=tags)),
        Query("Overview page 30d (all of it)", "page", None,
              page(lambda c: views.overview(c, d30, tags, p.now), d30)),
        Query("Costs page 30d (all of it)", "page", None,
              page(lambda c: views.costs(c, d30, tags, p.now, by_tag="tenantSlug",
                                         comparison=Comparison()), d30)),
        Query("Requests page 7d (all of it)", "page", None,
              page(lambda c: views.requests_page(c, listing, p.now, sort="time",
                                                 direction="desc", limit=50, cursor=None),
                   listing)),
    ]  # fmt: skip


def describe_result(result: Any) -> str:
    """A short note on what a query returned: the tables that answered, or a row count."""
    if isinstance(result, dict):
        if "source" in result:
            return str(result["source"])
        if "requests" in result:
            return f"{result['requests']:,} requests"
    if isinstance(result, tuple) and result and isinstance(result[0], list):
        return f"{len(result[0])} rows"
    if isinstance(result, list):
        return f"{len(result)} values"
    return ""


def summary_source(result: Any) -> str:
    if isinstance(result, dict) and "percentiles" in result:
        return f"percentiles {result['percentiles']}"
    return ""


async def time_query(store: Store, q: Query, runs: int) -> dict[str, Any]:
    result = await store.run(q.fn)  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await store.run(q.fn)
        samples.append((time.perf_counter() - started) * 1000)
    median, worst = statistics.median(samples), max(samples)
    note = describe_result(result)
    extra = summary_source(result)
    return {
        "name": q.name,
        "page": q.page,
        "target_ms": q.target_ms,
        "samples_ms": samples,
        "median_ms": median,
        "max_ms": worst,
        "note": f"{note}; {extra}" if note and extra else note or extra,
        "pass": None if q.target_ms is None else median <= q.target_ms,
    }


class StatementLog:
    """Every SQL statement a query function runs, with its parameters."""

    def __init__(self, store: Store) -> None:
        engine = getattr(store.engine, "sync_engine", store.engine)  # type: ignore[attr-defined]
        self.entries: list[tuple[str, Any]] = []
        self.active = False
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if self.active:
            self.entries.append((statement, params))


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | uuid.UUID):
        return str(value)
    return value


def _rerun(conn: Connection, entries: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Each statement again on its own, rows fetched (SQLite does much of its work while rows
    are fetched, so the execute call alone would understate it)."""
    out = []
    for sql, params in entries:
        started = time.perf_counter()
        rows = len(conn.exec_driver_sql(sql, params).all())
        ms = (time.perf_counter() - started) * 1000
        out.append({"ms": ms, "rows": rows, "sql": sql, "params": params})
    return out


def _plan(conn: Connection, sql: str, params: Any) -> list[str]:
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).all()
        return [str(r[0]) for r in rows]
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
    depth: dict[int, int] = {0: 0}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, 0) + 1
        lines.append("  " * (depth[node] - 1) + str(detail))
    return lines


async def explain(store: Store, log: StatementLog, q: Query, top: int = 2) -> list[dict[str, Any]]:
    """Run ``q`` once capturing its statements, time each alone; the plans of the slowest."""
    log.entries, log.active = [], True
    try:
        await store.run(q.fn)
    finally:
        log.active = False
    entries = log.entries
    timed = sorted(await store.run(lambda c: _rerun(c, entries)), key=lambda e: -e["ms"])
    out = [{"statements": len(timed), "statements_ms": sum(e["ms"] for e in timed)}]
    for entry in timed[:top]:
        sql, params = entry["sql"], entry["params"]
        plan = await store.run(functools.partial(_plan, sql=sql, params=params))
        out.append({**entry, "params": _plain(params), "plan": plan})
    return out


async def database_facts(store: Store) -> dict[str, Any]:
    def read(conn: Connection) -> dict[str, Any]:
        out: dict[str, Any] = {}
        tables = (
            "llm_requests",
            "llm_rollup_hourly",
            "llm_rollup_daily",
            "llm_rollup_daily_tags",
            "llm_rollup_tag_hourly",
            "llm_rollup_tag_daily",
            "llm_tag_values",
        )
        for table in tables[1:]:
            out[f"{table}_rows"] = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
        if conn.dialect.name == "postgresql":
            out["server_version"] = conn.exec_driver_sql("SHOW server_version").scalar()
            for name in ("shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather",
                         "random_page_cost", "effective_cache_size"):  # fmt: skip
                out[name] = conn.exec_driver_sql(f"SHOW {name}").scalar()
            for table in tables:
                out[f"{table}_size"] = conn.exec_driver_sql(
                    f"SELECT pg_size_pretty(pg_total_relation_size('{table}'))"
                ).scalar()
        else:
            out["sqlite_version"] = conn.exec_driver_sql("SELECT sqlite_version()").scalar()
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
            size = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
            out["file_size"] = f"{pages * size / 2**30:.2f} GB"
            out["analyzed"] = bool(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
                ).scalar()
            )
        return out

    return await store.run(read)


async def measure(store: Store, runs: int, pages: bool, explain_all: bool) -> dict[str, Any]:
    """Time every query on ``store``: the parameters, facts about the database, and the timings
    (with plans where a query missed its target, or everywhere with ``explain_all``)."""
    log = StatementLog(store)
    params = await discover(store)
    facts = await database_facts(store)
    console.print(
        f"queries as of {params.now:%Y-%m-%d %H:%M:%S} UTC (the newest row); busiest "
        f"tenant {params.top_tenant}, tenant #{params.rare_rank} {params.rare_tenant}, "
        f"busiest model {params.top_model}"
    )
    out = []
    for q in queries(params, pages):
        timing = await time_query(store, q, runs)
        verdict = timing["pass"]
        mark = "" if verdict is None else (" PASS" if verdict else " [red]FAIL[/]")
        console.print(
            f"  {q.name:<58} {timing['median_ms']:>9.1f} ms (max {timing['max_ms']:.1f}){mark}"
        )
        if verdict is False or explain_all:
            timing["explain"] = await explain(store, log, q)
        out.append(timing)
    return {"params": dataclasses.asdict(params), "database": facts, "queries": out}
