"""The soak's load generator, a process of its own: ``python bench/soak.py loadgen ...``.

It sends a fixed, shuffled mix of requests (``MIX`` per 100) at a steady rate from
``--concurrency`` aiohttp workers, checks every answer, and writes one line per request to
``--ids``: ``kind, status, x-llmops-request-id, ok, started, ended`` (tab-separated; status 0 and
id ``-`` when no answer came; the times are ``time.monotonic()``, a clock the whole machine
shares, so that the orchestrator can tell which requests ran while the database was away). The
JSON summary (``--out``) holds the counts per kind and p50/p99 latency per 10 s bucket.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from loadgen import payload, percentile
from run import CHUNKS, CONFIG

SAMPLE_EVERY = 10.0  # seconds between samples (and the load generator's latency buckets)
REQUEST_TIMEOUT = 30.0  # per request

# The traffic mix, per 100 requests (a fixed shuffled cycle, so the mix is the same every 100).
MIX = {"chat": 46, "stream": 46, "disconnect": 3, "unknown_config": 3, "bad_secret": 2}
EXPECTED_STATUS = {
    "chat": 200,
    "stream": 200,
    "disconnect": 200,  # the headers arrive before the client hangs up
    "unknown_config": 404,
    "bad_secret": 401,
}
UNKNOWN_CONFIG = "soak-no-such-config"
SLOW_CONFIG = "soak-slow"  # disconnects go here: a fake that waits between chunks
BAD_SECRET = "llmops-soak-not-a-secret"

# One line of --ids, read back: kind, status (0: no answer), request id (32 hex digits, or "-"),
# answered as expected, started and ended (time.monotonic()).
Answer = tuple[str, int, str, bool, float, float]


def mix_cycle(seed: int) -> list[str]:
    kinds = [kind for kind, n in MIX.items() for _ in range(n)]
    random.Random(seed).shuffle(kinds)
    return kinds


@dataclass
class Bucket:
    """What the load generator saw in one 10 s window (by the time each request started)."""

    answered: int = 0
    problems: int = 0
    chat: list[float] = field(default_factory=list)
    stream: list[float] = field(default_factory=list)


@dataclass
class Tally:
    sent: collections.Counter[str] = field(default_factory=collections.Counter)
    answered: collections.Counter[str] = field(default_factory=collections.Counter)
    unanswered: collections.Counter[str] = field(default_factory=collections.Counter)
    wrong: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    first_problem: dict[str, str] = field(default_factory=dict)
    buckets: dict[int, Bucket] = field(default_factory=dict)


def check_answer(kind: str, status: int, body: bytes, chunks: int) -> str | None:
    """None if the answer is what ``kind`` should get, else what is wrong with it."""
    if status != EXPECTED_STATUS[kind]:
        return f"HTTP {status} (expected {EXPECTED_STATUS[kind]}): {body[:200]!r}"
    if kind == "chat":
        return None if b'"choices"' in body else f"no choices in {body[:200]!r}"
    if kind == "stream":
        seen = body.count(b'"content":')
        if seen != chunks or not body.rstrip().endswith(b"data: [DONE]"):
            return f"expected {chunks} content chunks and [DONE], got {seen}: {body[-200:]!r}"
        return None
    if kind == "disconnect":
        return None
    return None if b'"error"' in body else f"no error object in {body[:200]!r}"


async def one_request(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    kind: str,
    bodies: dict[bool, bytes],
) -> tuple[int, str | None, bytes]:
    """Send one request of ``kind``; (status, x-llmops-request-id, body read)."""
    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {BAD_SECRET if kind == 'bad_secret' else args.secret}",
        "x-llmops-config": {"unknown_config": UNKNOWN_CONFIG, "disconnect": SLOW_CONFIG}.get(
            kind, args.config
        ),
    }
    stream = kind in ("stream", "disconnect")
    async with session.post(args.url, data=bodies[stream], headers=headers) as resp:
        rid = resp.headers.get("x-llmops-request-id")
        if kind == "disconnect":
            first = await resp.content.readany()  # the first part of the stream, then hang up
            resp.close()  # closes the connection: the gateway sees the client leave
            return resp.status, rid, first
        return resp.status, rid, await resp.read()


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    cycle = mix_cycle(args.seed)
    bodies = {False: payload("chat"), True: payload("stream")}
    ids = open(args.ids, "w", buffering=1 << 16)  # noqa: SIM115 (closed in finally)
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    issued = 0
    next_slot = 0.0
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            Path(args.ready_file).write_text("ready\n")
            start = time.perf_counter()
            deadline = start + args.seconds
            next_slot = start

            async def pace() -> None:
                nonlocal next_slot
                if not interval:
                    return
                now = time.perf_counter()
                slot = max(next_slot, now - 1.0)  # after a stall, catch up at most 1 s
                next_slot = slot + interval
                if slot > now:
                    await asyncio.sleep(slot - now)

            async def worker() -> None:
                nonlocal issued
                while time.perf_counter() < deadline:
                    await pace()
                    if time.perf_counter() >= deadline:
                        return
                    kind = cycle[issued % len(cycle)]
                    issued += 1
                    tally.sent[kind] += 1
                    t0, m0 = time.perf_counter(), time.monotonic()
                    bucket = tally.buckets.setdefault(int((t0 - start) // SAMPLE_EVERY), Bucket())
                    try:
                        status, rid, body = await one_request(session, args, kind, bodies)
                    except (aiohttp.ClientError, TimeoutError) as e:
                        tally.unanswered[kind] += 1
                        bucket.problems += 1
                        tally.first_problem.setdefault(kind, f"no answer: {e!r}")
                        ids.write(f"{kind}\t0\t-\t0\t{m0:.3f}\t{time.monotonic():.3f}\n")
                        continue
                    latency = time.perf_counter() - t0
                    tally.answered[kind] += 1
                    tally.statuses[f"{kind}:{status}"] += 1
                    bucket.answered += 1
                    problem = check_answer(kind, status, body, args.chunks)
                    if rid is None:
                        problem = f"no x-llmops-request-id (HTTP {status})"
                    ok = int(problem is None)
                    ids.write(
                        f"{kind}\t{status}\t{rid or '-'}\t{ok}\t{m0:.3f}\t{m0 + latency:.3f}\n"
                    )
                    if problem is not None:
                        tally.wrong[kind] += 1
                        bucket.problems += 1
                        tally.first_problem.setdefault(kind, problem)
                    elif kind == "chat":
                        bucket.chat.append(latency)
                    elif kind == "stream":
                        bucket.stream.append(latency)

            workers = asyncio.gather(*(worker() for _ in range(args.concurrency)))
            await asyncio.wait_for(workers, args.seconds + REQUEST_TIMEOUT + 15)
            elapsed = time.perf_counter() - start
    finally:
        ids.close()
    return {
        "seconds": elapsed,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "sent": dict(tally.sent),
        "answered": dict(tally.answered),
        "unanswered": dict(tally.unanswered),
        "wrong": dict(tally.wrong),
        "statuses": dict(tally.statuses),
        "first_problem": tally.first_problem,
        "buckets": [
            {
                "t": (i + 1) * SAMPLE_EVERY,
                "answered": b.answered,
                "problems": b.problems,
                "chat": latency_summary(b.chat),
                "stream": latency_summary(b.stream),
            }
            for i, b in sorted(tally.buckets.items())
        ],
    }


def latency_summary(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
    return {
        "n": len(ordered),
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="soak.py loadgen", description="the soak's load generator")
    p.add_argument("--url", required=True, help="the gateway's chat completions URL (127.0.0.1)")
    p.add_argument("--secret", required=True)
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate", type=float, default=0.0, help="requests/s in all (0: no limit)")
    p.add_argument("--chunks", type=int, default=CHUNKS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ids", required=True, help="file for one tab-separated line per request")
    p.add_argument("--ready-file", required=True, help="written once the client is set up")
    p.add_argument("--out", required=True, help="the JSON summary")
    args = p.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        p.error("--url must be on 127.0.0.1")
    result = uvloop.run(drive(args))
    Path(args.out).write_text(json.dumps(result))
    return 0
