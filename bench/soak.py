"""The LLMOps soak test: ``python bench/soak.py [--minutes N | --quick] [--backend postgres]
[--outage SECONDS]``.

Starts the bench fake provider and ``llmops serve`` on 127.0.0.1 (logging to SQLite, or to a
throw-away PostgreSQL cluster), drives steady mixed traffic from a separate load-generator process
(``soak_load.py``, run as ``soak.py loadgen``) and samples the gateway every 10 s: RSS, open fds,
asyncio tasks, log queue depth and rows written. After the run it checks that memory, fds and
tasks stayed flat, that every answered request is in ``llm_requests`` exactly once and that the
rollups count every row once. With ``--outage N`` the database goes away for N s in the middle of
the load (``soak_outage.py``), and the soak also checks that the gateway kept answering and that
the writer caught up afterwards. Prints the samples and a PASS/FAIL per check, and writes
``bench/results/<stamp>-soak-<backend>-<N>min[-outage<N>s].json``. See bench/README.md, *Soak*.

The parts: ``soak_stack.py`` (the processes under test, sampling, reading the table),
``soak_load.py`` (the load generator), ``soak_outage.py`` (the outage), ``soak_checks.py`` (the
verdicts) and ``soak_report.py`` (the tables).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import procstat
from run import GATEWAY_PATH, Processes, meta, run_guarded
from soak_checks import WARMUP_SHARE, compare, during_outage, evaluate
from soak_load import MIX, REQUEST_TIMEOUT, SAMPLE_EVERY
from soak_outage import CATCHUP_TIMEOUT, OutageThread
from soak_report import console, print_report, progress_line
from soak_stack import Stack, read_answers

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SoakProfile:
    """What ``run.meta`` reads from a profile: its name and its settings."""

    name: str
    minutes: float
    concurrency: int
    rate: float
    outage_s: float


def run_meta(args: argparse.Namespace) -> dict[str, Any]:
    profile = SoakProfile(
        "quick" if args.quick else "soak", args.minutes, args.concurrency, args.rate, args.outage
    )
    out = meta(argparse.Namespace(backends=[args.backend], workers=1), cast(Any, profile))
    out["command"] = " ".join(["python bench/soak.py", *sys.argv[1:]])
    return out


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
        self.args = args
        self.tmp = tmp
        self.procs = procs
        self.seconds = args.minutes * 60
        self.stack = Stack(tmp, procs, args.backend)
        self.outage: OutageThread | None = None
        self.stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")

    def start_load(self, ids: Path, out: Path) -> subprocess.Popen[bytes]:
        ready = self.tmp / "loadgen.ready"
        args = self.args
        cmd = [
            sys.executable, str(BENCH / "soak.py"), "loadgen",
            "--url", f"http://127.0.0.1:{self.stack.port}{GATEWAY_PATH}",
            "--secret", self.stack.secret,
            "--seconds", str(self.seconds + 2), "--concurrency", str(args.concurrency),
            "--rate", str(args.rate), "--ids", str(ids), "--ready-file", str(ready),
            "--out", str(out),
        ]  # fmt: skip
        load = self.procs.spawn("loadgen", cmd, self.stack.base_env())
        ready_by = time.perf_counter() + 30
        while not ready.exists():
            if load.poll() is not None or time.perf_counter() > ready_by:
                raise RuntimeError(
                    f"the load generator did not start:\n{self.procs.tail('loadgen')}"
                )
            time.sleep(0.05)
        return load

    def sample_while_loaded(
        self,
        gateway: subprocess.Popen[bytes],
        load: subprocess.Popen[bytes],
        t0: float,
        idle: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """One sample every 10 s while the load runs; ends with the load (or its budget)."""
        samples = [idle]
        k = 1
        while True:
            due = t0 + k * SAMPLE_EVERY
            if due > t0 + self.seconds + 0.5 or load.poll() is not None:
                break
            time.sleep(max(0.0, due - time.perf_counter()))
            if gateway.poll() is not None:
                raise RuntimeError(f"the gateway exited with {gateway.returncode} under load")
            if self.outage is not None and self.outage.error is not None:
                raise RuntimeError("the outage failed") from self.outage.error
            if load.poll() is not None:
                break
            s = self.stack.sample(gateway.pid, time.perf_counter() - t0, samples[-1])
            samples.append(s)
            console.print(progress_line(s), highlight=False)
            k += 1
        return samples

    def finish_outage(self) -> None:
        """Wait (bounded) until the outage thread has seen the writer catch up."""
        assert self.outage is not None
        budget = self.outage.start_at + self.args.outage + 2 * 120 + CATCHUP_TIMEOUT + 10
        self.outage.join(max(1.0, budget - time.monotonic()))
        if self.outage.is_alive():
            self.outage.cancel.set()
            self.outage.join(10)
            raise RuntimeError("the outage thread overran its time budget")
        if self.outage.error is not None:
            raise RuntimeError("the outage failed") from self.outage.error

    def run(self) -> dict[str, Any]:
        args = self.args
        what = f"soak: {args.minutes:g} min, {args.backend}, c={args.concurrency}"
        console.rule(what + (f", {args.outage:g} s database outage" if args.outage else ""))
        gateway = self.stack.start()
        time.sleep(1.0)
        idle = self.stack.sample(gateway.pid, 0.0, None)
        console.print(
            f"  gateway pid {gateway.pid} on 127.0.0.1:{self.stack.port}, idle RSS "
            f"{idle['rss_mb']:.1f} MB, {idle['fds_proc']} fds, "
            f"{idle['tasks']} tasks; load for {self.seconds:.0f} s"
        )
        ids_path, out_path = self.tmp / "ids.tsv", self.tmp / "loadgen.json"
        load = self.start_load(ids_path, out_path)
        t0, t0_mono = time.perf_counter(), time.monotonic()
        if args.outage:
            start_at = t0_mono + (self.seconds - args.outage) / 2
            self.outage = OutageThread(self.stack, self.procs, start_at, args.outage)
            self.outage.start()
        samples = self.sample_while_loaded(gateway, load, t0, idle)
        try:
            load.wait(max(1.0, t0 + self.seconds + REQUEST_TIMEOUT + 30 - time.perf_counter()))
        except subprocess.TimeoutExpired:
            self.procs.stop(load)
            raise RuntimeError("the load generator overran its time budget") from None
        if load.returncode != 0 or not out_path.exists():
            raise RuntimeError(f"load generator failed:\n{self.procs.tail('loadgen')}")
        self.procs.stop(load)
        loadres: dict[str, Any] = json.loads(out_path.read_text())
        if self.outage is not None:
            self.finish_outage()

        drained, drain_s, final_metrics = self.stack.drain()
        after = self.stack.sample(gateway.pid, time.perf_counter() - t0, None)
        after["peak_rss_mb"] = procstat.rss_bytes(gateway.pid, "VmHWM") / 2**20
        self.procs.stop(gateway)
        table, rollups = self.stack.read_table()
        self.stack.stop_database()
        answers = read_answers(ids_path)
        results: dict[str, Any] = {
            "meta": {
                **run_meta(args),
                "minutes": args.minutes,
                "concurrency": args.concurrency,
                "rate": args.rate,
                "outage_s": args.outage,
                "mix_per_100": MIX,
                "sample_every_s": SAMPLE_EVERY,
            },
            "samples": [{k: v for k, v in s.items() if k != "clock"} for s in samples],
            "after_drain": {k: v for k, v in after.items() if k != "clock"},
            "drain": {"ok": drained, "seconds": drain_s, "metrics": final_metrics},
            "gateway_exit_code": gateway.returncode,
            "load": loadres,
            "logging": compare(answers, table),
            "rollups": rollups,
        }
        if self.outage is not None:
            outage = self.outage.summary(t0_mono)
            outage["during"] = during_outage(answers, outage["down"], outage["up_begin"])
            results["outage"] = outage
        results["checks"] = evaluate(results, results["logging"], rollups)
        return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="LLMOps soak test (see bench/README.md, Soak)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    p.add_argument("--quick", action="store_true", help="2 minutes")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--concurrency", type=int, default=16, help="load generator workers (16)")
    p.add_argument(
        "--rate", type=float, default=300.0, help="requests/s in all (default 300; 0: no limit)"
    )
    p.add_argument(
        "--outage",
        type=float,
        default=0.0,
        help="take the database away for this many seconds in the middle of the load (0: no)",
    )
    p.add_argument("--results-dir", default=str(BENCH / "results"))
    p.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, database)")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes = 2.0
    seconds = args.minutes * 60
    if seconds < 6 * SAMPLE_EVERY:
        p.error("--minutes must be at least 1 (the windows need a few samples each)")
    if args.concurrency < 1 or args.rate < 0 or args.outage < 0:
        p.error("--concurrency must be ≥ 1, --rate and --outage ≥ 0")
    if args.outage and (seconds - args.outage) / 2 - WARMUP_SHARE * seconds < 2 * SAMPLE_EVERY:
        p.error(
            "--outage too long for --minutes: the outage starts at (load − outage) / 2, and "
            "needs 2 samples (20 s) between the warm-up (first 20 %) and its start"
        )
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["loadgen"]:
        import soak_load

        return soak_load.main(argv[1:])
    if argv[:1] == ["slowfake"]:
        from soak_stack import slowfake_main

        return slowfake_main(argv[1:])
    if argv[:1] == ["holdlock"]:
        from soak_outage import hold_lock_main

        return hold_lock_main(argv[1:])
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="llmops-soak-"))
    procs = Processes(tmp)
    started = time.perf_counter()
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    soak = Soak(args, tmp, procs)

    def cleanup() -> None:
        if soak.outage is not None and soak.outage.is_alive():
            soak.outage.cancel.set()
            soak.outage.join(30)
        soak.stack.stop_database()

    results = run_guarded(
        soak.run, tmp, procs, keep_temp=args.keep_temp, out=console, what="soak", cleanup=cleanup
    )
    if results is None:
        return 130
    results["meta"]["wall_seconds"] = time.perf_counter() - started
    name = f"{soak.stamp}-soak-{args.backend}-{args.minutes:g}min"
    name += f"-outage{args.outage:g}s.json" if args.outage else ".json"
    path = results_dir / name
    path.write_text(json.dumps(results, indent=2))
    print_report(results)
    console.print(f"results: {path} ({results['meta']['wall_seconds']:.0f} s)")
    return 0 if all(c["pass"] for c in results["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
