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


# The last (milliseconds, 1/4096 ms) handed out: ids made by one process strictly increase.
_last_tick = 0


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """Return a UUIDv7: 48 bits of Unix milliseconds, 12 bits of sub-millisecond time (RFC 9562
    method 3), version and variant bits, 62 random bits.

    Ids made by one process strictly increase, also within a millisecond and if the clock steps
    back (the tick then moves on from the last one), so that sorting rows by id sorts them by
    arrival. With ``unix_ms`` given the 12 bits are random and no order is kept.
    """
    global _last_tick
    rand = _random10()
    if unix_ms is None:
        tick = time.time_ns() * 4096 // 1_000_000  # 1/4096 ms since the epoch
        if tick <= _last_tick:
            tick = _last_tick + 1
        _last_tick = tick
    else:
        tick = (unix_ms << 12) | ((rand >> 62) & 0xFFF)
    value = ((tick >> 12) & 0xFFFF_FFFF_FFFF) << 80  # unix_ts_ms (48 bits)
    value |= 0x7 << 76  # version 7
    value |= (tick & 0xFFF) << 64  # rand_a: the sub-millisecond fraction (12 bits)
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b (62 bits)
    return uuid.UUID(int=value)
