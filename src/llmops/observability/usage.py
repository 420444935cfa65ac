"""Token usage, read from every response and stream format we proxy.

Counting rules (the ones providers document, so costs can be checked by hand):
- ``prompt_tokens`` is all input tokens, cached ones included; ``cached_tokens`` (cache reads) and
  ``cache_write_tokens`` are the parts of it billed at other rates.
- ``completion_tokens`` is all output tokens, reasoning included; ``reasoning_tokens`` is that part.
Anthropic reports cache reads and writes *beside* ``input_tokens``, so they are added in here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def from_openai(u: Any) -> Usage | None:
    """Chat completions, completions and embeddings usage objects."""
    if not isinstance(u, dict):
        return None
    prompt = _int(u.get("prompt_tokens"))
    completion = _int(u.get("completion_tokens"))
    pd = u.get("prompt_tokens_details") or {}
    cd = u.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(u.get("total_tokens")) or prompt + completion,
        cached_tokens=_int(pd.get("cached_tokens")) if isinstance(pd, dict) else 0,
        cache_write_tokens=_int(u.get("cache_creation_input_tokens")),
        reasoning_tokens=_int(cd.get("reasoning_tokens")) if isinstance(cd, dict) else 0,
    )


def from_responses(u: Any) -> Usage | None:
    """The Responses API usage object (``input_tokens`` / ``output_tokens``)."""
    if not isinstance(u, dict):
        return None
    prompt = _int(u.get("input_tokens"))
    completion = _int(u.get("output_tokens"))
    idt = u.get("input_tokens_details") or {}
    odt = u.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(u.get("total_tokens")) or prompt + completion,
        cached_tokens=_int(idt.get("cached_tokens")) if isinstance(idt, dict) else 0,
        reasoning_tokens=_int(odt.get("reasoning_tokens")) if isinstance(odt, dict) else 0,
    )


def from_anthropic(u: Any) -> Usage | None:
    """Anthropic Messages usage: cache reads/writes are reported beside input_tokens."""
    if not isinstance(u, dict):
        return None
    cache_read = _int(u.get("cache_read_input_tokens"))
    cache_write = _int(u.get("cache_creation_input_tokens"))
    prompt = _int(u.get("input_tokens")) + cache_read + cache_write
    completion = _int(u.get("output_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def from_body(endpoint: str, body: Any) -> Usage | None:
    """Usage from a non-streamed OpenAI-format response body of ``endpoint``."""
    if not isinstance(body, dict):
        return None
    if endpoint == "responses":
        return from_responses(body.get("usage"))
    return from_openai(body.get("usage"))


def estimate(body: Any, stream_chunks: int) -> Usage:
    """A rough usage for a stream cut off before the provider reported any: four characters a
    prompt token, and one output token per stream event (OpenAI-style streams send about one token
    an event). Rows carry ``usage_source = "estimated"`` so no one mistakes it for a bill."""
    prompt = math.ceil(_text_length(body) / 4)
    completion = max(stream_chunks - 1, 0)  # the first event carries the role, not a token
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    if isinstance(value, dict):
        return sum(
            _text_length(v)
            for k, v in value.items()
            if k in ("messages", "content", "text", "input", "prompt", "system", "instructions")
        )
    return 0
