"""The LLMOps soak test: ``python bench/soak.py [--minutes N | --quick] [--backend postgres]``.

Starts the bench fake provider and ``llmops serve`` on 127.0.0.1 (logging to SQLite, or to a
throw-away PostgreSQL cluster), drives steady mixed traffic from a separate load-generator process
(this file, run with ``loadgen`` as first argument) and samples the gateway every 10 s: RSS, open
fds, asyncio tasks, log queue depth and rows written. After the run it checks that memory, fds
and tasks stayed flat and that every answered request is in ``llm_requests`` exactly once. Prints
the samples and a PASS/FAIL per check, and writes ``bench/results/<stamp>-soak-<backend>.json``.
See bench/README.md, section *Soak*.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import procstat
import uvloop
import yaml
from pgcluster import PgCluster
from rich.console import Console
from rich.table import Table
from run import (
    CHUNKS,
    CONFIG,
    GATEWAY_PATH,
    Processes,
    bench_document,
    free_port,
    http_call,
    llmops_command,
    meta,
    run_cli,
    terminate_on_sigterm,
    wait_until_served,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
console = Console(width=max(Console().width, 160))

SAMPLE_EVERY = 10.0  # seconds between samples (and the load generator's latency buckets)
WARMUP_SHARE = 0.20  # the first 20 % of the run is warm-up: not compared
BASELINE_END = 0.45  # the baseline window: samples in (20 %, 45 %] of the run
END_START = 0.75  # the end window: samples in (75 %, 100 %]
RSS_GROWTH_LIMIT = 0.10  # memory: end median at most 10 % above the baseline median
FD_NOISE = 5  # open fds: end median at most this many above the baseline median
TASK_NOISE = 10  # asyncio tasks: the same
REQUEST_TIMEOUT = 30.0  # per request, in the load generator
DRAIN_TIMEOUT = 60.0  # the writer must have written every queued row this long after the load

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
SLOW_CHUNK_DELAY = 0.05  # seconds between the slow fake's stream events (16 chunks: ~0.8 s)
BAD_SECRET = "llmops-soak-not-a-secret"


# --------------------------------------------------------------------------------------------
# The load generator (a separate process: ``python bench/soak.py loadgen ...``)
# --------------------------------------------------------------------------------------------


def request_body(stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello to the soak test."},
        ],
        "metadata": {"tenantSlug": "acme-corp", "userId": "user_123"},
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


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
    bodies = {False: request_body(False), True: request_body(True)}
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
                    t0 = time.perf_counter()
                    bucket = tally.buckets.setdefault(int((t0 - start) // SAMPLE_EVERY), Bucket())
                    try:
                        status, rid, body = await one_request(session, args, kind, bodies)
                    except (aiohttp.ClientError, TimeoutError) as e:
                        tally.unanswered[kind] += 1
                        bucket.problems += 1
                        tally.first_problem.setdefault(kind, f"no answer: {e!r}")
                        continue
                    latency = time.perf_counter() - t0
                    tally.answered[kind] += 1
                    tally.statuses[f"{kind}:{status}"] += 1
                    bucket.answered += 1
                    problem = check_answer(kind, status, body, args.chunks)
                    if rid is None:
                        problem = f"no x-llmops-request-id (HTTP {status})"
                    else:
                        ids.write(f"{kind}\t{status}\t{rid}\n")
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


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0–100) of an ascending list."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
    return {
        "n": len(ordered),
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
    }


def loadgen_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="soak.py loadgen", description="the soak's load generator")
    p.add_argument("--url", required=True, help="the gateway's chat completions URL (127.0.0.1)")
    p.add_argument("--secret", required=True)
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate", type=float, default=0.0, help="requests/s in all (0: no limit)")
    p.add_argument("--chunks", type=int, default=CHUNKS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ids", required=True, help="file for 'kind<TAB>status<TAB>request id' lines")
    p.add_argument("--ready-file", required=True, help="written once the client is set up")
    p.add_argument("--out", required=True, help="the JSON summary")
    args = p.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        p.error("--url must be on 127.0.0.1")
    result = uvloop.run(drive(args))
    Path(args.out).write_text(json.dumps(result))
    return 0


def slowfake_main(argv: list[str]) -> int:
    """The bench fake, except that it waits ``--chunk-delay`` s between stream events, so that a
    client hanging up after the first chunk leaves the gateway in the middle of the stream."""
    import uvicorn
    from fake_provider import BenchFake

    from llmops.testing import Scripted

    p = argparse.ArgumentParser(prog="soak.py slowfake", description=slowfake_main.__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chunks", type=int, default=CHUNKS)
    p.add_argument("--chunk-delay", type=float, default=SLOW_CHUNK_DELAY)
    args = p.parse_args(argv)

    class SlowFake(BenchFake):
        def _next(self) -> Scripted:
            return Scripted(text=self._answer, chunk_delay=args.chunk_delay)

    uvicorn.run(
        SlowFake(args.chunks),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return 0


def soak_document(fake_port: int, slow_port: int) -> dict[str, Any]:
    """The bench config plus ``soak-slow``: the same model, served by the slow fake."""
    doc = bench_document(fake_port)
    slow = dict(doc["providers"][0], slug="fake-slow", base_url=f"http://127.0.0.1:{slow_port}/v1")
    doc["providers"].append(slow)
    doc["configs"].append(
        {
            "slug": SLOW_CONFIG,
            "variants": [{"name": "default", "provider": "fake-slow", "model": "gpt-4o-mini"}],
            "targeting": {"bench": {"variant": "default"}},
        }
    )
    return doc


# --------------------------------------------------------------------------------------------
# The soak run
# --------------------------------------------------------------------------------------------


def read_metrics(port: int) -> dict[str, float]:
    status, text = http_call(port, "GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered HTTP {status}: {text[:200]!r}")
    out = {}
    for line in text.decode().splitlines():
        name, _, value = line.partition(" ")
        if name and not name.startswith("#"):
            out[name] = float(value or 0)
    return out


def proc_status(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
        self.args = args
        self.tmp = tmp
        self.procs = procs
        self.seconds = args.minutes * 60
        self.pg: PgCluster | None = None
        self.fake_port = 0
        self.slow_port = 0
        self.port = 0
        self.stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")

    # -- set-up --------------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
        env.pop("DATABASE_URL", None)
        return env

    def start_fake(self) -> None:
        self.fake_port = free_port()
        cmd = [sys.executable, str(BENCH / "fake_provider.py"), "--port", str(self.fake_port)]
        proc = self.procs.spawn("fake", [*cmd, "--chunks", str(CHUNKS)], self.base_env())
        wait_until_served(proc, self.fake_port, "GET", "/v1/models", timeout=30)
        self.slow_port = free_port()
        cmd = [sys.executable, str(BENCH / "soak.py"), "slowfake", "--port", str(self.slow_port)]
        proc = self.procs.spawn("fake-slow", cmd, self.base_env())
        wait_until_served(proc, self.slow_port, "GET", "/v1/models", timeout=30)

    def gateway_env(self) -> dict[str, str]:
        env = self.base_env()
        env.update(
            LLMOPS_DATA_DIR=str(self.tmp / "data"),
            LLMOPS_PORT=str(self.port),
            LLMOPS_METRICS_PUBLIC="true",
            LLMOPS_LOG_LEVEL="warning",
        )
        if self.pg is not None:
            env["DATABASE_URL"] = self.pg.url("gateway")
        return env

    def prepare(self, env: dict[str, str]) -> str:
        """Migrate (PostgreSQL), apply the bench config, and return the environment secret."""
        if self.pg is not None:
            self.pg.create_database("gateway")
            run_cli(["migrate"], env)
        doc = self.tmp / "bench.yaml"
        doc.write_text(yaml.safe_dump(soak_document(self.fake_port, self.slow_port)))
        out = run_cli(["apply", str(doc)], env)
        match = re.search(r"secret for environment bench .*?: (\S+)", out)
        if not match:
            raise RuntimeError(f"no secret in the output of llmops apply:\n{out}")
        return match.group(1)

    def start_gateway(self, env: dict[str, str], secret: str) -> subprocess.Popen[bytes]:
        body = json.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        ).encode()
        headers = {
            "authorization": f"Bearer {secret}",
            "x-llmops-config": CONFIG,
            "content-type": "application/json",
        }
        proc = self.procs.spawn("gateway", [*llmops_command(), "serve"], env)
        try:
            wait_until_served(proc, self.port, "POST", GATEWAY_PATH, body, headers, timeout=30)
        except (RuntimeError, TimeoutError):
            console.print(self.procs.tail("gateway"))
            raise
        return proc

    # -- sampling ------------------------------------------------------------------------------

    def sample(self, pid: int, t: float, prev: dict[str, Any] | None) -> dict[str, Any]:
        now = time.perf_counter()
        s: dict[str, Any] = {
            "t": round(t, 1),
            "rss_mb": procstat.rss_bytes(pid) / 2**20,
            "rss_anon_mb": procstat.rss_bytes(pid, "RssAnon") / 2**20,
            "fds_proc": open_fds(pid),
            "threads": proc_status(pid, "Threads"),
            "cpu_s": procstat.cpu_seconds(pid),
            "machine_busy_s": procstat.machine_busy_seconds(),
            "clock": now,
        }
        try:
            m = read_metrics(self.port)
        except (OSError, RuntimeError) as e:
            s["metrics_error"] = repr(e)
            m = {}
        s["fds_metric"] = m.get("llmops_open_fds")
        s["tasks"] = m.get("llmops_event_loop_tasks")
        s["queue_depth"] = m.get("llmops_log_queue_depth")
        s["rows_queued"] = m.get("llmops_log_rows_queued_total")
        s["rows_written"] = m.get("llmops_log_rows_written_total")
        s["rows_spilled"] = m.get("llmops_log_rows_spilled_total")
        s["rows_dead_lettered"] = m.get("llmops_log_rows_dead_lettered_total")
        if prev is not None and now > prev["clock"]:
            span = now - prev["clock"]
            if s["rows_queued"] is not None and prev["rows_queued"] is not None:
                s["req_per_s"] = (s["rows_queued"] - prev["rows_queued"]) / span
            s["gateway_cores"] = (s["cpu_s"] - prev["cpu_s"]) / span
            s["machine_cores"] = (s["machine_busy_s"] - prev["machine_busy_s"]) / span
        return s

    def drain(self) -> tuple[bool, float, dict[str, float]]:
        """Wait (bounded) until every queued log row is written, spilled or dead-lettered."""
        started = time.perf_counter()
        m: dict[str, float] = {}
        while time.perf_counter() - started < DRAIN_TIMEOUT:
            try:
                m = read_metrics(self.port)
            except (OSError, RuntimeError):
                time.sleep(0.2)
                continue
            done = sum(
                m.get(f"llmops_log_rows_{k}_total", 0)
                for k in ("written", "spilled", "dead_lettered")
            )
            if done >= m.get("llmops_log_rows_queued_total", 0) and not m.get(
                "llmops_log_queue_depth"
            ):
                return True, time.perf_counter() - started, m
            time.sleep(0.2)
        return False, time.perf_counter() - started, m

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        args = self.args
        console.rule(f"soak: {args.minutes:g} min, {args.backend}, c={args.concurrency}")
        if args.backend == "postgres":
            self.pg = PgCluster(free_port())  # assigned first: stop() removes its dir on errors
            self.pg.start()
        self.start_fake()
        self.port = free_port()
        env = self.gateway_env()
        secret = self.prepare(env)
        gateway = self.start_gateway(env, secret)
        time.sleep(1.0)
        samples = [self.sample(gateway.pid, 0.0, None)]
        console.print(
            f"  gateway pid {gateway.pid} on 127.0.0.1:{self.port}, idle RSS "
            f"{samples[0]['rss_mb']:.1f} MB, {samples[0]['fds_proc']} fds, "
            f"{samples[0]['tasks']} tasks; load for {self.seconds:.0f} s"
        )

        ids_path, out_path = self.tmp / "ids.tsv", self.tmp / "loadgen.json"
        ready = self.tmp / "loadgen.ready"
        cmd = [
            sys.executable, str(BENCH / "soak.py"), "loadgen",
            "--url", f"http://127.0.0.1:{self.port}{GATEWAY_PATH}", "--secret", secret,
            "--seconds", str(self.seconds + 2), "--concurrency", str(args.concurrency),
            "--rate", str(args.rate), "--ids", str(ids_path), "--ready-file", str(ready),
            "--out", str(out_path),
        ]  # fmt: skip
        load = self.procs.spawn("loadgen", cmd, self.base_env())
        ready_by = time.perf_counter() + 30
        while not ready.exists():
            if load.poll() is not None or time.perf_counter() > ready_by:
                raise RuntimeError(
                    f"the load generator did not start:\n{self.procs.tail('loadgen')}"
                )
            time.sleep(0.05)
        t0 = time.perf_counter()

        # One sample every 10 s while the load runs; the loop ends with the load (or its budget).
        budget = self.seconds + REQUEST_TIMEOUT + 30
        k = 1
        while True:
            due = t0 + k * SAMPLE_EVERY
            if due > t0 + self.seconds + 0.5 or load.poll() is not None:
                break
            time.sleep(max(0.0, due - time.perf_counter()))
            if gateway.poll() is not None:
                raise RuntimeError(f"the gateway exited with {gateway.returncode} under load")
            if load.poll() is not None:
                break
            s = self.sample(gateway.pid, time.perf_counter() - t0, samples[-1])
            samples.append(s)
            console.print(self.progress_line(s), highlight=False)
            k += 1
        try:
            load.wait(max(1.0, t0 + budget - time.perf_counter()))
        except subprocess.TimeoutExpired:
            self.procs.stop(load)
            raise RuntimeError("the load generator overran its time budget") from None
        if load.returncode != 0 or not out_path.exists():
            raise RuntimeError(f"load generator failed:\n{self.procs.tail('loadgen')}")
        self.procs.stop(load)
        loadres: dict[str, Any] = json.loads(out_path.read_text())

        drained, drain_s, final_metrics = self.drain()
        after = self.sample(gateway.pid, time.perf_counter() - t0, None)
        after["peak_rss_mb"] = (proc_status(gateway.pid, "VmHWM") or 0) / 1024
        self.procs.stop(gateway)
        gateway_exit = gateway.returncode
        db = self.read_table()
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        answered = self.read_ids(ids_path)
        logged = compare(answered, db)
        checks = evaluate(samples, self.seconds, loadres, logged, drained, final_metrics)
        return {
            "meta": {
                **run_meta(args),
                "minutes": args.minutes,
                "concurrency": args.concurrency,
                "rate": args.rate,
                "mix_per_100": MIX,
                "sample_every_s": SAMPLE_EVERY,
            },
            "samples": [{k: v for k, v in s.items() if k != "clock"} for s in samples],
            "after_drain": {k: v for k, v in after.items() if k != "clock"},
            "drain": {"ok": drained, "seconds": drain_s, "metrics": final_metrics},
            "gateway_exit_code": gateway_exit,
            "load": loadres,
            "logging": logged,
            "checks": checks,
        }

    @staticmethod
    def progress_line(s: dict[str, Any]) -> str:
        def fmt(v: Any, spec: str) -> str:
            return "—" if v is None else format(v, spec)

        return (
            f"  t={s['t']:>6.0f} s  RSS {s['rss_mb']:6.1f} MB  fds {fmt(s['fds_proc'], 'd')}"
            f"/{fmt(s['fds_metric'], '.0f')}  tasks {fmt(s['tasks'], '.0f')}  queue "
            f"{fmt(s['queue_depth'], '.0f')}  rows {fmt(s['rows_written'], '.0f')}  "
            f"{fmt(s.get('req_per_s'), '.0f')} req/s  gw {fmt(s.get('gateway_cores'), '.2f')} "
            f"cores  machine {fmt(s.get('machine_cores'), '.2f')}"
        )

    def read_table(self) -> dict[str, tuple[int, int]]:
        """request id (32 hex digits) → (times present, status_code), read after the gateway
        stopped."""
        counts: dict[str, tuple[int, int]] = {}
        rows: list[tuple[str, int]]
        if self.pg is not None:
            rows = asyncio.run(_pg_rows(self.pg.url("gateway")))
        else:
            path = self.tmp / "data" / "llmops.db"
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                rows = conn.execute("SELECT id, status_code FROM llm_requests").fetchall()
            finally:
                conn.close()
        for rid, status in rows:
            key = uuid.UUID(str(rid)).hex
            n, _ = counts.get(key, (0, status))
            counts[key] = (n + 1, status)
        return counts

    @staticmethod
    def read_ids(path: Path) -> list[tuple[str, int, str]]:
        out = []
        if path.exists():
            for line in path.read_text().splitlines():
                kind, status, rid = line.split("\t")
                out.append((kind, int(status), uuid.UUID(rid).hex))
        return out


async def _pg_rows(url: str) -> list[tuple[str, int]]:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=30)
    try:
        records = await conn.fetch("SELECT id::text, status_code FROM llm_requests", timeout=120)
    finally:
        await conn.close()
    return [(r[0], r[1]) for r in records]


@dataclass(frozen=True)
class SoakProfile:
    """What ``run.meta`` reads from a profile: its name and its settings."""

    name: str
    minutes: float
    concurrency: int
    rate: float


def run_meta(args: argparse.Namespace) -> dict[str, Any]:
    profile = SoakProfile(
        "quick" if args.quick else "soak", args.minutes, args.concurrency, args.rate
    )
    out = meta(argparse.Namespace(backends=[args.backend], workers=1), cast(Any, profile))
    out["command"] = " ".join(["python bench/soak.py", *sys.argv[1:]])
    return out


def compare(
    answered: list[tuple[str, int, str]], table: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    """Each answered request id against the log table."""
    seen = collections.Counter(rid for _, _, rid in answered)
    missing = [rid for rid in seen if rid not in table]
    twice = [rid for rid, (n, _) in table.items() if n != 1]
    status_mismatch: collections.Counter[str] = collections.Counter()
    logged_status: collections.Counter[str] = collections.Counter()
    for kind, status, rid in answered:
        if rid not in table:
            continue
        logged = table[rid][1]
        logged_status[f"{kind}:{logged}"] += 1
        expected = 499 if kind == "disconnect" else status  # the client left mid-stream
        if logged != expected:
            status_mismatch[f"{kind}: answered {status}, logged {logged}"] += 1
    return {
        "answered_with_id": len(answered),
        "answered_ids_unique": len(seen),
        "rows_in_table": sum(n for n, _ in table.values()),
        "missing": len(missing),
        "missing_examples": missing[:5],
        "logged_more_than_once": len(twice),
        "extra_rows": sum(1 for rid in table if rid not in seen),
        "status_mismatches": dict(status_mismatch),
        "logged_status_by_kind": dict(sorted(logged_status.items())),
    }


def windows(samples: list[dict[str, Any]], seconds: float) -> dict[str, list[dict[str, Any]]]:
    loaded = [s for s in samples if s["t"] > 0]
    return {
        "warmup": [s for s in loaded if s["t"] <= WARMUP_SHARE * seconds],
        "baseline": [
            s for s in loaded if WARMUP_SHARE * seconds < s["t"] <= BASELINE_END * seconds
        ],
        "end": [s for s in loaded if s["t"] > END_START * seconds],
    }


def slope_per_minute(samples: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares slope of ``key`` over time, per minute."""
    pts = [(s["t"], s[key]) for s in samples if s.get(key) is not None]
    if len(pts) < 3:
        return None
    mt = sum(t for t, _ in pts) / len(pts)
    mv = sum(v for _, v in pts) / len(pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return None if not den else 60 * sum((t - mt) * (v - mv) for t, v in pts) / den


def evaluate(
    samples: list[dict[str, Any]],
    seconds: float,
    load: dict[str, Any],
    logged: dict[str, Any],
    drained: bool,
    final: dict[str, float],
) -> list[dict[str, Any]]:
    w = windows(samples, seconds)
    post_warmup = w["baseline"] + [s for s in samples if s["t"] > BASELINE_END * seconds]
    checks: list[dict[str, Any]] = []

    def flat(name: str, key: str, limit: str, ok: Any, unit: str) -> None:
        base = median([s[key] for s in w["baseline"] if s.get(key) is not None])
        end = median([s[key] for s in w["end"] if s.get(key) is not None])
        slope = slope_per_minute(post_warmup, key)
        if base is None or end is None:
            checks.append({"check": name, "measured": "no samples", "limit": limit, "pass": False})
            return
        measured = f"{base:.1f} → {end:.1f} {unit} ({end - base:+.1f}"
        measured += f", {100 * (end - base) / base:+.1f} %)" if key.startswith("rss") else ")"
        if slope is not None:
            measured += f", slope {slope:+.2f} {unit}/min"
        checks.append(
            {
                "check": name,
                "baseline_median": base,
                "end_median": end,
                "slope_per_min": slope,
                "measured": measured,
                "limit": limit,
                "pass": bool(ok(base, end)),
            }
        )

    flat(
        "memory flat (RSS)",
        "rss_mb",
        f"≤ +{RSS_GROWTH_LIMIT:.0%}",
        lambda b, e: e <= b * (1 + RSS_GROWTH_LIMIT),
        "MB",
    )
    flat("open fds flat (/proc)", "fds_proc", f"≤ +{FD_NOISE}", lambda b, e: e <= b + FD_NOISE, "")
    flat(
        "open fds flat (llmops_open_fds)",
        "fds_metric",
        f"≤ +{FD_NOISE}",
        lambda b, e: e <= b + FD_NOISE,
        "",
    )
    flat(
        "asyncio tasks flat (llmops_event_loop_tasks)",
        "tasks",
        f"≤ +{TASK_NOISE}",
        lambda b, e: e <= b + TASK_NOISE,
        "",
    )
    ok_log = (
        logged["missing"] == 0
        and logged["logged_more_than_once"] == 0
        and logged["answered_ids_unique"] == logged["answered_with_id"]
        and logged["answered_with_id"] > 0
    )
    checks.append(
        {
            "check": "every answered request logged exactly once",
            "measured": (
                f"{logged['answered_with_id']} answered, {logged['missing']} missing, "
                f"{logged['logged_more_than_once']} twice, "
                f"{logged['answered_with_id'] - logged['answered_ids_unique']} duplicate ids; "
                f"{logged['rows_in_table']} rows ({logged['extra_rows']} not answered to the "
                "load generator)"
            ),
            "limit": "0 missing, 0 twice",
            "pass": ok_log,
        }
    )
    mismatches = sum(logged["status_mismatches"].values())
    checks.append(
        {
            "check": "logged status = status answered",
            "measured": f"{mismatches} mismatches",
            "limit": "0 (disconnects: 499)",
            "pass": mismatches == 0,
        }
    )
    sent = sum(load["sent"].values())
    unanswered = sum(load["unanswered"].values())
    wrong = sum(load["wrong"].values())
    # Rows the load generator has no id for: the start-up request, plus requests it sent but got
    # no answer to (which the gateway may still have logged).
    checks.append(
        {
            "check": "no rows beyond the answered ones",
            "measured": f"{logged['extra_rows']} extra rows",
            "limit": f"≤ 1 start-up request + {unanswered} unanswered",
            "pass": logged["extra_rows"] <= 1 + unanswered,
        }
    )
    checks.append(
        {
            "check": "every request answered as expected",
            "measured": f"{sent} sent, {unanswered} unanswered, {wrong} wrong",
            "limit": "0 unanswered, 0 wrong",
            "pass": unanswered == 0 and wrong == 0 and sent > 0,
        }
    )
    lost = final.get("llmops_log_rows_spilled_total", 0) + final.get(
        "llmops_log_rows_dead_lettered_total", 0
    )
    checks.append(
        {
            "check": "log writer kept up",
            "measured": (
                f"drained: {'yes' if drained else 'no'}, spilled "
                f"{final.get('llmops_log_rows_spilled_total', 0):.0f}, dead-lettered "
                f"{final.get('llmops_log_rows_dead_lettered_total', 0):.0f}"
            ),
            "limit": f"drained within {DRAIN_TIMEOUT:.0f} s, 0 spilled/dead-lettered",
            "pass": drained and lost == 0,
        }
    )
    return checks


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def print_report(results: dict[str, Any]) -> None:
    seconds = results["meta"]["minutes"] * 60
    w = windows(results["samples"], seconds)
    phase = {id(s): name for name, ss in w.items() for s in ss}
    buckets = {round(b["t"]): b for b in results["load"]["buckets"]}
    t = Table(
        title="samples every 10 s (latency: client side, of the requests started in the 10 s "
        "before the sample; rows: written to the log table; bad: unanswered or wrong answers)"
    )
    for col in (
        "t s", "window", "RSS MB", "anon MB", "fds /proc", "fds metric", "tasks", "threads",
        "queue", "rows", "req/s", "gw cores", "all cores", "chat p50/p99 ms",
        "stream p50/p99 ms", "bad",
    ):  # fmt: skip
        t.add_column(col, justify="right", no_wrap=col in ("window", "threads") or "p99" in col)

    def f(v: Any, spec: str = ".0f") -> str:
        return "—" if v is None else format(v, spec)

    def lat(b: dict[str, Any] | None, key: str) -> str:
        if b is None or not b[key]["n"]:
            return "—"
        return f"{b[key]['p50_ms']:.1f}/{b[key]['p99_ms']:.1f}"

    rows = [*results["samples"], {**results["after_drain"], "t": "drained"}]
    for s in rows:
        b = buckets.get(round(s["t"])) if isinstance(s["t"], float | int) else None
        t.add_row(
            f(s["t"]) if not isinstance(s["t"], str) else s["t"],
            phase.get(id(s), "idle" if s["t"] == 0 else ""),
            f(s["rss_mb"], ".1f"),
            f(s["rss_anon_mb"], ".1f"),
            f(s["fds_proc"], "d"),
            f(s["fds_metric"]),
            f(s["tasks"]),
            f(s["threads"], "d"),
            f(s["queue_depth"]),
            f(s["rows_written"]),
            f(s.get("req_per_s")),
            f(s.get("gateway_cores"), ".2f"),
            f(s.get("machine_cores"), ".2f"),
            lat(b, "chat"),
            lat(b, "stream"),
            f(b["problems"], "d") if b else "—",
        )
    console.print(t)

    load = results["load"]
    lt = Table(title="load generator")
    for col in ("kind", "sent", "answered", "unanswered", "wrong", "statuses (logged status)"):
        lt.add_column(col, justify="right" if col != "statuses (logged status)" else "left")
    logged_by = results["logging"]["logged_status_by_kind"]
    for kind in MIX:
        answered_st = ", ".join(
            f"{k.split(':')[1]}×{n}" for k, n in load["statuses"].items() if k.startswith(kind)
        )
        logged_st = ", ".join(
            f"{k.split(':')[1]}×{n}" for k, n in logged_by.items() if k.startswith(kind + ":")
        )
        lt.add_row(
            kind,
            str(load["sent"].get(kind, 0)),
            str(load["answered"].get(kind, 0)),
            str(load["unanswered"].get(kind, 0)),
            str(load["wrong"].get(kind, 0)),
            f"{answered_st} ({logged_st})",
        )
    console.print(lt)
    for kind, problem in load["first_problem"].items():
        console.print(f"  [red]first problem ({kind}):[/] {problem}")
    after = results["after_drain"]
    code = results["gateway_exit_code"]
    console.print(
        f"  {sum(load['sent'].values())} requests in {load['seconds']:.0f} s "
        f"({sum(load['sent'].values()) / load['seconds']:.0f} req/s); writer drained in "
        f"{results['drain']['seconds']:.1f} s; peak RSS {after['peak_rss_mb']:.1f} MB; gateway "
        f"exit status {code}"
        + (
            " (SIGTERM, re-raised by uvicorn after its graceful shutdown)"
            if code == -signal.SIGTERM
            else ""
        )
    )

    ct = Table(title="checks (baseline = samples in 20–45 % of the run, end = last 25 %)")
    for col in ("check", "measured", "limit", "verdict"):
        ct.add_column(col)
    for c in results["checks"]:
        ct.add_row(
            c["check"], c["measured"], c["limit"], "PASS" if c["pass"] else "[bold red]FAIL[/]"
        )
    console.print(ct)


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="LLMOps soak test (see bench/README.md, Soak)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    p.add_argument("--quick", action="store_true", help="2 minutes")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--concurrency", type=int, default=16, help="load generator workers (16)")
    p.add_argument(
        "--rate", type=float, default=300.0, help="requests/s in all (default 300; 0: no limit)"
    )
    p.add_argument("--results-dir", default=str(BENCH / "results"))
    p.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, database)")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes = 2.0
    if args.minutes * 60 < 6 * SAMPLE_EVERY:
        p.error("--minutes must be at least 1 (the windows need a few samples each)")
    if args.concurrency < 1 or args.rate < 0:
        p.error("--concurrency must be ≥ 1 and --rate ≥ 0")
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["loadgen"]:
        return loadgen_main(argv[1:])
    if argv[:1] == ["slowfake"]:
        return slowfake_main(argv[1:])
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="llmops-soak-"))
    procs = Processes(tmp)
    started = time.perf_counter()
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    soak = Soak(args, tmp, procs)
    try:
        with terminate_on_sigterm():
            results = soak.run()
    except (KeyboardInterrupt, SystemExit):
        console.print("[yellow]interrupted[/]: stopping every process this run started")
        return 130
    except BaseException:
        console.print("[red]soak aborted[/]; the last lines of each log:")
        for log in sorted(tmp.glob("*.log")):
            console.print(f"[bold]{log.name}[/]\n{procs.tail(log.stem)}")
        raise
    finally:
        procs.stop_all()
        if soak.pg is not None:
            soak.pg.stop()
        if args.keep_temp:
            console.print(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["meta"]["wall_seconds"] = time.perf_counter() - started
    print_report(results)
    name = f"{soak.stamp}-soak-{args.backend}-{args.minutes:g}min.json"
    path = results_dir / name
    path.write_text(json.dumps(results, indent=2))
    console.print(f"results: {path} ({results['meta']['wall_seconds']:.0f} s)")
    return 0 if all(c["pass"] for c in results["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
