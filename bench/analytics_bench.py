"""Dashboard query latency on a large request log.

``python bench/analytics_bench.py --backend sqlite --rows 1000000`` (or ``--backend postgres``).

Seeds N synthetic requests (90 days ending now, skewed like production traffic) through the real
writer path — ``store.insert_rows`` with the rollups hook, as the gateway's BatchWriter calls it —
then times every query the dashboard's Overview, Costs and Requests pages make, through
``store.run`` as the dashboard runs them, and compares each with its target. Queries that miss
their target are run once more with every SQL statement captured, and the slowest statements'
plans (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite) go to the output and the JSON.
See bench/README.md, "Analytics queries".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvloop
from pgcluster import PgCluster
from rich.console import Console
from rich.table import Table
from run import terminate_on_sigterm
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
from llmops.ids import uuid7
from llmops.observability.records import COLUMNS
from llmops.observability.rollups import write_request_rollups
from llmops.settings import Settings
from llmops.store import Store, open_store
from llmops.store import schema as s
from llmops.store.migrate import migrate
from llmops.testing import free_port

BENCH = Path(__file__).resolve().parent
console = Console(width=max(Console().width, 150))

INDEXED_TAGS = ("tenantSlug", "feature")  # the default LLMOPS_INDEXED_TAGS
OVERVIEW_MS = 100.0  # every Overview / Costs query
REQUESTS_MS = 50.0  # the first page of the Requests list
DAYS = 90
PROBE_ROWS = 100_000
SAFETY = 0.8  # the seeding rate falls as the tables grow: plan with 80 % of the probe's rate

# --- the synthetic world ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A model and its list price in USD per million tokens (= micro-dollars per token)."""

    provider: str
    name: str
    input: float
    cached: float | None
    cache_write: float | None
    output: float
    base_ms: float  # latency before the first token
    ms_per_token: float
    endpoint: str = "chat.completions"
    reasoning: bool = False


# Chat models, most popular first (popularity is Zipf-like over this order); then embeddings.
CHAT_MODELS = (
    ModelSpec("openai", "gpt-4o-mini", 0.15, 0.075, None, 0.60, 450, 12),
    ModelSpec("anthropic", "claude-sonnet-4-0", 3.00, 0.30, 3.75, 15.00, 900, 20),
    ModelSpec("openai", "gpt-4.1-mini", 0.40, 0.10, None, 1.60, 400, 10),
    ModelSpec("google", "gemini-2.0-flash", 0.10, 0.025, None, 0.40, 350, 5),
    ModelSpec("openai", "gpt-4o", 2.50, 1.25, None, 10.00, 600, 15),
    ModelSpec("anthropic", "claude-3-5-haiku-latest", 0.80, 0.08, 1.00, 4.00, 700, 18),
    ModelSpec("google", "gemini-2.5-flash", 0.30, 0.075, None, 2.50, 500, 6),
    ModelSpec("openai", "gpt-4.1", 2.00, 0.50, None, 8.00, 600, 14),
    ModelSpec("mistral", "mistral-small-latest", 0.10, None, None, 0.30, 300, 8),
    ModelSpec("openai", "o3-mini", 1.10, 0.55, None, 4.40, 2000, 8, reasoning=True),
    ModelSpec("google", "gemini-2.5-pro", 1.25, 0.31, None, 10.00, 1800, 10, reasoning=True),
    ModelSpec("mistral", "mistral-large-latest", 2.00, None, None, 6.00, 700, 15),
    ModelSpec("anthropic", "claude-opus-4-0", 15.00, 1.50, 18.75, 75.00, 1500, 30),
)
EMBEDDING_MODELS = (
    ModelSpec("openai", "text-embedding-3-small", 0.02, None, None, 0.0, 120, 0, "embeddings"),
    ModelSpec("mistral", "mistral-embed", 0.10, None, None, 0.0, 150, 0, "embeddings"),
)
MODELS = CHAT_MODELS + EMBEDDING_MODELS

ENVIRONMENTS = (("production", "Production", 0.80), ("staging", "Staging", 0.14),
                ("development", "Development", 0.06))  # fmt: skip

# feature → (prompt median, sigma, completion median, sigma) of lognormal token counts
FEATURES = {
    "chat": (900, 0.9, 180, 0.8),
    "search": (250, 0.7, 120, 0.7),
    "summarize": (3000, 0.8, 350, 0.6),
    "extract": (1500, 0.7, 250, 0.6),
    "agent": (6000, 0.9, 600, 0.8),
}
CONFIGS = {
    "chat": ("support-bot", "sales-assistant", "onboarding-chat", "copilot-chat", "faq-bot",
             "hr-helpdesk"),
    "search": ("semantic-search", "doc-embed", "query-rewrite", "search-answer",
               "product-search", "rerank-explain"),
    "summarize": ("ticket-summary", "meeting-notes", "email-digest", "report-summary",
                  "call-recap", "news-brief"),
    "extract": ("invoice-extract", "resume-parse", "contract-fields", "receipt-parse",
                "pii-redact", "entity-tagger"),
    "agent": ("code-agent", "research-agent", "ops-agent", "sql-agent", "travel-planner",
              "triage-agent"),
}  # fmt: skip
EMBEDDING_CONFIGS = ("semantic-search", "doc-embed")
TENANT_WORDS = (
    ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell",
     "soylent", "cyberdyne", "aperture", "oscorp", "vandelay", "pied", "dunder", "gringotts",
     "monarch", "nakatomi", "vehement"),
    ("labs", "corp", "health", "bank", "retail", "media", "systems", "logistics", "energy",
     "travel"),
)  # fmt: skip
TENANTS = 200  # customer tenantSlug values, Zipf s=1.0: the busiest has ≈ 13 % of all rows
USERS = 5_000  # userId values, Zipf s=0.7
TENANT_SHARE = 0.96  # rows carrying tenantSlug (the rest: internal jobs)
TEST_TENANTS = ("qa-tenant", "demo-tenant", "loadtest-tenant")  # all staging/development traffic
USER_SHARE = 0.90
STREAM_SHARE = 0.22  # of chat rows (embeddings never stream): ~20 % of all rows
# cumulative shares of error statuses outside incidents: 429, 500, 502, 499 (3.3 % in all)
ERRORS = ((0.015, 429), (0.022, 500), (0.027, 502), (0.033, 499))

# The tuple layout below must follow COLUMNS.
assert COLUMNS[:2] == ("id", "created_at")
assert COLUMNS[2:8] == ("environment_id", "environment_name", "config_id", "config_slug",
                        "variant_id", "variant_name")  # fmt: skip
assert COLUMNS[8:14] == ("variant_version", "credential_slug", "provider", "model",
                         "requested_model", "endpoint")  # fmt: skip
assert COLUMNS[14:] == (
    "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cache_write_tokens",
    "reasoning_tokens", "input_cost", "cached_cost", "cache_write_cost", "output_cost",
    "total_cost", "price_source", "usage_source", "latency_ms", "ttft_ms", "status_code",
    "error_type", "is_streaming", "tags",
)  # fmt: skip

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def zipf(n: int, exponent: float) -> list[float]:
    return [1 / (k + 1) ** exponent for k in range(n)]


def cumulative(weights: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


@dataclass
class Arm:
    """One config variant as it is routed: static column values of its rows, per version."""

    feature: str
    endpoint: str
    weight: float
    bump_us: int | None  # when the variant moved to version 2 (maybe to another model)
    versions: tuple[tuple[Any, ...], ...]  # (version, credential, provider, model, model, endpoint)
    models: tuple[ModelSpec, ...]  # per version
    prefixes: tuple[tuple[Any, ...], ...]  # per environment: env id/name, config id/slug, variant


class World:
    """Entities, popularity and value pools, built once from a seed; rows are drawn from it."""

    def __init__(self, seed: int, start: dt.datetime, end: dt.datetime) -> None:
        rnd = self.rnd = random.Random(seed)
        self.start, self.end = start, end
        self.environments = [(uuid7(), slug, name, share) for slug, name, share in ENVIRONMENTS]
        self.env_cum = cumulative([share for *_, share in self.environments])
        self.configs: list[tuple[uuid.UUID, str, str]] = []  # id, slug, feature
        self.variants: list[tuple[uuid.UUID, uuid.UUID, str]] = []  # id, config id, name
        slugs = [(slug, feature) for feature, names in CONFIGS.items() for slug in names]
        rnd.shuffle(slugs)  # popularity order
        chat_weights = zipf(len(CHAT_MODELS), 1.1)
        span_us = int((end - start).total_seconds() * 1e6)
        start_us = int((start - _EPOCH).total_seconds() * 1e6)
        slots: list[tuple[float, uuid.UUID, str, str, uuid.UUID, str]] = []
        for rank, (slug, feature) in enumerate(slugs):
            config_id = uuid7()
            self.configs.append((config_id, slug, feature))
            config_weight = 1 / (rank + 1) ** 1.0
            count = rnd.choices((1, 2, 3), (0.5, 0.35, 0.15))[0]
            splits = {1: (1.0,), 2: rnd.choice(((0.8, 0.2), (0.5, 0.5))), 3: (0.6, 0.3, 0.1)}
            names = ("default", "candidate", "experiment")[:count]
            for name, split in zip(names, splits[count], strict=True):
                variant_id = uuid7()
                self.variants.append((variant_id, config_id, name))
                slots.append((config_weight * split, config_id, slug, feature, variant_id, name))
        chosen = [
            rnd.choice(EMBEDDING_MODELS)
            if slot[2] in EMBEDDING_CONFIGS
            else rnd.choices(CHAT_MODELS, chat_weights)[0]
            for slot in slots
        ]
        # Every model serves at least one variant: a model no draw picked replaces the model of
        # the least busy variant whose model another variant also has (rarest model first).
        for models in (CHAT_MODELS, EMBEDDING_MODELS):
            for model in reversed(models):
                if model in chosen:
                    continue
                for i in sorted(range(len(slots)), key=lambda i: slots[i][0]):
                    if chosen[i] in models and chosen.count(chosen[i]) > 1:
                        chosen[i] = model
                        break
        arms: list[Arm] = []
        for (weight, config_id, slug, feature, variant_id, name), first in zip(
            slots, chosen, strict=True
        ):
            bumped = rnd.random() < 0.35
            second = first
            if bumped and first in CHAT_MODELS and rnd.random() < 0.5:
                second = rnd.choices(CHAT_MODELS, chat_weights)[0]
            models = (first, second)
            versions = tuple(
                (v + 1, f"{m.provider}-prod", m.provider, m.name, m.name, m.endpoint)
                for v, m in enumerate(models)
            )
            bump = start_us + int(span_us * rnd.uniform(0.2, 0.9)) if bumped else None
            prefixes = tuple(
                (env_id, env_slug, config_id, slug, variant_id, name)
                for env_id, env_slug, _, _ in self.environments
            )
            arms.append(Arm(feature, first.endpoint, weight, bump, versions, models, prefixes))
        self.arms = arms
        self.arm_cum = cumulative([a.weight for a in arms])
        tenant_names = [f"{a}-{b}" for a in TENANT_WORDS[0] for b in TENANT_WORDS[1]]
        rnd.shuffle(tenant_names)
        tenant_w = zipf(TENANTS, 1.0)
        self.tenants: list[str | None] = [*tenant_names[:TENANTS], None]
        self.tenant_cum = cumulative(
            [w * TENANT_SHARE / sum(tenant_w) for w in tenant_w] + [1 - TENANT_SHARE]
        )
        user_w = zipf(USERS, 0.7)
        self.users: list[str | None] = [f"user_{rnd.getrandbits(40):010x}" for _ in range(USERS)]
        self.users.append(None)
        self.user_cum = cumulative(
            [w * USER_SHARE / sum(user_w) for w in user_w] + [1 - USER_SHARE]
        )

        # Value pools (4096 draws each), indexed with getrandbits(12): no per-row lognormal.
        def pool(median: float, sigma: float, low: int = 1) -> list[int]:
            return [max(low, int(rnd.lognormvariate(math.log(median), sigma))) for _ in range(4096)]

        self.prompts = {f: pool(p, ps, 8) for f, (p, ps, _, _) in FEATURES.items()}
        self.completions = {f: pool(c, cs) for f, (_, _, c, cs) in FEATURES.items()}
        self.embed_prompts = pool(400, 1.0, 4)
        self.noise = [rnd.lognormvariate(0, 0.35) for _ in range(4096)]
        self.fast_errors = pool(60, 0.6)  # 429s answer fast
        self.slow_errors = pool(900, 0.8)  # 5xx after a while
        # Two provider incidents: three hours with 30 % extra 502s.
        hours = int((end - start).total_seconds() // 3600)
        self.incidents = {
            rnd.randrange(24, max(25, hours - 24)) + h: provider
            for provider in ("anthropic", "google")
            for h in range(3)
        }

    def hour_weights(self) -> list[tuple[int, int, float]]:
        """(start µs, span µs, weight) per hour: daily and weekly seasonality, growth, noise."""
        rnd = random.Random(self.rnd.random())
        out = []
        first = self.start.replace(minute=0, second=0, microsecond=0)
        total = (self.end - self.start).total_seconds()
        at = first
        while at < self.end:
            lo, hi = max(at, self.start), min(at + dt.timedelta(hours=1), self.end)
            daily = 0.3 + 0.7 * (0.5 - 0.5 * math.cos(2 * math.pi * (at.hour - 3) / 24))
            weekly = 0.55 if at.weekday() >= 5 else 1.0
            growth = 1.0 + 0.4 * (lo - self.start).total_seconds() / total
            weight = daily * weekly * growth * rnd.uniform(0.9, 1.1)
            span = (hi - lo).total_seconds()
            lo_us = int((lo - _EPOCH).total_seconds() * 1e6)
            out.append((lo_us, int(span * 1e6), weight * span / 3600))
            at += dt.timedelta(hours=1)
        return out

    def batches(self, rows: int, batch: int, limit: int | None = None) -> Iterator[list[Any]]:
        """The ``rows`` rows of the timeline, oldest first, in lists of ``batch``; ``limit`` stops
        after that many (the probe seeds the first rows of the same timeline)."""
        hours = self.hour_weights()
        total = sum(w for _, _, w in hours)
        done = cum = 0.0
        pending: list[Any] = []
        emitted = 0
        stop = rows if limit is None else min(rows, limit)
        for index, (lo_us, span_us, weight) in enumerate(hours):
            cum += weight
            count = round(rows * cum / total) - int(done)
            done += count
            if count <= 0:
                continue
            count = min(count, stop - emitted)
            pending += self._hour(index, lo_us, span_us, count)
            emitted += count
            while len(pending) >= batch:
                yield pending[:batch]
                pending = pending[batch:]
            if emitted >= stop:
                break
        if pending:
            yield pending

    def _hour(self, index: int, lo_us: int, span_us: int, count: int) -> list[tuple[Any, ...]]:
        rnd = self.rnd
        rand, bits = rnd.random, rnd.getrandbits
        times = sorted(lo_us + int(rand() * span_us) for _ in range(count))
        arms = rnd.choices(self.arms, cum_weights=self.arm_cum, k=count)
        envs = rnd.choices(range(len(self.environments)), cum_weights=self.env_cum, k=count)
        tenants = rnd.choices(self.tenants, cum_weights=self.tenant_cum, k=count)
        users = rnd.choices(self.users, cum_weights=self.user_cum, k=count)
        incident = self.incidents.get(index)
        noise, prompts, completions = self.noise, self.prompts, self.completions
        out = []
        for t, arm, env, tenant, user in zip(times, arms, envs, tenants, users, strict=True):
            v = 1 if arm.bump_us is not None and t >= arm.bump_us else 0
            m = arm.models[v]
            streaming = arm.endpoint == "chat.completions" and rand() < STREAM_SHARE
            r = rand()
            status, error_type = 200, None
            if incident == m.provider and r < 0.3:
                status = 502
            else:
                for share, code in ERRORS:
                    if r < share:
                        status = code
                        break
            if arm.endpoint == "embeddings":
                prompt, completion = self.embed_prompts[bits(12)], 0
            else:
                prompt = prompts[arm.feature][bits(12)]
                completion = completions[arm.feature][bits(12)]
                if m.reasoning:
                    completion *= 2
            latency = int(m.base_ms * noise[bits(12)] + completion * m.ms_per_token)
            ttft = int(latency * 0.3 * noise[bits(12)]) + 20 if streaming else None
            ttft = None if ttft is None else min(ttft, latency)
            usage = "provider"
            if status != 200:
                if status == 499:  # the client went away half-way
                    error_type = "client_disconnected"
                    latency = int(latency * rand()) + 1
                    completion = int(completion * rand())
                    usage = "estimated" if streaming else "missing"
                    if ttft is not None and ttft > latency:
                        ttft = None
                else:
                    error_type = f"upstream_{status}"
                    pool = self.fast_errors if status == 429 else self.slow_errors
                    latency, ttft, usage = pool[bits(12)], None, "missing"
            if usage == "missing":
                tokens: tuple[Any, ...] = (None,) * 11 + (None, "missing")
            else:
                cached = write = reasoning = 0
                if m.cached is not None and prompt >= 1024 and rand() < 0.35:
                    cached = int(prompt * (0.5 + 0.45 * rand())) // 128 * 128
                elif m.cache_write is not None and prompt >= 1024 and rand() < 0.06:
                    write = int(prompt * 0.6)
                if m.reasoning:
                    reasoning = int(completion * (0.4 + 0.4 * rand()))
                input_cost = round((prompt - cached - write) * m.input)
                cached_cost = round(cached * (m.cached or 0))
                write_cost = round(write * (m.cache_write or 0))
                output_cost = round(completion * m.output)
                tokens = (
                    prompt, completion, prompt + completion, cached, write, reasoning,
                    input_cost, cached_cost, write_cost, output_cost,
                    input_cost + cached_cost + write_cost + output_cost,
                    f"genai-prices:{m.provider}/{m.name}", usage,
                )  # fmt: skip
            if env:  # staging and development: internal test tenants, not customers
                tenant = TEST_TENANTS[bits(2) % 3]
            tags = {"feature": arm.feature}
            if tenant is not None:
                tags["tenantSlug"] = tenant
            if user is not None:
                tags["userId"] = user
            created = _EPOCH + dt.timedelta(microseconds=t)
            out.append(
                (uuid7(t // 1000), created)
                + arm.prefixes[env]
                + arm.versions[v]
                + tokens
                + (latency, ttft, status, error_type, streaming, tags)
            )
        return out


# --- stores -----------------------------------------------------------------------------------


async def open_migrated(url: str, data_dir: Path) -> Store:
    store = open_store(Settings.load({}, database_url=url, data_dir=data_dir))
    await store.run(migrate)
    return store


async def insert_entities(store: Store, world: World) -> None:
    """Environments, configs and variants, so that labels resolve as in a real install."""
    now = world.start

    def write(conn: Connection) -> None:
        conn.execute(
            s.environments.insert(),
            [{"id": i, "slug": slug, "name": name, "created_at": now}
             for i, slug, name, _ in world.environments],
        )  # fmt: skip
        conn.execute(
            s.configs.insert(),
            [{"id": i, "slug": slug, "name": slug.replace("-", " ").title(), "created_at": now}
             for i, slug, _ in world.configs],
        )  # fmt: skip
        conn.execute(
            s.variants.insert(),
            [{"id": i, "config_id": c, "name": name, "created_at": now}
             for i, c, name in world.variants],
        )  # fmt: skip

    await store.run(write)


@dataclass
class SeedStats:
    rows: int
    seconds: float
    batches: int

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


async def seed(
    store: Store,
    world: World,
    rows: int,
    batch: int,
    writers: int,
    limit: int | None = None,
    progress: bool = True,
) -> SeedStats:
    """Write the world's timeline through ``store.insert_rows`` with the rollups hook (as the
    BatchWriter does), ``writers`` batches in flight at once."""
    hook = functools.partial(write_request_rollups, indexed_tags=INDEXED_TAGS)
    started = last_report = time.perf_counter()
    written = batches = 0
    target = rows if limit is None else min(rows, limit)
    in_flight: set[asyncio.Task[int]] = set()

    async def write(chunk: list[Any]) -> int:
        return await store.insert_rows(s.llm_requests, COLUMNS, chunk, after=hook)

    try:
        for chunk in world.batches(rows, batch, limit):
            while len(in_flight) >= writers:
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    in_flight.discard(task)
                    written += task.result()
            in_flight.add(asyncio.create_task(write(chunk)))
            batches += 1
            now = time.perf_counter()
            if progress and now - last_report >= 30:
                last_report = now
                rate = written / (now - started)
                eta = (target - written) / rate if rate else float("nan")
                console.print(
                    f"  {written:>11,} / {target:,} rows  {rate:>8,.0f} rows/s  "
                    f"ETA {eta / 60:.1f} min"
                )
        for finished in asyncio.as_completed(in_flight):
            written += await finished
    except BaseException:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    return SeedStats(written, time.perf_counter() - started, batches)


async def pg_admin(url: str, *statements: str) -> None:
    """Statements that cannot run in a transaction (VACUUM, DROP DATABASE), via asyncpg."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


# --- the queries ------------------------------------------------------------------------------


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


# --- diagnosis --------------------------------------------------------------------------------


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


# --- the run ----------------------------------------------------------------------------------


def git_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True,
            timeout=10,
        ).stdout.strip()  # fmt: skip
        return rev + ("+dirty(src)" if dirty else "")
    return "unknown"


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


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="llmops-analytics-"))
        self.pg: PgCluster | None = None
        self.keep_paths: list[str] = []
        self.stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.results: dict[str, Any] = {}

    # where the data lives

    def url(self, name: str) -> str:
        if self.args.backend == "postgres":
            assert self.pg is not None
            return self.pg.url(name)
        return f"sqlite:///{self.tmp / name / 'llmops.db'}"

    def new_database(self, name: str) -> str:
        if self.args.backend == "postgres":
            if self.pg is None:
                self.pg = PgCluster(free_port()).start()
            self.pg.create_database(name)
        else:
            (self.tmp / name).mkdir()
        return self.url(name)

    async def drop_database(self, name: str) -> None:
        if self.args.backend == "postgres":
            await pg_admin(self.url("postgres"), f"DROP DATABASE {name}")
        else:
            shutil.rmtree(self.tmp / name, ignore_errors=True)

    # phases

    async def probe(self, world_end: dt.datetime) -> float:
        """Seed the first rows of the same timeline into a scratch database: rows/s."""
        url = self.new_database("probe")
        store = await open_migrated(url, self.tmp)
        try:
            world = World(self.args.seed, world_end - dt.timedelta(days=DAYS), world_end)
            await insert_entities(store, world)
            stats = await seed(
                store, world, self.args.rows, self.args.batch, self.args.writers,
                limit=PROBE_ROWS, progress=False,
            )  # fmt: skip
        finally:
            await store.close()
        await self.drop_database("probe")
        return stats.rate

    async def prepare(self) -> tuple[str, dict[str, Any]]:
        """A seeded database (or the one to reuse): its URL and how it was seeded."""
        args = self.args
        if args.reuse:
            url = args.reuse
            if args.backend == "sqlite" and not url.startswith("sqlite:///"):
                url = f"sqlite:///{Path(url).resolve()}"
            console.print(f"reusing {url} (not seeded by this run)")
            return url, {"reused": args.reuse}
        end = dt.datetime.now(dt.UTC)
        rows = args.rows
        seeding: dict[str, Any] = {"requested_rows": rows, "batch": args.batch,
                                   "writers": args.writers, "seed": args.seed}  # fmt: skip
        if args.budget_minutes > 0 and rows > PROBE_ROWS:
            rate = await self.probe(end)
            projected = rows / rate / 60
            console.print(
                f"probe: {PROBE_ROWS:,} rows at {rate:,.0f} rows/s → {rows:,} rows would take "
                f"about {projected:.1f} min (budget {args.budget_minutes:g} min)"
            )
            seeding["probe_rows_per_s"] = rate
            if projected > args.budget_minutes:
                fits = int(rate * SAFETY * args.budget_minutes * 60) // PROBE_ROWS * PROBE_ROWS
                rows = max(PROBE_ROWS, fits)
                console.print(
                    f"[yellow]seeding {rows:,} rows instead of {args.rows:,}[/]: what fits the "
                    f"budget at {SAFETY:.0%} of the probe's rate"
                )
        url = self.new_database("analytics")
        store = await open_migrated(url, self.tmp)
        try:
            world = World(args.seed, end - dt.timedelta(days=DAYS), end)
            await insert_entities(store, world)
            console.print(
                f"seeding {rows:,} rows, {DAYS} days up to {end:%Y-%m-%d %H:%M} UTC, batches of "
                f"{args.batch:,}, {args.writers} in flight"
            )
            stats = await seed(store, world, rows, args.batch, args.writers)
        finally:
            await store.close()
        console.print(
            f"seeded {stats.rows:,} rows in {stats.seconds / 60:.1f} min "
            f"({stats.rate:,.0f} rows/s, {stats.batches:,} batches)"
        )
        seeding.update(rows=stats.rows, seconds=stats.seconds, rows_per_s=stats.rate)
        if args.backend == "postgres":
            started = time.perf_counter()
            # What autovacuum would have done by now on a table that grew over 90 days.
            await pg_admin(url, "VACUUM (ANALYZE)")
            seeding["vacuum_analyze_seconds"] = time.perf_counter() - started
            console.print(f"VACUUM (ANALYZE) in {seeding['vacuum_analyze_seconds']:.0f} s")
        if args.keep:
            self.keep_paths.append(url)
        return url, seeding

    async def measure(self, url: str) -> dict[str, Any]:
        store = await open_migrated(url, self.tmp)
        try:
            log = StatementLog(store)
            params = await discover(store)
            facts = await database_facts(store)
            console.print(
                f"queries as of {params.now:%Y-%m-%d %H:%M:%S} UTC (the newest row); busiest "
                f"tenant {params.top_tenant}, tenant #{params.rare_rank} {params.rare_tenant}, "
                f"busiest model {params.top_model}"
            )
            out = []
            for q in queries(params, not self.args.skip_pages):
                timing = await time_query(store, q, self.args.runs)
                verdict = timing["pass"]
                mark = "" if verdict is None else (" PASS" if verdict else " [red]FAIL[/]")
                console.print(
                    f"  {q.name:<58} {timing['median_ms']:>9.1f} ms (max "
                    f"{timing['max_ms']:.1f}){mark}"
                )
                if verdict is False or self.args.explain_all:
                    timing["explain"] = await explain(store, log, q)
                out.append(timing)
            return {"params": dataclasses.asdict(params), "database": facts, "queries": out}
        finally:
            await store.close()

    async def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        url, seeding = await self.prepare()
        measured = await self.measure(url)
        measured["params"]["now"] = str(measured["params"]["now"])
        return {
            "meta": {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(["python bench/analytics_bench.py", *sys.argv[1:]]),
                "backend": self.args.backend,
                "runs": self.args.runs,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "git": git_version(),
                "load_average": os.getloadavg(),
                "wall_seconds": time.perf_counter() - started,
            },
            "seeding": seeding,
            **measured,
        }

    def cleanup(self) -> None:
        if self.args.keep and self.keep_paths:
            console.print(f"[bold]kept[/]: {', '.join(self.keep_paths)}")
            if self.pg is not None:
                console.print(
                    f"  the PostgreSQL cluster keeps running (data in {self.pg.dir}); stop it with "
                    f"runuser -u postgres -- pg_ctl -D {self.pg.data} stop && rm -rf {self.pg.dir}"
                )
                shutil.rmtree(self.tmp, ignore_errors=True)  # nothing in it on PostgreSQL
            else:
                console.print(f"  remove it with rm -rf {self.tmp}")
            return
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- output -----------------------------------------------------------------------------------


def print_report(results: dict[str, Any]) -> None:
    meta, seeding, db = results["meta"], results["seeding"], results["database"]
    rows = seeding.get("rows")
    title = (
        f"{meta['backend']}: {rows:,} rows" if rows is not None else f"{meta['backend']} (reused)"
    )
    table = Table(title=f"Dashboard queries, {title}, median and max of {meta['runs']} runs")
    for name, justify in (("page", "left"), ("query", "left"), ("median ms", "right"),
                          ("max ms", "right"), ("target", "right"), ("verdict", "left"),
                          ("answered by", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for q in results["queries"]:
        verdict = {None: "", True: "[green]PASS[/]", False: "[bold red]FAIL[/]"}[q["pass"]]
        target = "" if q["target_ms"] is None else f"≤ {q['target_ms']:g}"
        table.add_row(
            q["page"], q["name"], f"{q['median_ms']:.1f}", f"{q['max_ms']:.1f}", target, verdict,
            q["note"],
        )  # fmt: skip
    console.print(table)
    console.print(
        "database: "
        + ", ".join(
            f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
            for k, v in db.items()
        )  # fmt: skip
    )
    for q in results["queries"]:
        if "explain" not in q:
            continue
        head, *plans = q["explain"]
        console.rule(f"{q['name']}: {q['median_ms']:.1f} ms")
        console.print(
            f"{head['statements']} SQL statements, {head['statements_ms']:.1f} ms when each runs "
            "alone (rows fetched); the slowest:"
        )
        for p in plans:
            console.print(f"[bold]{p['ms']:.1f} ms[/], {p['rows']} rows")
            console.print(short_sql(p["sql"]), soft_wrap=True, markup=False, highlight=False)
            params = [v for v in p["params"] if v != 0] if p["params"] else []
            console.print(f"non-zero params: {params}", markup=False, highlight=False)
            console.print("\n".join(p["plan"]), markup=False, highlight=False)


def short_sql(sql: str) -> str:
    """A statement with a long select list cut down (the full text is in the JSON)."""
    head, sep, rest = sql.partition("FROM ")
    if sep and len(head) > 240:
        head = head[:200] + f" … ({head.count(',') + 1} columns) "
    return " ".join((head + sep + rest).split())


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Dashboard query latency (see bench/README.md)")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--rows",
        type=int,
        default=None,
        help="rows to seed (default: 1,000,000 on SQLite, 10,000,000 on PostgreSQL)",
    )
    p.add_argument("--batch", type=int, default=5000, help="rows per insert_rows call")
    p.add_argument(
        "--writers",
        type=int,
        default=None,
        help="batches in flight at once (default: 2 on PostgreSQL, 1 on SQLite)",
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=25.0,
        help="seed only as many rows as fit this long, judged from a 100k-row probe (0: no limit)",
    )
    p.add_argument("--runs", type=int, default=5, help="timed runs per query, after one warm-up")
    p.add_argument("--seed", type=int, default=42, help="random seed of the synthetic data")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the seeded database (and leave the PostgreSQL cluster running)",
    )
    p.add_argument(
        "--reuse",
        metavar="PATH_OR_URL",
        help="time the queries on a database seeded before (a SQLite file or a "
        "postgresql:// URL) instead of seeding",
    )
    p.add_argument(
        "--explain-all",
        action="store_true",
        help="show the plans of every query, not only of those that miss the target",
    )
    p.add_argument(
        "--skip-pages",
        action="store_true",
        help="skip the whole-page timings (filter bar, Overview, Costs, Requests)",
    )
    p.add_argument("--results-dir", default=str(BENCH / "results"))
    args = p.parse_args()  # fmt: skip
    if args.rows is None:
        args.rows = 1_000_000 if args.backend == "sqlite" else 10_000_000
    if args.writers is None:
        args.writers = 2 if args.backend == "postgres" else 1
    if not 1_000 <= args.batch <= 5_000:
        p.error("--batch must be between 1,000 and 5,000 (what a gateway's batch writer flushes)")
    if args.rows < 1_000:
        p.error("--rows must be at least 1,000")
    return args


def main() -> int:
    args = parse_args()
    bench = Bench(args)
    try:
        with terminate_on_sigterm():
            results = uvloop.run(bench.run())
    except (KeyboardInterrupt, SystemExit):
        console.print("[yellow]interrupted[/]: cleaning up")
        return 130
    finally:
        bench.cleanup()
    print_report(results)
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = results["seeding"].get("rows", "reused")
    path = out / f"{bench.stamp}-analytics-{args.backend}-{rows}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"results: {path} ({results['meta']['wall_seconds'] / 60:.1f} min)")
    verdicts = [q["pass"] for q in results["queries"] if q["pass"] is not None]
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
