"""The synthetic request log of the analytics benchmark (``analytics_bench.py``).

``World(seed, start, end)`` draws the entities once from the seed: environments, configs with
their variants (A/B splits, version bumps), the models they route to, tenants and users, and
pools of token counts and latencies. ``World.batches`` then yields the rows of the timeline,
oldest first, as tuples in the order of ``records.COLUMNS`` (what ``store.insert_rows`` takes).
Popularity is Zipf-like and traffic follows daily and weekly curves with growth and two provider
incidents; bench/README.md, "Analytics queries", describes the data.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmops.ids import uuid7
from llmops.observability.records import COLUMNS

# The tags the gateway indexes by default (LLMOPS_INDEXED_TAGS): the rollups hook writes them
# while seeding, and the dashboard's queries read them.
INDEXED_TAGS = ("tenantSlug", "feature")


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
