"""What the soak runs and watches: the two fakes, ``llmops serve``, and its log table.

``Stack`` starts the bench fake and a slow fake (``python bench/soak.py slowfake``), applies the
bench config plus ``soak-slow``, starts the gateway with ``LLMOPS_METRICS_PUBLIC=true``, samples it
(``/proc`` and ``/metrics``), waits for its writer to drain, and reads ``llm_requests`` and the
rollup totals once the gateway has stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import procstat
import yaml
from pgcluster import PgCluster
from run import (
    CHUNKS,
    CONFIG,
    GATEWAY_PATH,
    Processes,
    bench_document,
    free_port,
    http_call,
    llmops_command,
    run_cli,
    wait_until_served,
)
from soak_load import SLOW_CONFIG, Answer

BENCH = Path(__file__).resolve().parent
DRAIN_TIMEOUT = 60.0  # the writer must have written every queued row this long after the load
SLOW_CHUNK_DELAY = 0.05  # seconds between the slow fake's stream events (16 chunks: ~0.8 s)
# Tables whose ``requests`` column must add up to the rows of llm_requests (the tag totals per
# tag key, as they count the rows without the tag too).
ROLLUPS = ("llm_rollup_hourly", "llm_rollup_daily")
TAG_ROLLUPS = ("llm_rollup_tag_hourly", "llm_rollup_tag_daily")


def slowfake_main(argv: list[str]) -> int:
    """The bench fake, except that it waits ``--chunk-delay`` s between stream events, so that a
    client hanging up after the first chunk leaves the gateway in the middle of the stream."""
    from fake_provider import BenchFake, serve

    from llmops.testing import Scripted

    p = argparse.ArgumentParser(prog="soak.py slowfake", description=slowfake_main.__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chunks", type=int, default=CHUNKS)
    p.add_argument("--chunk-delay", type=float, default=SLOW_CHUNK_DELAY)
    args = p.parse_args(argv)

    class SlowFake(BenchFake):
        def _next(self) -> Scripted:
            return Scripted(text=self._answer, chunk_delay=args.chunk_delay)

    serve(SlowFake(args.chunks), args.port)
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


def caught_up(m: dict[str, float]) -> bool:
    """Every row queued so far is in the table (or dead-lettered): nothing in the queue, nothing
    left in spill files. ``written`` counts replayed rows as they go in, so spilled rows are only
    done once replayed."""
    done = m.get("llmops_log_rows_written_total", 0) + m.get(
        "llmops_log_rows_dead_lettered_total", 0
    )
    return (
        done >= m.get("llmops_log_rows_queued_total", 0)
        and not m.get("llmops_log_queue_depth")
        and m.get("llmops_log_rows_replayed_total", 0) >= m.get("llmops_log_rows_spilled_total", 0)
    )


def read_answers(path: Path) -> list[Answer]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            kind, status, rid, ok, t0, t1 = line.split("\t")
            key = rid if rid == "-" else uuid.UUID(rid).hex
            out.append((kind, int(status), key, ok == "1", float(t0), float(t1)))
    return out


async def _pg_table(url: str) -> tuple[list[tuple[str, int]], dict[str, int | None]]:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=30)
    try:
        records = await conn.fetch("SELECT id::text, status_code FROM llm_requests", timeout=120)
        sums: dict[str, int | None] = {}
        for table in ROLLUPS:
            n = await conn.fetchval(f"SELECT sum(requests) FROM {table}", timeout=120)
            sums[table] = None if n is None else int(n)  # sum(bigint) is a numeric: Decimal
        for table in TAG_ROLLUPS:
            sql = f"SELECT tag_key, sum(requests) FROM {table} GROUP BY tag_key"
            for key, n in await conn.fetch(sql, timeout=120):
                sums[f"{table}({key})"] = int(n)
    finally:
        await conn.close()
    return [(r[0], r[1]) for r in records], sums


def _sqlite_table(path: Path) -> tuple[list[tuple[str, int]], dict[str, int | None]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT id, status_code FROM llm_requests").fetchall()
        sums: dict[str, int | None] = {}
        for table in ROLLUPS:
            sums[table] = conn.execute(f"SELECT sum(requests) FROM {table}").fetchone()[0]
        for table in TAG_ROLLUPS:
            sql = f"SELECT tag_key, sum(requests) FROM {table} GROUP BY tag_key"
            for key, n in conn.execute(sql):
                sums[f"{table}({key})"] = n
    finally:
        conn.close()
    return rows, sums


class Stack:
    def __init__(self, tmp: Path, procs: Processes, backend: str) -> None:
        self.tmp = tmp
        self.procs = procs
        self.backend = backend
        self.pg: PgCluster | None = None
        self.fake_port = 0
        self.slow_port = 0
        self.port = 0
        self.gateway: subprocess.Popen[bytes] | None = None
        self.secret = ""

    @property
    def sqlite_path(self) -> Path:
        return self.tmp / "data" / "llmops.db"

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
        env.pop("DATABASE_URL", None)
        return env

    def start(self) -> subprocess.Popen[bytes]:
        """Everything up to a gateway that has served its first request; returns the gateway."""
        if self.backend == "postgres":
            self.pg = PgCluster(free_port())  # assigned first: stop() removes its dir on errors
            self.pg.start()
        self.start_fakes()
        self.port = free_port()
        env = self.gateway_env()
        self.secret = self.prepare(env)
        self.gateway = self.start_gateway(env)
        return self.gateway

    def start_fakes(self) -> None:
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

    def start_gateway(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        body = json.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        ).encode()
        headers = {
            "authorization": f"Bearer {self.secret}",
            "x-llmops-config": CONFIG,
            "content-type": "application/json",
        }
        proc = self.procs.spawn("gateway", [*llmops_command(), "serve"], env)
        # On failure soak.py prints the end of every log, the gateway's included.
        wait_until_served(proc, self.port, "POST", GATEWAY_PATH, body, headers, timeout=30)
        return proc

    def sample(self, pid: int, t: float, prev: dict[str, Any] | None) -> dict[str, Any]:
        now = time.perf_counter()
        s: dict[str, Any] = {
            "t": round(t, 1),
            "rss_mb": procstat.rss_bytes(pid) / 2**20,
            "rss_anon_mb": procstat.rss_bytes(pid, "RssAnon") / 2**20,
            "fds_proc": procstat.open_fds(pid),
            "threads": procstat.status_value(pid, "Threads"),
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
        s["rows_replayed"] = m.get("llmops_log_rows_replayed_total")
        s["rows_dead_lettered"] = m.get("llmops_log_rows_dead_lettered_total")
        s["database_down"] = m.get("llmops_log_database_down")
        if prev is not None and now > prev["clock"]:
            span = now - prev["clock"]
            if s["rows_queued"] is not None and prev["rows_queued"] is not None:
                s["req_per_s"] = (s["rows_queued"] - prev["rows_queued"]) / span
            s["gateway_cores"] = (s["cpu_s"] - prev["cpu_s"]) / span
            s["machine_cores"] = (s["machine_busy_s"] - prev["machine_busy_s"]) / span
        return s

    def drain(self) -> tuple[bool, float, dict[str, float]]:
        """Wait (bounded) until every queued log row is in the table or dead-lettered."""
        started = time.perf_counter()
        m: dict[str, float] = {}
        while time.perf_counter() - started < DRAIN_TIMEOUT:
            try:
                m = read_metrics(self.port)
            except (OSError, RuntimeError):
                time.sleep(0.2)
                continue
            if caught_up(m):
                return True, time.perf_counter() - started, m
            time.sleep(0.2)
        return False, time.perf_counter() - started, m

    def read_table(self) -> tuple[dict[str, tuple[int, int]], dict[str, int | None]]:
        """request id (32 hex digits) → (times present, status_code), and the ``requests`` sum
        of each rollup table; read after the gateway stopped."""
        counts: dict[str, tuple[int, int]] = {}
        if self.pg is not None:
            rows, sums = asyncio.run(_pg_table(self.pg.url("gateway")))
        else:
            rows, sums = _sqlite_table(self.sqlite_path)
        for rid, status in rows:
            key = uuid.UUID(str(rid)).hex
            n, _ = counts.get(key, (0, status))
            counts[key] = (n + 1, status)
        return counts, sums

    def stop_database(self) -> None:
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
