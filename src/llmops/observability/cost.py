"""Pure pricing: token usage and per-million-token rates in, integer micro-dollars out.

Units and rounding. A rate in USD per million tokens is numerically the rate in micro-dollars per
token, so a bucket's exact cost in micro-dollars is just ``tokens * rate``. Each of the four parts
is computed exactly in ``Decimal`` and then rounded half-up to a whole micro-dollar; the total is
the sum of the *rounded* parts, so the parts stored on a row always add up to its total. Money
never passes through ``float``.

Buckets (``usage.py`` says how tokens are counted):

- input: ``prompt_tokens - cached_tokens - cache_write_tokens`` (never below 0) at ``input``, plus
  any per-request fee (it is paid for sending the request, and a row has no fifth part);
- cached: ``cached_tokens`` at ``cache_read`` (``input`` when None);
- cache write: ``cache_write_tokens`` at ``cache_write`` (``input`` when None);
- output: ``completion_tokens`` at ``output``, except reasoning tokens at ``reasoning`` when set.

Where prices come from. ``PriceBook`` first applies user overrides (latest ``effective_from`` not
after the request wins), then reads the price entries of the ``genai-prices`` library and turns
them into our own ``ModelPrice``; it never calls the library's ``calc_price`` (a test checks that
every library entry we read agrees with it). Library entries can change over time
(``ConditionalPrice`` with a start date or a daily time window) and can be tiered by prompt size
(``TieredPrices``: above a threshold *all* tokens of the request pay the tier rate); both are kept,
and chosen per request by timestamp and by ``prompt_tokens``. Price keys for usage we do not
measure (audio/image tokens, one-hour cache writes, web searches) are ignored, as the library
itself would price them at 0 for our usage. Service-tier and batch variants are ignored: the
gateway prices at the standard rate. A model billed only by units we cannot count (characters,
audio hours, pages) is *unpriced*, never 0; a model the library lists with no prices at all is
free.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import TYPE_CHECKING, Any

from llmops.observability.usage import Usage
from llmops.store import utc

__all__ = ["Cost", "ModelPrice", "PriceBook", "PriceOverride", "price_usage"]

# Wide enough that tokens * rate is never rounded before we round it ourselves.
_EXACT = Context(prec=60, rounding=ROUND_HALF_UP)
_ONE = Decimal(1)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Rates in USD per million tokens (== micro-dollars per token), as ``Decimal``.

    ``None`` means the bucket is not priced separately (see the module docstring for what it falls
    back to). ``request`` is a per-request fee in USD per million requests (== micro-dollars per
    request). ``tiers`` are ``(threshold, price)`` pairs, ascending: a request whose
    ``prompt_tokens`` exceed a threshold pays that tier's rates on all its tokens.
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    source: str = ""
    request: Decimal | None = None
    tiers: tuple[tuple[int, ModelPrice], ...] = ()

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_read", "cache_write", "reasoning", "request"):
            value = getattr(self, name)
            if not (
                isinstance(value, Decimal) or (value is None and name not in ("input", "output"))
            ):
                raise TypeError(f"ModelPrice.{name} must be a Decimal, got {type(value).__name__}")

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        """The rates that apply to a request with ``prompt_tokens`` input tokens."""
        chosen = self
        for threshold, tier in self.tiers:
            if prompt_tokens > threshold:
                chosen = tier
        return chosen


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced request in integer micro-dollars, with the source of the price used."""

    input_cost: int
    cached_cost: int
    cache_write_cost: int
    output_cost: int
    source: str

    @property
    def total(self) -> int:
        return self.input_cost + self.cached_cost + self.cache_write_cost + self.output_cost


@dataclass(frozen=True)
class PriceOverride:
    """A user price: applies to ``provider`` (None = any) and models matching ``model_pattern``
    (an fnmatch glob, case-insensitive) for requests at or after ``effective_from`` (UTC)."""

    provider: str | None
    model_pattern: str
    price: ModelPrice
    effective_from: dt.datetime
    id: str


def _micros(tokens: int, rate: Decimal) -> Decimal:
    return _EXACT.multiply(Decimal(tokens), rate)


def _round(exact: Decimal) -> int:
    return int(exact.quantize(_ONE, rounding=ROUND_HALF_UP, context=_EXACT))


def price_usage(usage: Usage, price: ModelPrice) -> Cost:
    """Price ``usage`` with ``price``, each part rounded half-up to a whole micro-dollar."""
    price = price.for_prompt(usage.prompt_tokens)
    cached = max(usage.cached_tokens, 0)
    writes = max(usage.cache_write_tokens, 0)
    uncached = max(usage.prompt_tokens - cached - writes, 0)
    completion = max(usage.completion_tokens, 0)
    input_exact = _micros(uncached, price.input) + (price.request or _ZERO)
    if price.reasoning is None:
        output_exact = _micros(completion, price.output)
    else:
        reasoning = min(max(usage.reasoning_tokens, 0), completion)
        output_exact = _micros(completion - reasoning, price.output) + _micros(
            reasoning, price.reasoning
        )
    return Cost(
        input_cost=_round(input_exact),
        cached_cost=_round(_micros(cached, _or(price.cache_read, price.input))),
        cache_write_cost=_round(_micros(writes, _or(price.cache_write, price.input))),
        output_cost=_round(output_exact),
        source=price.source,
    )


def _or(rate: Decimal | None, default: Decimal) -> Decimal:
    return default if rate is None else rate


# Our provider types, mapped to the genai-prices provider ids to try in order. None lets the library
# pick the provider from the model name; any other provider string is passed through as an id.
_LIBRARY_PROVIDERS: Mapping[str, tuple[str | None, ...]] = {
    "openai": ("openai",),
    "azure": ("azure", "openai"),
    "anthropic": ("anthropic",),
    # Not passed as an id: the library would match "openai-compatible" to OpenAI by substring.
    "openai-compatible": (None,),
}

# genai-prices price keys we express, and the ModelPrice field each one fills.
_TOKEN_KEYS: Mapping[str, str] = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "output_reasoning_mtok": "reasoning",
}
_REQUEST_KEY = "requests_kcount"  # USD per thousand requests
if TYPE_CHECKING:  # genai-prices loads its price data (~20 MB) on import: only when pricing
    from genai_prices import types as gp
    from genai_prices.data_snapshot import DataSnapshot

    _Rate = Decimal | gp.TieredPrices
    _Constraint = gp.StartDateConstraint | gp.TimeOfDateConstraint | None


def _gp() -> Any:
    from genai_prices import types

    return types


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One library price entry for a model; ``price`` None when we cannot express it."""

    constraint: _Constraint
    price: ModelPrice | None


@dataclass(frozen=True, slots=True)
class _Entry:
    """What a (provider, model) resolves to, minus the choice that depends on the request time."""

    overrides: tuple[tuple[dt.datetime, ModelPrice], ...]  # newest first
    library: tuple[_Candidate, ...]  # empty: the library does not know the model


def _rate_at(rate: _Rate, threshold: int | None) -> Decimal:
    if isinstance(rate, Decimal):
        return rate
    chosen = rate.base
    for tier in rate.tiers:
        if threshold is not None and tier.start <= threshold:
            chosen = tier.price
    return chosen


def _flat_price(rates: Mapping[str, _Rate], threshold: int | None, source: str) -> ModelPrice:
    fields = {_TOKEN_KEYS[k]: _rate_at(v, threshold) for k, v in rates.items() if k in _TOKEN_KEYS}
    request = rates.get(_REQUEST_KEY)
    return ModelPrice(
        input=fields.get("input", _ZERO),
        output=fields.get("output", _ZERO),
        cache_read=fields.get("cache_read"),
        cache_write=fields.get("cache_write"),
        reasoning=fields.get("reasoning"),
        source=source,
        # Per thousand requests -> per million requests, i.e. micro-dollars per request.
        request=None if request is None else _rate_at(request, threshold) * 1000,
    )


def _from_library(prices: gp.ModelPrice, source: str) -> ModelPrice | None:
    """Our ModelPrice for one library entry, or None if it bills only units we cannot count."""
    gp = _gp()
    rates: dict[str, _Rate] = {
        key: value
        for key, value in vars(prices).items()
        if not key.startswith("_") and isinstance(value, Decimal | gp.TieredPrices)
    }
    if rates and not rates.keys() & {"input_mtok", "output_mtok"}:
        return None
    thresholds = sorted(
        {t.start for v in rates.values() if isinstance(v, gp.TieredPrices) for t in v.tiers}
    )
    tiers = tuple((t, _flat_price(rates, t, f"{source} [>{t} input tokens]")) for t in thresholds)
    return replace(_flat_price(rates, None, source), tiers=tiers)


def _describe(constraint: _Constraint) -> str:
    gp = _gp()
    if isinstance(constraint, gp.StartDateConstraint):
        return f" [from {constraint.start_date.isoformat()}]"
    if isinstance(constraint, gp.TimeOfDateConstraint):
        return f" [{constraint.start_time:%H:%M}-{constraint.end_time:%H:%M} UTC]"
    return ""


def _pick(candidates: Sequence[_Candidate], at: dt.datetime) -> ModelPrice | None:
    # The library's own rule: the last entry whose constraint holds wins, else the first entry.
    for candidate in reversed(candidates):
        if candidate.constraint is None or candidate.constraint.active(at):
            return candidate.price
    return candidates[0].price


def _with_source(price: ModelPrice, source: str) -> ModelPrice:
    tiers = tuple((t, replace(p, source=f"{source} [>{t} input tokens]")) for t, p in price.tiers)
    return replace(price, source=source, tiers=tiers)


class PriceBook:
    """Looks up prices by (provider, model) and request time; see the module docstring.

    Everything that does not depend on the request time is resolved once per (provider, model)
    and cached, so the hot path is a dict lookup plus a scan of a handful of dated entries. There
    is no await inside, so under asyncio no lock is needed; under threads a race only builds the
    same entry twice. The cache is cleared when it reaches ``max_entries``, since model names come
    from clients.
    """

    def __init__(
        self,
        overrides: Sequence[PriceOverride] = (),
        *,
        snapshot: DataSnapshot | None = None,
        max_entries: int = 4096,
    ) -> None:
        import genai_prices
        from genai_prices.data_snapshot import get_snapshot

        self._snapshot = snapshot if snapshot is not None else get_snapshot()
        version = f"genai-prices {genai_prices.__version__}"
        if self._snapshot.from_auto_update:
            version += f"+{self._snapshot.timestamp:%Y-%m-%d}"
        self._library_source = version
        self._owners = {id(m): p.id for p in self._snapshot.providers for m in p.models}
        self._overrides = tuple(
            (
                o.provider.lower() if o.provider is not None else None,
                o.model_pattern.lower(),
                utc(o.effective_from),
                _with_source(o.price, f"override:{o.id}"),
            )
            for o in overrides
        )
        self._max_entries = max_entries
        self._cache: dict[tuple[str, str, str | None], _Entry] = {}

    def lookup(
        self, provider: str, model: str, at: dt.datetime, *, hint: str | None = None
    ) -> ModelPrice | None:
        """The price for ``model`` served by ``provider`` at ``at``; None when unpriced.

        ``hint`` is a genai-prices provider id (e.g. ``"groq"``) tried first, for
        ``openai-compatible`` upstreams whose model names the library cannot attribute alone.
        Naive datetimes are taken as UTC.
        """
        key = (provider.lower(), model.lower(), hint.lower() if hint else None)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._resolve(*key)
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[key] = entry
        at = utc(at)
        for effective_from, price in entry.overrides:
            if effective_from <= at:
                return price
        return _pick(entry.library, at) if entry.library else None

    def cost(
        self, provider: str, model: str, usage: Usage, at: dt.datetime, *, hint: str | None = None
    ) -> Cost | None:
        """``usage`` priced at ``at``; None when the model is unpriced (never a cost of 0)."""
        price = self.lookup(provider, model, at, hint=hint)
        return None if price is None else price_usage(usage, price)

    def _resolve(self, provider: str, model: str, hint: str | None) -> _Entry:
        matching = [
            (effective_from, index, price)
            for index, (o_provider, pattern, effective_from, price) in enumerate(self._overrides)
            if o_provider in (None, provider) and fnmatch.fnmatchcase(model, pattern)
        ]
        # Newest first; for equal dates the override listed last wins.
        matching.sort(key=lambda m: (m[0], m[1]), reverse=True)
        overrides = tuple((effective_from, price) for effective_from, _, price in matching)
        ids = _LIBRARY_PROVIDERS.get(provider, (provider,))
        return _Entry(overrides, self._library(model, (hint, *ids) if hint else ids))

    def _library(self, model: str, provider_ids: Iterable[str | None]) -> tuple[_Candidate, ...]:
        for provider_id in provider_ids:
            try:
                _, info = self._snapshot.find_provider_model(model, None, provider_id, None)
            except LookupError:
                continue
            # Name the entry that priced the row: a fallback (azure -> openai) shows its real owner.
            source = f"{self._library_source}:{self._owners.get(id(info), '?')}/{info.id}"
            from genai_prices import types as gp_types

            if isinstance(info.prices, gp_types.ModelPrice):
                return (_Candidate(None, _from_library(info.prices, source)),)
            return tuple(
                _Candidate(c.constraint, _from_library(c.prices, source + _describe(c.constraint)))
                for c in info.prices
            )
        return ()
