"""Identifiers: UUIDv7 (RFC 9562), time-ordered so that primary keys follow arrival order."""

from __future__ import annotations

import os
import time
import uuid

# Random bits come from a buffer refilled 4 KiB at a time: one getrandom() call per request was
# 4–6 % of the gateway's CPU at high concurrency (bench/). Not thread-safe on purpose: ids are made
# on the event loop thread, and a race between threads only reuses random bits, never time bits.
_POOL_SIZE = 4096
_pool = b""
_pos = 0


def _random10() -> int:
    global _pool, _pos
    if _pos + 10 > len(_pool):
        _pool, _pos = os.urandom(_POOL_SIZE), 0
    value = int.from_bytes(_pool[_pos : _pos + 10], "big")
    _pos += 10
    return value


def _forget_pool() -> None:
    global _pool, _pos
    _pool, _pos = b"", 0


# A forked child must not hand out the random bits its parent will use too.
os.register_at_fork(after_in_child=_forget_pool)


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """Return a UUIDv7: 48 bits of Unix milliseconds, version and variant bits, 74 random bits."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = _random10()
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b (62 bits)
    return uuid.UUID(int=value)
