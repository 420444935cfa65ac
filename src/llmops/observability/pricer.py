"""Pricing request records: the price book from genai-prices plus the database's overrides.

Pricing runs in the batch writer, off the hot path, at the row's own ``created_at`` (so a price
change takes effect for requests that arrived after it, and repricing history uses the same code).
A row with usage and no known price stays unpriced (NULL cost), never 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.observability.cost import Cost, ModelPrice, PriceBook, PriceOverride
from llmops.observability.records import RequestRecord
from llmops.observability.usage import Usage
from llmops.store import schema as s

# Hosts of OpenAI-compatible providers → genai-prices provider ids, so their model names price.
_HOST_HINTS = (
    ("groq.com", "groq"),
    ("mistral.ai", "mistral"),
    ("together.xyz", "together"),
    ("together.ai", "together"),
    ("deepseek.com", "deepseek"),
    ("openrouter.ai", "openrouter"),
    ("generativelanguage.googleapis.com", "google"),
    ("fireworks.ai", "fireworks"),
    ("x.ai", "x-ai"),
    ("perplexity.ai", "perplexity"),
    ("cohere.com", "cohere"),
    ("api.openai.com", "openai"),
    ("anthropic.com", "anthropic"),
)


def price_hint(provider_type: str, base_url: str, options: Mapping[str, Any]) -> str | None:
    """The genai-prices provider id to try first for a credential (``options.price_provider``
    wins; else guessed from the base URL's host for OpenAI-compatible providers)."""
    explicit = options.get("price_provider")
    if isinstance(explicit, str) and explicit:
        return explicit
    if provider_type != "openai-compatible":
        return None
    host = (urlsplit(base_url).hostname or "").lower()
    for suffix, hint in _HOST_HINTS:
        if host == suffix or host.endswith("." + suffix):
            return hint
    return None


def load_overrides(conn: Connection) -> list[PriceOverride]:
    t = s.price_overrides
    rows = conn.execute(sa.select(t).order_by(t.c.effective_from, t.c.created_at)).all()
    return [
        PriceOverride(
            provider=r.provider,
            model_pattern=r.model_pattern,
            price=ModelPrice(
                input=r.input,
                output=r.output,
                cache_read=r.cache_read,
                cache_write=r.cache_write,
                reasoning=r.reasoning,
            ),
            effective_from=r.effective_from
            if r.effective_from.tzinfo
            else r.effective_from.replace(tzinfo=dt.UTC),
            id=str(r.id),
        )
        for r in rows
    ]


def apply_cost(record: RequestRecord, cost: Cost | None) -> None:
    if cost is None:
        return
    record.input_cost = cost.input_cost
    record.cached_cost = cost.cached_cost
    record.cache_write_cost = cost.cache_write_cost
    record.output_cost = cost.output_cost
    record.price_source = cost.source


class RecordPricer:
    """Fills a record's cost parts; the writer calls it for every record it takes off the queue.
    ``book`` is replaced when overrides change (see ``SnapshotHolder``)."""

    def __init__(self, book: PriceBook | None = None):
        self._book = book
        self._overrides: Sequence[PriceOverride] = ()

    @property
    def book(self) -> PriceBook:
        """Built on first use: loading the price library costs ~20 MB and ~0.1 s, which an idle
        gateway (or one that never logs usage) need not pay."""
        if self._book is None:
            self._book = PriceBook(self._overrides)
        return self._book

    def set_overrides(self, overrides: Sequence[PriceOverride]) -> None:
        """Use ``overrides`` from now on (the book is rebuilt on next use)."""
        self._overrides = tuple(overrides)
        self._book = None

    def cost(
        self,
        provider: str | None,
        model: str | None,
        usage: Usage | None,
        at: dt.datetime,
        hint: str | None,
    ) -> Cost | None:
        if usage is None or not provider or not model:
            return None
        return self.book.cost(provider, model, usage, at, hint=hint)

    def __call__(self, record: RequestRecord) -> None:
        apply_cost(
            record,
            self.cost(
                record.provider, record.model, record.usage, record.created_at, record.price_hint
            ),
        )
