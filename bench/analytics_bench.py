"""Dashboard query latency on a large request log.

``python bench/analytics_bench.py --backend sqlite --rows 1000000`` (or ``--backend postgres``).

Seeds N synthetic requests (90 days ending now, skewed like production traffic) through the real
writer path — ``store.insert_rows`` with the rollups hook, as the gateway's BatchWriter calls it —
then times every query the dashboard's Overview, Costs and Requests pages make, through
``store.run`` as the dashboard runs them, and compares each with its target. Queries that miss
their target are run once more with every SQL statement captured, and the slowest statements'
plans (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite) go to the output and the JSON.
See bench/README.md, "Analytics queries".

This module parses the command line and runs the phases; the parts live beside it:
``analytics_world.py`` (the synthetic data), ``analytics_seed.py`` (the databases and seeding),
``analytics_queries.py`` (the queries, timing and plans) and ``analytics_report.py`` (printing).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from analytics_queries import measure
from analytics_report import console, print_report
from analytics_seed import Databases, open_migrated
from run import terminate_on_sigterm

BENCH = Path(__file__).resolve().parent


def git_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True,
            timeout=10,
        ).stdout.strip()  # fmt: skip
        return rev + ("+dirty(src)" if dirty else "")
    return "unknown"


async def run(args: argparse.Namespace, databases: Databases) -> dict[str, Any]:
    """Prepare the database (seed it, or reuse one), time the queries on it: the results."""
    started = time.perf_counter()
    url, seeding = await databases.prepare()
    store = await open_migrated(url, databases.tmp)
    try:
        measured = await measure(store, args.runs, not args.skip_pages, args.explain_all)
    finally:
        await store.close()
    measured["params"]["now"] = str(measured["params"]["now"])
    return {
        "meta": {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python bench/analytics_bench.py", *sys.argv[1:]]),
            "backend": args.backend,
            "runs": args.runs,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "git": git_version(),
            "load_average": os.getloadavg(),
            "wall_seconds": time.perf_counter() - started,
        },
        "seeding": seeding,
        **measured,
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Dashboard query latency (see bench/README.md)")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--rows",
        type=int,
        default=None,
        help="rows to seed (default: 1,000,000 on SQLite, 10,000,000 on PostgreSQL)",
    )
    p.add_argument("--batch", type=int, default=5000, help="rows per insert_rows call")
    p.add_argument(
        "--writers",
        type=int,
        default=None,
        help="batches in flight at once (default: 2 on PostgreSQL, 1 on SQLite)",
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=25.0,
        help="seed only as many rows as fit this long, judged from a 100k-row probe (0: no limit)",
    )
    p.add_argument("--runs", type=int, default=5, help="timed runs per query, after one warm-up")
    p.add_argument("--seed", type=int, default=42, help="random seed of the synthetic data")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the seeded database (and leave the PostgreSQL cluster running)",
    )
    p.add_argument(
        "--reuse",
        metavar="PATH_OR_URL",
        help="time the queries on a database seeded before (a SQLite file or a "
        "postgresql:// URL) instead of seeding",
    )
    p.add_argument(
        "--explain-all",
        action="store_true",
        help="show the plans of every query, not only of those that miss the target",
    )
    p.add_argument(
        "--skip-pages",
        action="store_true",
        help="skip the whole-page timings (filter bar, Overview, Costs, Requests)",
    )
    p.add_argument("--results-dir", default=str(BENCH / "results"))
    args = p.parse_args()  # fmt: skip
    if args.rows is None:
        args.rows = 1_000_000 if args.backend == "sqlite" else 10_000_000
    if args.writers is None:
        args.writers = 2 if args.backend == "postgres" else 1
    if not 1_000 <= args.batch <= 5_000:
        p.error("--batch must be between 1,000 and 5,000 (what a gateway's batch writer flushes)")
    if args.rows < 1_000:
        p.error("--rows must be at least 1,000")
    return args


def main() -> int:
    args = parse_args()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    databases = Databases(args)
    try:
        with terminate_on_sigterm():
            results = uvloop.run(run(args, databases))
    except (KeyboardInterrupt, SystemExit):
        console.print("[yellow]interrupted[/]: cleaning up")
        return 130
    finally:
        databases.cleanup()
    print_report(results)
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = results["seeding"].get("rows", "reused")
    path = out / f"{stamp}-analytics-{args.backend}-{rows}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"results: {path} ({results['meta']['wall_seconds'] / 60:.1f} min)")
    verdicts = [q["pass"] for q in results["queries"] if q["pass"] is not None]
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
