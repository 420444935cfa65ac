"""Worker scaling: ``python bench/scaling.py [--quick] [--backends …] [--workers 1,2]``.

Runs run.py's c=64 chat scenario through ``llmops serve --workers N`` for each N and backend, each
on a fresh database, and reports req/s, CPU per request and the speed-up over the first N. It also
checks that every answered request's log row landed exactly once: the load generator writes the
``x-llmops-request-id`` of every answer, and after the gateway has stopped (SIGTERM: each worker
writes what it still holds) those ids are compared with the ids in ``llm_requests``.
See bench/README.md (*Worker scaling*).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import procstat
import run
import sqlalchemy as sa
from pgcluster import PgCluster
from rich.table import Table

from llmops.settings import Settings
from llmops.store import open_store
from llmops.store import schema as s

MODE, CONCURRENCY = "chat", 64


def stored_ids(env: dict[str, str]) -> list[uuid.UUID]:
    """Every id in the log table of the gateway that ran with ``env``, read through its store."""

    def select(conn: sa.Connection) -> list[uuid.UUID]:
        return list(conn.execute(sa.select(s.llm_requests.c.id)).scalars())

    async def go() -> list[uuid.UUID]:
        store = open_store(Settings.load(env))
        try:
            return await store.run(select)
        finally:
            await store.close()

    return asyncio.run(go())


def check_rows(answered: list[str], stored: list[uuid.UUID], unanswered: int) -> dict[str, Any]:
    """Answered request ids against the table's ids. Allowed extra rows: the start-up request
    (``run.Bench.start_gateway`` sends one) and requests the client saw no complete answer to."""
    ids = [uuid.UUID(a) for a in answered if a]
    table = collections.Counter(stored)
    answered_set = set(ids)
    out = {
        "answered": len(answered),
        "answered_without_id": len(answered) - len(ids),
        "answered_twice": len(ids) - len(answered_set),
        "rows": len(stored),
        "distinct_rows": len(table),
        "missing": len(answered_set - table.keys()),
        "extra": len(table.keys() - answered_set),
        "unanswered": unanswered,
    }
    out["pass"] = (
        out["answered_without_id"] == 0
        and out["answered_twice"] == 0
        and out["rows"] == out["distinct_rows"]
        and out["missing"] == 0
        and out["extra"] <= 1 + unanswered
    )
    return out


def process_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each process of the tree of ``pid`` (the supervisor and its workers)."""
    return {
        p: procstat.cpu_seconds(p) - sum(map(procstat.cpu_seconds, procstat.children(p)))
        for p in procstat.tree(pid)
    }


def machine_ceiling(result: dict[str, Any]) -> float | None:
    """The req/s at which this machine's cores would all be busy with this run's own processes
    (gateway, fake, database, load generator) at the CPU per request measured."""
    cpu = result["cpu_ms_per_request"]
    total = sum(v for k, v in cpu.items() if k != "gateway_loop" and v is not None)
    return (os.cpu_count() or 1) * 1000 / total if total else None


class Scaling:
    def __init__(self, args: argparse.Namespace, tmp: Path, procs: run.Processes) -> None:
        self.args = args
        self.profile = run.QUICK if args.quick else run.FULL
        self.tmp = tmp
        self.procs = procs
        self.fake_port = 0
        self.fake_pid = 0

    def bench(self, workers: int, tmp: Path) -> run.Bench:
        """A run.py Bench for ``workers`` in its own directory, sharing this run's fake."""
        ns = argparse.Namespace(
            quick=self.args.quick, results_dir=self.args.results_dir, workers=workers
        )
        bench = run.Bench(ns, tmp, self.procs)
        bench.fake_port, bench.fake_pid = self.fake_port, self.fake_pid
        return bench

    def run_one(self, backend: str, workers: int) -> dict[str, Any]:
        run.console.rule(f"{backend}, llmops serve --workers {workers}")
        tmp = self.tmp / f"{backend}-w{workers}"
        tmp.mkdir()
        bench = self.bench(workers, tmp)
        if backend == "postgres":
            bench.pg = PgCluster(run.free_port()).start()  # a fresh server and database
        try:
            port = run.free_port()
            env = bench.gateway_env(backend, port)
            secret = bench.prepare(backend, env)
            gateway, startup = bench.start_gateway(backend, port, env, secret)
            time.sleep(1.0)
            idle_rss = procstat.rss_bytes(gateway.pid) / 2**20
            processes = len(procstat.tree(gateway.pid))
            pids = {"gateway": gateway.pid, "fake": self.fake_pid}
            if bench.pg is not None and bench.pg.postmaster_pid:
                pids["db"] = bench.pg.postmaster_pid
            ids_file = tmp / "answered-ids.txt"
            before = process_cpu(gateway.pid)
            result = run.loadgen(
                f"http://127.0.0.1:{port}{run.GATEWAY_PATH}",
                MODE,
                CONCURRENCY,
                self.profile,
                pids,
                {"authorization": f"Bearer {secret}", "x-llmops-config": run.CONFIG},
                f"http://127.0.0.1:{port}/metrics",
                workers,
                ids_file,
            )
            after = process_cpu(gateway.pid)
            self.procs.stop(gateway)
            rows = check_rows(
                ids_file.read_text().split(), stored_ids(env), result.get("unanswered", 0)
            )
        finally:
            if bench.pg is not None:
                bench.pg.stop()
        spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
        shares = sorted((cpu / (sum(spent.values()) or 1) for cpu in spent.values()), reverse=True)
        run.console.print(
            "  CPU share of each gateway process (warm-up and drains included): "
            + ", ".join(f"{share:.0%}" for share in shares)
        )
        verdict = "[green]PASS[/]" if rows["pass"] else "[red]FAIL[/]"
        run.console.print(
            f"  rows: {rows['answered']} answered, {rows['rows']} stored ({rows['distinct_rows']} "
            f"distinct), {rows['missing']} missing, {rows['extra']} extra {verdict}"
        )
        return {
            "backend": backend,
            "workers": workers,
            "machine_ceiling_rps": machine_ceiling(result),
            "processes": processes,
            "process_cpu_shares": shares,
            "startup_s": startup,
            "idle_rss_mb": idle_rss,
            "scenario": result,
            "rows": rows,
        }

    def run(self) -> dict[str, Any]:
        results: dict[str, Any] = {"meta": run.meta(self.args, self.profile)}
        results["meta"]["command"] = " ".join(["python bench/scaling.py", *sys.argv[1:]])
        starter = self.bench(1, self.tmp)
        fake = starter.start_fake()
        self.fake_port, self.fake_pid = starter.fake_port, starter.fake_pid
        run.console.rule("direct → fake provider (the ceiling of this machine)")
        url = f"http://127.0.0.1:{self.fake_port}/v1/chat/completions"
        results["direct"] = run.loadgen(url, MODE, CONCURRENCY, self.profile, {"fake": fake.pid})
        results["runs"] = [
            self.run_one(backend, workers)
            for backend in self.args.backends
            for workers in self.args.workers
        ]
        self.procs.stop(fake)
        return results


def print_report(results: dict[str, Any]) -> None:
    table = Table(
        title=f"Worker scaling: {MODE}, c={CONCURRENCY} (CPU in ms per request; ceiling: req/s "
        "at which our processes would fill every core)"
    )
    for name in (
        "backend", "workers (procs)", "req/s", "speed-up", "p50 ms", "p99 ms", "gw CPU",
        "fake/client/db", "busy ours/all", "ceiling", "RSS MB", "answered", "rows (miss, extra)",
        "once",
    ):  # fmt: skip
        justify = "left" if name in ("backend", "once") else "right"
        table.add_column(name, justify=justify, no_wrap=True)
    d = results["direct"]
    cpu = d["cpu_ms_per_request"]
    table.add_row(
        "direct", "", f"{d['rps']:.0f}", "", f"{d['latency']['p50_ms']:.2f}",
        f"{d['latency']['p99_ms']:.2f}", "", f"{cpu['fake']:.3f}/{cpu['client']:.3f}/—",
        f"{d['busy_cores']:.2f}/{d['machine_busy_cores']:.2f}", f"{machine_ceiling(d) or 0:.0f}",
        "", "", "", "",
    )  # fmt: skip
    first: dict[str, float] = {}
    for r in results["runs"]:
        sc, rows = r["scenario"], r["rows"]
        cpu = sc["cpu_ms_per_request"]
        base = first.setdefault(r["backend"], sc["rps"])
        db = "—" if cpu.get("db") is None else f"{cpu['db']:.3f}"
        table.add_row(
            r["backend"], f"{r['workers']} ({r['processes']})", f"{sc['rps']:.0f}",
            f"{sc['rps'] / base:.2f}×", f"{sc['latency']['p50_ms']:.2f}",
            f"{sc['latency']['p99_ms']:.2f}", f"{cpu['gateway']:.3f}",
            f"{cpu['fake']:.3f}/{cpu['client']:.3f}/{db}",
            f"{sc['busy_cores']:.2f}/{sc['machine_busy_cores']:.2f}",
            f"{r['machine_ceiling_rps'] or 0:.0f}", f"{r['idle_rss_mb']:.1f}",
            str(rows["answered"]), f"{rows['rows']} ({rows['missing']}, {rows['extra']})",
            "PASS" if rows["pass"] else "FAIL",
        )  # fmt: skip
    run.console.print(table)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="llmops serve --workers N scaling (bench/README.md)")
    p.add_argument("--quick", action="store_true", help="3 s per run instead of 15 s")
    p.add_argument("--backends", default="sqlite,postgres", help="comma-separated (default both)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--results-dir", default=str(run.BENCH / "results"))
    p.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, ids)")
    args = p.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(args.backends) - {"sqlite", "postgres"}:
        p.error("--backends: sqlite, postgres")
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if not args.workers or min(args.workers) < 1:
        p.error("--workers: positive integers")
    return args


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmops-scaling-"))
    procs = run.Processes(tmp)
    started = time.perf_counter()
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    scaling = Scaling(args, tmp, procs)
    results = run.run_guarded(scaling.run, tmp, procs, keep_temp=args.keep_temp)
    if results is None:
        return 130
    results["meta"]["wall_seconds"] = time.perf_counter() - started
    print_report(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(args.results_dir) / f"{stamp}-scaling-{results['meta']['profile']}.json"
    path.write_text(json.dumps(results, indent=2))
    run.console.print(f"results: {path} ({results['meta']['wall_seconds']:.0f} s)")
    ok = all(r["rows"]["pass"] and not r["scenario"]["errors"] for r in results["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
