"""Costs checked against the providers' published per-million-token rates, worked out by hand.

Each table row writes the published rates as literals and the expected micro-dollars per part as
literals. One test re-derives the expected parts from the rates with plain Decimal arithmetic (so
the hand arithmetic is checked), one checks the rates against the genai-prices data the gateway
uses, and one checks what the gateway charges. A rate in USD per million tokens is the rate in
micro-dollars per token, so each part is ``tokens * rate`` rounded half-up.

Where genai-prices 0.2.3 disagrees with the provider's launch pricing we trust the library and say
so in the row's comment.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import genai_prices
import pytest
from genai_prices import types as gp
from genai_prices.data_snapshot import DataSnapshot, get_snapshot

from llmops.observability.cost import (
    Cost,
    ModelPrice,
    PriceBook,
    PriceOverride,
    price_usage,
)
from llmops.observability.usage import Usage

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
LIB = f"genai-prices {genai_prices.__version__}"


@dataclass(frozen=True)
class Case:
    id: str
    provider: str
    model: str
    prompt: int  # all input tokens, cache reads and writes included (usage.py's contract)
    completion: int  # all output tokens, reasoning included
    # Published USD per 1M tokens: input, cache read, cache write, output (None: not priced apart).
    rates: tuple[str, str | None, str | None, str]
    # By hand, in micro-dollars: uncached input, cache read, cache write, output.
    expected: tuple[int, int, int, int]
    cached: int = 0
    writes: int = 0
    reasoning: int = 0
    hint: str | None = None
    at: dt.datetime = NOW

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt,
            completion_tokens=self.completion,
            total_tokens=self.prompt + self.completion,
            cached_tokens=self.cached,
            cache_write_tokens=self.writes,
            reasoning_tokens=self.reasoning,
        )


CASES = [
    # --- OpenAI: cached input is reported inside prompt_tokens; reasoning is billed as output.
    Case("gpt-4o", "openai", "gpt-4o", 1000, 200, ("2.5", "1.25", None, "10"), (2500, 0, 0, 2000)),
    # 6201 * 2.5 = 15502.5 -> 15503; 6144 * 1.25 = 7680; 789 * 10 = 7890
    Case("gpt-4o cached", "openai", "gpt-4o-2024-08-06", 12345, 789,
         ("2.5", "1.25", None, "10"), (15503, 7680, 0, 7890), cached=6144),
    # 12345 * 0.15 = 1851.75 -> 1852; 789 * 0.6 = 473.4 -> 473
    Case("gpt-4o-mini", "openai", "gpt-4o-mini", 12345, 789,
         ("0.15", "0.075", None, "0.6"), (1852, 0, 0, 473)),
    # 10297 * 0.15 = 1544.55 -> 1545; 2048 * 0.075 = 153.6 -> 154
    Case("gpt-4o-mini cached", "openai", "gpt-4o-mini-2024-07-18", 12345, 789,
         ("0.15", "0.075", None, "0.6"), (1545, 154, 0, 473), cached=2048),
    # 10001 * 2 = 20002; 40000 * 0.5 = 20000; 333 * 8 = 2664
    Case("gpt-4.1 cached", "openai", "gpt-4.1", 50001, 333,
         ("2", "0.5", None, "8"), (20002, 20000, 0, 2664), cached=40000),
    # 6753 * 0.4 = 2701.2 -> 2701; 1024 * 0.1 = 102.4 -> 102; 555 * 1.6 = 888
    Case("gpt-4.1-mini cached", "openai", "gpt-4.1-mini", 7777, 555,
         ("0.4", "0.1", None, "1.6"), (2701, 102, 0, 888), cached=1024),
    # 5 * 0.1 = 0.5 -> 1 (half-up); 1 * 0.4 = 0.4 -> 0
    Case("gpt-4.1-nano tiny", "openai", "gpt-4.1-nano", 5, 1,
         ("0.1", "0.025", None, "0.4"), (1, 0, 0, 0)),
    # 976 * 15 = 14640; 1024 * 7.5 = 7680; 3000 * 60 = 180000 (2500 of them reasoning)
    Case("o1 reasoning cached", "openai", "o1", 2000, 3000,
         ("15", "7.5", None, "60"), (14640, 7680, 0, 180000), cached=1024, reasoning=2500),
    # 1234 * 1.1 = 1357.4 -> 1357; 5678 * 4.4 = 24983.2 -> 24983
    Case("o3-mini reasoning", "openai", "o3-mini", 1234, 5678,
         ("1.1", "0.55", None, "4.4"), (1357, 0, 0, 24983), reasoning=5000),
    # 800 * 1.1 = 880; 19200 * 0.275 = 5280; 4321 * 4.4 = 19012.4 -> 19012
    Case("o4-mini reasoning cached", "openai", "o4-mini", 20000, 4321,
         ("1.1", "0.275", None, "4.4"), (880, 5280, 0, 19012), cached=19200, reasoning=4000),
    # o3 after the 2025-06-10 price cut: $2 / $0.50 / $8.
    Case("o3 after price cut", "openai", "o3", 10000, 1000,
         ("2", "0.5", None, "8"), (20000, 0, 0, 8000), reasoning=800,
         at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC)),
    # o3 at launch: $10 / $40. OpenAI's launch cached rate was $2.50; genai-prices has $0.50 for
    # both periods, and we trust it. 6000 * 10 = 60000; 4000 * 0.5 = 2000; 1000 * 40 = 40000
    Case("o3 before price cut", "openai", "o3", 10000, 1000,
         ("10", "0.5", None, "40"), (60000, 2000, 0, 40000), cached=4000,
         at=dt.datetime(2025, 5, 1, tzinfo=dt.UTC)),
    # 2222 * 1.25 = 2777.5 -> 2778; 1111 * 0.125 = 138.875 -> 139; 2222 * 10 = 22220
    Case("gpt-5 reasoning cached", "openai", "gpt-5", 3333, 2222,
         ("1.25", "0.125", None, "10"), (2778, 139, 0, 22220), cached=1111, reasoning=2000),
    # 1001 * 0.5 = 500.5 -> 501; 333 * 1.5 = 499.5 -> 500
    Case("gpt-3.5-turbo halves", "openai", "gpt-3.5-turbo", 1001, 333,
         ("0.5", None, None, "1.5"), (501, 0, 0, 500)),
    # Embeddings have no output rate. 8191 * 0.02 = 163.82 -> 164
    Case("text-embedding-3-small", "openai", "text-embedding-3-small", 8191, 0,
         ("0.02", None, None, "0"), (164, 0, 0, 0)),
    Case("azure gpt-4o", "azure", "gpt-4o", 1000, 100,
         ("2.5", "1.25", None, "10"), (2500, 0, 0, 1000)),
    # 8000 * 0.15 = 1200; 3000 * 0.075 = 225; 100 * 0.6 = 60
    Case("azure gpt-4o-mini cached", "azure", "gpt-4o-mini", 11000, 100,
         ("0.15", "0.075", None, "0.6"), (1200, 225, 0, 60), cached=3000),
    Case("compatible gpt-4o-mini", "openai-compatible", "gpt-4o-mini", 100, 100,
         ("0.15", "0.075", None, "0.6"), (15, 0, 0, 60)),
    # --- Anthropic: reads and writes arrive beside input_tokens and are added into prompt_tokens.
    # 1000 fresh + 5000 read + 2000 written: 3000; 1500; 7500; 500 * 15 = 7500
    Case("claude-3-5-sonnet", "anthropic", "claude-3-5-sonnet-20241022", 8000, 500,
         ("3", "0.3", "3.75", "15"), (3000, 1500, 7500, 7500), cached=5000, writes=2000),
    # 1234 * 0.8 = 987.2 -> 987; 4321 * 0.08 = 345.68 -> 346; 1111 * 1 = 1111; 777 * 4 = 3108
    Case("claude-3-5-haiku", "anthropic", "claude-3-5-haiku-20241022", 6666, 777,
         ("0.8", "0.08", "1", "4"), (987, 346, 1111, 3108), cached=4321, writes=1111),
    # 10 * 3 = 30; 20000 * 0.3 = 6000; 3000 * 3.75 = 11250; 1500 * 15 = 22500
    Case("claude-sonnet-4", "anthropic", "claude-sonnet-4-20250514", 23010, 1500,
         ("3", "0.3", "3.75", "15"), (30, 6000, 11250, 22500), cached=20000, writes=3000),
    # 333 * 15 = 4995; 1001 * 1.5 = 1501.5 -> 1502; 77 * 18.75 = 1443.75 -> 1444; 99 * 75 = 7425
    Case("claude-opus-4", "anthropic", "claude-opus-4-20250514", 1411, 99,
         ("15", "1.5", "18.75", "75"), (4995, 1502, 1444, 7425), cached=1001, writes=77),
    # One token each: 15; 1.5 -> 2; 18.75 -> 19; 75
    Case("claude-opus-4-1 one token each", "anthropic", "claude-opus-4-1-20250805", 3, 1,
         ("15", "1.5", "18.75", "75"), (15, 2, 19, 75), cached=1, writes=1),
    # Extended thinking is part of output_tokens. 2500 * 3; 4000 * 3.75; 2000 * 15
    Case("claude-3-7-sonnet write only", "anthropic", "claude-3-7-sonnet-20250219", 6500, 2000,
         ("3", "0.3", "3.75", "15"), (7500, 0, 15000, 30000), writes=4000),
    # 4000 * 0.25 = 1000; 10000 * 0.03 = 300; 2000 * 0.3 = 600; 1000 * 1.25 = 1250
    Case("claude-3-haiku", "anthropic", "claude-3-haiku-20240307", 16000, 1000,
         ("0.25", "0.03", "0.3", "1.25"), (1000, 300, 600, 1250), cached=10000, writes=2000),
    # 999 * 1; 12345 * 0.1 = 1234.5 -> 1235; 5555 * 1.25 = 6943.75 -> 6944; 2345 * 5 = 11725
    Case("claude-haiku-4-5", "anthropic", "claude-haiku-4-5-20251001", 18899, 2345,
         ("1", "0.1", "1.25", "5"), (999, 1235, 6944, 11725), cached=12345, writes=5555),
    # 170k prompt stays in the base tier: 50000 * 3; 100000 * 0.3; 20000 * 3.75; 4000 * 15
    Case("claude-sonnet-4-5 under 200k", "anthropic", "claude-sonnet-4-5-20250929", 170000, 4000,
         ("3", "0.3", "3.75", "15"), (150000, 30000, 75000, 60000), cached=100000, writes=20000),
    # Above 200k every token pays the long-context rates: 150000 * 6; 50000 * 0.6;
    # 10000 * 7.5; 2000 * 22.5
    Case("claude-sonnet-4-5 over 200k", "anthropic", "claude-sonnet-4-5-20250929", 210000, 2000,
         ("6", "0.6", "7.5", "22.5"), (900000, 30000, 75000, 45000), cached=50000, writes=10000),
    Case("compatible claude-3-5-haiku", "openai-compatible", "claude-3-5-haiku-latest", 1000, 1000,
         ("0.8", "0.08", "1", "4"), (800, 0, 0, 4000)),
    # --- Gemini through an OpenAI-compatible endpoint; thinking tokens are billed as output.
    # 68000 * 0.075 = 5100; 32000 * 0.01875 = 600; 1000 * 0.3 = 300
    Case("gemini-1.5-flash", "openai-compatible", "gemini-1.5-flash", 100000, 1000,
         ("0.075", "0.01875", None, "0.3"), (5100, 600, 0, 300), cached=32000),
    # Over 128k: 130001 * 0.15 = 19500.15 -> 19500; 999 * 0.6 = 599.4 -> 599
    Case("gemini-1.5-flash over 128k", "openai-compatible", "gemini-1.5-flash-002", 130001, 999,
         ("0.15", "0.0375", None, "0.6"), (19500, 0, 0, 599), hint="google"),
    # genai-prices has no cache rate for 1.5 Pro (Google published $0.3125), so cached tokens pay
    # the input rate: 3567 * 1.25 = 4458.75 -> 4459; 1000 * 1.25 = 1250; 890 * 5 = 4450
    Case("gemini-1.5-pro", "openai-compatible", "gemini-1.5-pro", 4567, 890,
         ("1.25", None, None, "5"), (4459, 1250, 0, 4450), cached=1000),
    # 200000 * 2.5 = 500000; 1000 * 10 = 10000
    Case("gemini-1.5-pro over 128k", "openai-compatible", "gemini-1.5-pro", 200000, 1000,
         ("2.5", None, None, "10"), (500000, 0, 0, 10000), hint="google"),
    # 5903 * 0.1 = 590.3 -> 590; 4096 * 0.025 = 102.4 -> 102; 1234 * 0.4 = 493.6 -> 494
    Case("gemini-2.0-flash", "openai-compatible", "gemini-2.0-flash-001", 9999, 1234,
         ("0.1", "0.025", None, "0.4"), (590, 102, 0, 494), cached=4096),
    Case("gemini-2.0-flash-lite", "openai-compatible", "gemini-2.0-flash-lite", 1000, 1000,
         ("0.075", None, None, "0.3"), (75, 0, 0, 300)),
    # 1000 * 0.3 = 300; 1000 * 0.03 = 30; 3000 * 2.5 = 7500 (2500 of them thinking)
    Case("gemini-2.5-flash thinking", "openai-compatible", "gemini-2.5-flash", 2000, 3000,
         ("0.3", "0.03", None, "2.5"), (300, 30, 0, 7500), cached=1000, reasoning=2500),
    # Exactly 200k is not *over* 200k: base tier. 150000 * 1.25; 50000 * 0.125; 1000 * 10
    Case("gemini-2.5-pro at 200k", "openai-compatible", "gemini-2.5-pro", 200000, 1000,
         ("1.25", "0.125", None, "10"), (187500, 6250, 0, 10000), cached=50000, reasoning=500),
    # 100001 * 2.5 = 250002.5 -> 250003; 100000 * 0.25 = 25000; 2000 * 15 = 30000
    Case("gemini-2.5-pro over 200k", "openai-compatible", "gemini-2.5-pro", 200001, 2000,
         ("2.5", "0.25", None, "15"), (250003, 25000, 0, 30000), cached=100000, hint="google"),
    # 123 * 0.1 = 12.3 -> 12; 45 * 0.4 = 18
    Case("gemini-2.5-flash-lite", "openai-compatible", "gemini-2.5-flash-lite", 123, 45,
         ("0.1", "0.01", None, "0.4"), (12, 0, 0, 18)),
]  # fmt: skip


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def test_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hand_arithmetic_matches_published_rates(case: Case) -> None:
    rate_in, rate_read, rate_write, rate_out = (Decimal(r) if r else None for r in case.rates)
    assert rate_in is not None and rate_out is not None
    uncached = case.prompt - case.cached - case.writes
    assert _half_up(uncached * rate_in) == case.expected[0]
    assert _half_up(case.cached * (rate_read or rate_in)) == case.expected[1]
    assert _half_up(case.writes * (rate_write or rate_in)) == case.expected[2]
    assert _half_up(case.completion * rate_out) == case.expected[3]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_library_rates_match_published_rates(book: PriceBook, case: Case) -> None:
    price = book.lookup(case.provider, case.model, case.at, hint=case.hint)
    assert price is not None
    price = price.for_prompt(case.prompt)
    published = tuple(Decimal(r) if r else None for r in case.rates)
    assert (price.input, price.cache_read, price.cache_write, price.output) == published
    assert price.reasoning is None and price.request is None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cost_of_each_part_matches_hand_computation(book: PriceBook, case: Case) -> None:
    cost = book.cost(case.provider, case.model, case.usage(), case.at, hint=case.hint)
    assert cost is not None
    parts = (cost.input_cost, cost.cached_cost, cost.cache_write_cost, cost.output_cost)
    assert parts == case.expected
    assert cost.total == sum(case.expected)
    assert cost.source.startswith(f"{LIB}:")


def test_each_part_rounds_half_up_and_total_is_sum_of_rounded_parts() -> None:
    price = ModelPrice(
        input=Decimal("0.5"),
        output=Decimal("2.5"),
        cache_read=Decimal("0.5"),
        cache_write=Decimal("0.25"),
        source="t",
    )
    usage = Usage(prompt_tokens=4, completion_tokens=1, cached_tokens=1, cache_write_tokens=2)
    # Exact parts 0.5, 0.5, 0.5, 2.5 (sum 4.0): half-up, not half-even, and rounded per part.
    assert price_usage(usage, price) == Cost(1, 1, 1, 3, "t")
    assert price_usage(usage, price).total == 6


def test_just_below_half_rounds_down() -> None:
    price = ModelPrice(input=Decimal("0.4999999"), output=Decimal("1.4999999"))
    assert price_usage(Usage(prompt_tokens=1, completion_tokens=1), price) == Cost(0, 0, 0, 1, "")


def test_large_counts_stay_exact() -> None:
    price = ModelPrice(input=Decimal("0.000001"), output=Decimal("123.456789"))
    usage = Usage(prompt_tokens=10**12 + 1, completion_tokens=10**9)
    cost = price_usage(usage, price)
    assert (cost.input_cost, cost.output_cost) == (1_000_000, 123_456_789_000)


def test_uncached_input_never_negative() -> None:
    price = ModelPrice(
        input=Decimal(1), output=Decimal(1), cache_read=Decimal(1), cache_write=Decimal(2)
    )
    # Inconsistent provider numbers: more cached and written than the whole prompt.
    usage = Usage(prompt_tokens=100, cached_tokens=80, cache_write_tokens=50)
    assert price_usage(usage, price) == Cost(0, 80, 100, 0, "")


def test_unpriced_cache_buckets_fall_back_to_input_rate() -> None:
    price = ModelPrice(input=Decimal(2), output=Decimal(1))
    usage = Usage(prompt_tokens=10, cached_tokens=3, cache_write_tokens=4)
    assert price_usage(usage, price) == Cost(6, 6, 8, 0, "")


def test_reasoning_rate_applies_to_reasoning_tokens_only() -> None:
    price = ModelPrice(input=Decimal(1), output=Decimal(10), reasoning=Decimal(3))
    assert price_usage(Usage(completion_tokens=1000, reasoning_tokens=400), price).output_cost == (
        600 * 10 + 400 * 3
    )
    # More reasoning than output (bad provider data) is capped at the output count.
    assert price_usage(Usage(completion_tokens=10, reasoning_tokens=50), price).output_cost == 30


def test_library_reasoning_rate_is_used(book: PriceBook) -> None:
    # Perplexity's Sonar Deep Research: $2 in, $8 out, $3 reasoning per 1M.
    usage = Usage(prompt_tokens=1000, completion_tokens=1000, reasoning_tokens=400)
    cost = book.cost("openai-compatible", "sonar-deep-research", usage, NOW, hint="perplexity")
    assert cost == Cost(2000, 0, 0, 600 * 8 + 400 * 3, f"{LIB}:perplexity/sonar-deep-research")


def test_per_request_fee_is_counted_as_input(book: PriceBook) -> None:
    # Perplexity Sonar: $1 in, $1 out per 1M, plus $12 per 1000 requests = 12000 micro-dollars.
    usage = Usage(prompt_tokens=100, completion_tokens=100)
    cost = book.cost("openai-compatible", "sonar", usage, NOW, hint="perplexity")
    assert cost == Cost(100 + 12000, 0, 0, 100, f"{LIB}:perplexity/sonar")


def test_money_must_be_decimal_not_float() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        ModelPrice(input=0.15, output=Decimal("0.6"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cache_read"):
        ModelPrice(input=Decimal(1), output=Decimal(1), cache_read=1)  # type: ignore[arg-type]


def _source(book: PriceBook, provider: str, model: str, at: dt.datetime) -> str:
    price = book.lookup(provider, model, at)
    assert price is not None
    return price.source


def _override(
    pattern: str,
    rate: str,
    since: dt.datetime,
    oid: str,
    provider: str | None = "openai",
) -> PriceOverride:
    price = ModelPrice(input=Decimal(rate), output=Decimal(rate))
    return PriceOverride(provider, pattern, price, since, oid)


def test_override_beats_library() -> None:
    book = PriceBook([_override("gpt-4o*", "1", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "ours")])
    cost = book.cost("openai", "gpt-4o-mini", Usage(prompt_tokens=10, completion_tokens=5), NOW)
    assert cost == Cost(10, 0, 0, 5, "override:ours")
    # The glob is case-insensitive and does not reach other models.
    assert _source(book, "openai", "GPT-4O", NOW) == "override:ours"
    assert _source(book, "openai", "gpt-4.1", NOW) == f"{LIB}:openai/gpt-4.1"


def test_override_for_another_provider_does_not_apply() -> None:
    since = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    book = PriceBook([_override("gpt-4o", "1", since, "azure-only", provider="azure")])
    assert _source(book, "openai", "gpt-4o", NOW) == f"{LIB}:openai/gpt-4o"
    assert _source(book, "azure", "gpt-4o", NOW) == "override:azure-only"


def test_override_without_provider_applies_to_any_provider() -> None:
    since = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    book = PriceBook([_override("my-model", "2", since, "any", provider=None)])
    for provider in ("openai", "azure", "anthropic", "openai-compatible"):
        assert _source(book, provider, "my-model", NOW) == "override:any"


def test_override_effective_in_the_future_does_not_apply_yet() -> None:
    since = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    book = PriceBook([_override("gpt-4o-mini", "1", since, "next-year")])
    assert _source(book, "openai", "gpt-4o-mini", NOW) == f"{LIB}:openai/gpt-4o-mini"
    later = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert _source(book, "openai", "gpt-4o-mini", later) == "override:next-year"
    # Unknown to the library: unpriced until the override starts.
    book = PriceBook([_override("in-house", "1", since, "in-house")])
    assert book.lookup("openai", "in-house", NOW) is None


def test_latest_effective_override_wins() -> None:
    book = PriceBook(
        [
            _override("gpt-4o*", "3", dt.datetime(2026, 6, 1, tzinfo=dt.UTC), "june"),
            _override("gpt-4o*", "1", dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "2025"),
            _override("gpt-4o-mini", "2", dt.datetime(2026, 3, 1), "march-naive-utc"),
        ]
    )
    at = dt.datetime
    assert _source(book, "openai", "gpt-4o-mini", NOW) == "override:june"
    assert _source(book, "openai", "gpt-4o-mini", at(2026, 4, 1)) == "override:march-naive-utc"
    assert _source(book, "openai", "gpt-4o-mini", at(2025, 6, 1)) == "override:2025"
    assert _source(book, "openai", "gpt-4o-mini", at(2024, 6, 1)) == f"{LIB}:openai/gpt-4o-mini"


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "no-such-model"),
        ("anthropic", "gpt-4o"),
        ("azure", "my-finetune"),
        ("openai-compatible", "llama-3.3-70b-versatile"),
        ("openai-compatible", "openai/gpt-4o"),
        ("openai", "tts-1"),  # billed per character, which we do not count
        ("openai", "whisper-1"),  # billed per audio hour
    ],
)
def test_unknown_model_is_unpriced_not_free(book: PriceBook, provider: str, model: str) -> None:
    assert book.lookup(provider, model, NOW) is None
    assert book.cost(provider, model, Usage(prompt_tokens=10, completion_tokens=10), NOW) is None


def test_provider_hint_prices_openai_compatible_models(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=1000)
    cost = book.cost("openai-compatible", "llama-3.3-70b-versatile", usage, NOW, hint="groq")
    assert cost is not None and cost.total > 0
    assert cost.source == f"{LIB}:groq/llama-3.3-70b-versatile"


def test_model_listed_without_prices_is_free(book: PriceBook) -> None:
    cost = book.cost("openai", "omni-moderation-latest", Usage(prompt_tokens=500), NOW)
    assert cost == Cost(0, 0, 0, 0, f"{LIB}:openai/moderation")


@pytest.mark.parametrize(
    ("provider", "model", "prompt", "at", "source"),
    [
        ("openai", "gpt-4o-mini", 10, NOW, "openai/gpt-4o-mini"),
        ("azure", "gpt-4o", 10, NOW, "openai/gpt-4o"),  # azure falls back to OpenAI's entry
        ("openai", "o3", 10, dt.datetime(2025, 5, 1), "openai/o3"),
        ("openai", "o3", 10, NOW, "openai/o3 [from 2025-06-10]"),
        ("anthropic", "claude-sonnet-4-20250514", 10, NOW, "anthropic/claude-sonnet-4-0"),
        ("openai-compatible", "gemini-2.5-pro", 200000, NOW, "google/gemini-2.5-pro"),
        (
            "openai-compatible",
            "gemini-2.5-pro",
            200001,
            NOW,
            "google/gemini-2.5-pro [>200000 input tokens]",
        ),
        # DeepSeek's standard rate applies 00:30-16:30 UTC; the first entry is the discount.
        ("openai-compatible", "deepseek-chat", 10, NOW, "deepseek/deepseek-chat [00:30-16:30 UTC]"),
        ("openai-compatible", "deepseek-chat", 10, NOW.replace(hour=20), "deepseek/deepseek-chat"),
    ],
)
def test_price_source_names_the_library_entry(
    book: PriceBook, provider: str, model: str, prompt: int, at: dt.datetime, source: str
) -> None:
    cost = book.cost(provider, model, Usage(prompt_tokens=prompt), at)
    assert cost is not None
    assert cost.source == f"{LIB}:{source}"


def test_time_of_day_prices_are_chosen_per_request(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    peak = book.cost("openai-compatible", "deepseek-chat", usage, NOW)
    # A naive timestamp is UTC; 20:00 UTC is off-peak.
    off_peak = book.cost("openai-compatible", "deepseek-chat", usage, dt.datetime(2026, 11, 1, 20))
    assert peak is not None and off_peak is not None
    assert (peak.input_cost, peak.output_cost) == (270_000, 1_100_000)
    assert (off_peak.input_cost, off_peak.output_cost) == (135_000, 550_000)


class _CountingSnapshot(DataSnapshot):
    calls: int = 0

    def find_provider_model(
        self,
        model_ref: str,
        provider: gp.Provider | None,
        provider_id: str | None,
        provider_api_url: str | None,
    ) -> tuple[gp.Provider, gp.ModelInfo]:
        self.calls += 1
        return super().find_provider_model(model_ref, provider, provider_id, provider_api_url)


def _counting_book() -> tuple[PriceBook, _CountingSnapshot]:
    snapshot = _CountingSnapshot(providers=get_snapshot().providers, from_auto_update=False)
    return PriceBook(snapshot=snapshot), snapshot


def test_lookup_is_cached_per_provider_and_model() -> None:
    book, snapshot = _counting_book()
    first = book.lookup("openai", "gpt-4o-mini", NOW)
    assert first is not None
    assert book.lookup("openai", "gpt-4o-mini", NOW) is first
    assert book.lookup("openai", "gpt-4o-mini", NOW + dt.timedelta(days=1)) is first
    assert snapshot.calls == 1
    # Misses are cached too.
    assert book.lookup("openai", "no-such-model", NOW) is None
    assert book.lookup("openai", "no-such-model", NOW) is None
    assert snapshot.calls == 2


def test_cached_entry_still_chooses_price_by_time() -> None:
    book, snapshot = _counting_book()
    before = book.lookup("openai", "o3", dt.datetime(2025, 5, 1, tzinfo=dt.UTC))
    after = book.lookup("openai", "o3", dt.datetime(2025, 7, 1, tzinfo=dt.UTC))
    assert before is not None and after is not None
    assert (before.input, after.input) == (Decimal(10), Decimal(2))
    assert book.lookup("openai", "o3", dt.datetime(2025, 5, 2, tzinfo=dt.UTC)) is before
    assert snapshot.calls == 1


def test_cache_is_bounded() -> None:
    book = PriceBook(max_entries=2)
    for i in range(5):
        book.lookup("openai", f"made-up-{i}", NOW)
    first = book.lookup("openai", "gpt-4o", NOW)
    assert book.lookup("openai", "gpt-4o", NOW) is first


def _library_entries() -> list[tuple[str, gp.ModelPrice]]:
    entries = []
    for provider in get_snapshot().providers:
        for model in provider.models:
            if isinstance(model.prices, gp.ModelPrice):
                entries.append((f"{provider.id}/{model.id}", model.prices))
            else:
                entries.extend((f"{provider.id}/{model.id}", c.prices) for c in model.prices)
    return entries


def test_every_library_entry_agrees_with_genai_prices_calc_price() -> None:
    """Our reading of the price entries gives the library's own totals, within rounding."""
    from llmops.observability.cost import _from_library

    usages = [
        Usage(
            prompt_tokens=1234,
            completion_tokens=567,
            cached_tokens=200,
            cache_write_tokens=100,
            reasoning_tokens=300,
        ),
        Usage(prompt_tokens=250_001, completion_tokens=3, cached_tokens=1000),
        Usage(prompt_tokens=5),
    ]
    checked = 0
    for name, entry in _library_entries():
        price = _from_library(entry, name)
        if price is None:
            continue
        for usage in usages:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                theirs = entry.calc_price(
                    genai_prices.Usage(
                        input_tokens=usage.prompt_tokens,
                        cache_read_tokens=usage.cached_tokens,
                        cache_write_tokens=usage.cache_write_tokens,
                        output_tokens=usage.completion_tokens,
                        output_reasoning_tokens=usage.reasoning_tokens,
                    )
                )
            ours = price_usage(usage, price)
            micro = Decimal(1_000_000)
            # Four parts each rounded by at most half a micro-dollar.
            assert abs(ours.total - theirs["total_price"] * micro) <= 2, name
            assert abs(ours.output_cost - theirs["output_price"] * micro) <= Decimal("0.5"), name
            checked += 1
    assert checked > 5000
