"""The load generator: a separate process driving one scenario with aiohttp, printing JSON.

It runs a warm-up, waits until the gateway's batch writer has written every queued row (if
``--metrics-url`` is given), reads the CPU time of the watched process trees, sends the measured
requests (``--concurrency`` workers, until ``--requests`` are done or ``--duration`` seconds have
passed, whichever comes first), waits for the writer again, and reads the CPU time once more. So
the CPU window holds exactly the measured requests *and* the writes of their log rows.

With ``--ids-file`` it also writes the ``x-llmops-request-id`` of every answered request (warm-up
included, errors included), one per line, so that the caller can check the log table against them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import procstat
import uvloop

REQUEST_TIMEOUT = 30.0
DRAIN_TIMEOUT = 15.0


def payload(mode: str) -> bytes:
    """The request body: a short chat with two tags, streamed or not."""
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello to the benchmark."},
        ],
        "metadata": {"tenantSlug": "acme-corp", "userId": "user_123"},
    }
    if mode == "stream":
        body["stream"] = True
    return json.dumps(body).encode()


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    issued: int = 0
    ids: list[str] = field(default_factory=list)  # with --ids-file: every answered request's id
    unanswered: int = 0  # no HTTP answer at all (connection error, timeout)


def _check(mode: str, status: int, body: bytes, chunks: int) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    if mode == "chat":
        return None if b'"choices"' in body else f"no choices in {body[:200]!r}"
    seen = body.count(b'"content":')
    if seen != chunks or not body.rstrip().endswith(b"data: [DONE]"):
        return f"expected {chunks} content chunks and [DONE], got {seen}: {body[-200:]!r}"
    return None


async def run_phase(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    headers: dict[str, str],
    data: bytes,
    count: int,
    seconds: float,
) -> tuple[Phase, float]:
    phase = Phase()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while phase.issued < count and time.perf_counter() < deadline:
            phase.issued += 1
            t0 = time.perf_counter()
            first: float | None = None
            try:
                async with session.post(args.url, data=data, headers=headers) as resp:
                    if args.mode == "stream":
                        parts = []
                        async for chunk in resp.content.iter_any():
                            if first is None:
                                first = time.perf_counter()
                            parts.append(chunk)
                        body = b"".join(parts)
                    else:
                        body = await resp.read()
                    status = resp.status
                    if args.ids_file:
                        phase.ids.append(resp.headers.get("x-llmops-request-id", ""))
            except (aiohttp.ClientError, TimeoutError) as e:
                status, body = 0, repr(e).encode()
                phase.unanswered += 1
            t1 = time.perf_counter()
            problem = _check(args.mode, status, body, args.expect_chunks)
            if problem is not None:
                phase.errors += 1
                phase.first_error = phase.first_error or problem
                continue
            phase.latencies.append(t1 - t0)
            if first is not None:
                phase.ttfb.append(first - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return phase, time.perf_counter() - started


async def drain(
    session: aiohttp.ClientSession, metrics_url: str | None, confirmations: int = 1
) -> float:
    """Wait (bounded) until the gateway has written every queued log row; the seconds waited.

    With several workers each answers /metrics for its own writer, on whichever connection the
    kernel hands it: ``confirmations`` polls in a row must find nothing left to write."""
    if not metrics_url:
        return 0.0
    started = time.perf_counter()
    seen = 0
    while time.perf_counter() - started < DRAIN_TIMEOUT:
        # A new connection each time, so that several workers get asked.
        async with session.get(metrics_url, headers={"connection": "close"}) as resp:
            text = await resp.text()
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            values[name] = float(value or 0)
        done = sum(
            values.get(f"llmops_log_rows_{k}_total", 0)
            for k in ("written", "spilled", "dead_lettered")
        )
        if done >= values.get("llmops_log_rows_queued_total", 0):
            seen += 1
            if seen >= confirmations:
                return time.perf_counter() - started
            continue
        seen = 0
        await asyncio.sleep(0.1)
    raise TimeoutError("the gateway did not write its queued log rows in time")


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0–100) of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    ms = 1000.0
    return {
        "p50_ms": _scale(percentile(ordered, 50), ms),
        "p90_ms": _scale(percentile(ordered, 90), ms),
        "p99_ms": _scale(percentile(ordered, 99), ms),
        "mean_ms": _scale(sum(ordered) / len(ordered) if ordered else None, ms),
        "max_ms": _scale(ordered[-1] if ordered else None, ms),
    }


def _scale(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


async def main(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    for item in args.header:
        name, _, value = item.partition(":")
        headers[name.strip()] = value.strip()
    pids = {name: int(pid) for name, _, pid in (p.partition("=") for p in args.cpu_pid)}
    data = payload(args.mode)
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warm, _ = await run_phase(
            session, args, headers, data, args.warmup_requests, args.warmup_seconds
        )
        if warm.errors and not warm.latencies:
            raise RuntimeError(f"every warm-up request failed: {warm.first_error}")
        await drain(session, args.metrics_url, args.drain_confirmations)
        cpu0 = {name: procstat.cpu_seconds(pid) for name, pid in pids.items()}
        cpu0["client"] = time.process_time()
        if "gateway" in pids:
            cpu0["gateway_loop"] = procstat.main_thread_cpu_seconds(pids["gateway"])
        machine0 = procstat.machine_busy_seconds()
        window_start = time.perf_counter()
        phase, elapsed = await run_phase(session, args, headers, data, args.requests, args.duration)
        drained = await drain(session, args.metrics_url, args.drain_confirmations)
        cpu1 = {name: procstat.cpu_seconds(pid) for name, pid in pids.items()}
        cpu1["client"] = time.process_time()
        if "gateway" in pids:
            cpu1["gateway_loop"] = procstat.main_thread_cpu_seconds(pids["gateway"])
        machine1 = procstat.machine_busy_seconds()
        window = time.perf_counter() - window_start
    done = len(phase.latencies) + phase.errors
    if args.ids_file:
        with open(args.ids_file, "w") as f:
            f.writelines(rid + "\n" for rid in (*warm.ids, *phase.ids))
    return {
        "mode": args.mode,
        "concurrency": args.concurrency,
        "requests": done,
        "ok": len(phase.latencies),
        "errors": phase.errors,
        "first_error": phase.first_error,
        "warmup_requests": warm.issued,
        "unanswered": warm.unanswered + phase.unanswered,
        "seconds": elapsed,
        "drain_seconds": drained,
        "rps": len(phase.latencies) / elapsed if elapsed else 0.0,
        "latency": summary(phase.latencies),
        "ttfb": summary(phase.ttfb) if phase.ttfb else None,
        "cpu_window_seconds": window,
        "cpu_seconds": {name: cpu1[name] - cpu0[name] for name in cpu0},
        "cpu_ms_per_request": {
            name: (cpu1[name] - cpu0[name]) * 1000 / done if done else None for name in cpu0
        },
        # CPU seconds of every watched process (and this client) per second of the window: how
        # much of the machine the scenario kept busy.
        "busy_cores": sum(cpu1[n] - cpu0[n] for n in (*pids, "client")) / window
        if window
        else None,
        # The same for the whole machine: above busy_cores, something else was running too.
        "machine_busy_cores": (machine1 - machine0) / window if window else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="drive one benchmark scenario; prints JSON")
    p.add_argument("--url", required=True, help="POST target (127.0.0.1 only)")
    p.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    p.add_argument("--mode", choices=("chat", "stream"), default="chat")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--requests", type=int, default=1000, help="most measured requests")
    p.add_argument("--duration", type=float, default=10.0, help="most measured seconds")
    p.add_argument("--warmup-requests", type=int, default=200)
    p.add_argument("--warmup-seconds", type=float, default=2.0)
    p.add_argument("--expect-chunks", type=int, default=16)
    p.add_argument("--metrics-url", help="the gateway's /metrics, to wait for its log writer")
    p.add_argument(
        "--drain-confirmations", type=int, default=1, help="polls in a row (one per worker)"
    )
    p.add_argument("--cpu-pid", action="append", default=[], help="name=pid, repeatable")
    p.add_argument("--ids-file", help="write every answered request's x-llmops-request-id here")
    args = p.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        p.error("--url must be on 127.0.0.1")
    return args


if __name__ == "__main__":
    result = uvloop.run(main(parse_args()))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
