"""The request record: one per gateway request, built on the hot path and queued for the writer."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from llmops.observability.usage import Usage

# The order of llm_requests columns the writer inserts; `RequestRecord.row()` follows it.
COLUMNS = (
    "id",
    "created_at",
    "environment_id",
    "environment_name",
    "config_id",
    "config_slug",
    "variant_id",
    "variant_name",
    "variant_version",
    "credential_slug",
    "provider",
    "model",
    "requested_model",
    "endpoint",
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
    "price_source",
    "usage_source",
    "latency_ms",
    "ttft_ms",
    "status_code",
    "error_type",
    "is_streaming",
    "tags",
)


UUID_COLUMNS = frozenset({"id", "environment_id", "config_id", "variant_id"})
TIME_COLUMNS = frozenset({"created_at"})


def row_to_json(row: tuple[Any, ...]) -> bytes:
    """A row as one JSON line (for the spill and dead-letter files)."""
    # default=str: ids read back from PostgreSQL are asyncpg UUIDs, which orjson does not know.
    return orjson.dumps(dict(zip(COLUMNS, row, strict=True)), default=str)


def row_from_json(line: bytes) -> tuple[Any, ...]:
    data = orjson.loads(line)
    out = []
    for name in COLUMNS:
        value = data.get(name)
        if value is not None and name in UUID_COLUMNS:
            value = uuid.UUID(value)
        elif value is not None and name in TIME_COLUMNS:
            value = dt.datetime.fromisoformat(value)
        out.append(value)
    return tuple(out)


@dataclass(slots=True)
class RequestRecord:
    id: uuid.UUID
    created_at: dt.datetime
    endpoint: str
    environment_id: uuid.UUID | None = None
    environment_name: str | None = None
    config_id: uuid.UUID | None = None
    config_slug: str | None = None
    variant_id: uuid.UUID | None = None
    variant_name: str | None = None
    variant_version: int | None = None
    credential_slug: str | None = None
    provider: str | None = None
    model: str | None = None
    requested_model: str | None = None
    usage: Usage | None = None
    usage_source: str = "missing"  # provider / estimated / missing
    input_cost: int | None = None
    cached_cost: int | None = None
    cache_write_cost: int | None = None
    output_cost: int | None = None
    price_source: str | None = None
    latency_ms: int = 0
    ttft_ms: int | None = None
    status_code: int = 0
    error_type: str | None = None
    is_streaming: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    # Not a column: the genai-prices provider id to try first when pricing (see pricer.py).
    price_hint: str | None = None
    # Not a column: stream events received, for estimating the usage of a cut-off stream.
    stream_chunks: int = 0
    # Not columns: bodies kept for llm_request_bodies when LLMOPS_LOG_BODIES is on (0 = off).
    capture_bytes: int = 0
    request_body: bytes | None = None
    response_body: bytearray | None = None

    @property
    def total_cost(self) -> int | None:
        parts = (self.input_cost, self.cached_cost, self.cache_write_cost, self.output_cost)
        if all(p is None for p in parts):
            return None
        return sum(p or 0 for p in parts)

    def row(self) -> tuple[Any, ...]:
        u = self.usage
        return (
            self.id,
            self.created_at,
            self.environment_id,
            self.environment_name,
            self.config_id,
            self.config_slug,
            self.variant_id,
            self.variant_name,
            self.variant_version,
            self.credential_slug,
            self.provider,
            self.model,
            self.requested_model,
            self.endpoint,
            u.prompt_tokens if u else None,
            u.completion_tokens if u else None,
            u.total_tokens if u else None,
            u.cached_tokens if u else None,
            u.cache_write_tokens if u else None,
            u.reasoning_tokens if u else None,
            self.input_cost,
            self.cached_cost,
            self.cache_write_cost,
            self.output_cost,
            self.total_cost,
            self.price_source,
            self.usage_source,
            self.latency_ms,
            self.ttft_ms,
            self.status_code,
            self.error_type,
            self.is_streaming,
            self.tags,
        )
