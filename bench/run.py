"""The LLMOps benchmark: ``python bench/run.py [--quick] [--backends sqlite,postgres]``.

Starts the fake provider (own process) and ``llmops serve`` (subprocess) on 127.0.0.1, drives each
scenario from a separate load-generator process, and prints and saves the results
(bench/results/<timestamp>.json). See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import procstat
import profiling
import report
import uvloop
import writer_bench
import yaml
from pgcluster import PgCluster
from rich.console import Console

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
GATEWAY_PATH = "/llmops/api/genai/v1/chat/completions"
CONFIG = "bench-chat"
CHUNKS = 16
console = Console(width=max(Console().width, 172))
T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    name: str
    warmup_seconds: float
    warmup_requests: int
    seconds: float
    requests_c1: int
    requests_c64: int
    startup_samples: int
    writer_rows: int
    trickle_seconds: float


QUICK = Profile("quick", 1.0, 300, 3.0, 3_000, 20_000, 1, 5_000, 2.0)
FULL = Profile("full", 3.0, 2_000, 15.0, 20_000, 100_000, 3, 50_000, 5.0)
TRICKLE_RATE = 1000.0  # rows/s fed to the writer in the steady-rate test
SCENARIOS = (("chat", 1), ("chat", 64), ("stream", 1), ("stream", 64))


def free_port() -> int:
    from llmops.testing import free_port as pick

    return pick()


def llmops_command() -> list[str]:
    script = Path(sys.executable).parent / "llmops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmops.cli"]


class Processes:
    """Every subprocess this run started, stopped by pid on exit (SIGTERM, then SIGKILL)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        out.close()  # the child holds its own descriptor
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            self.stop(proc, timeout=15)

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def http_call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_until_served(
    proc: subprocess.Popen[bytes],
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Poll until ``method path`` answers 200 (bounded by ``timeout``)."""
    deadline = time.perf_counter() + timeout
    last = ""
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving")
        try:
            status, content = http_call(port, method, path, body, headers)
            if status == 200:
                return
            last = f"HTTP {status}: {content[:200]!r}"
        except OSError as e:
            last = repr(e)
        time.sleep(0.005)
    raise TimeoutError(f"no 200 from 127.0.0.1:{port}{path} within {timeout} s ({last})")


def bench_document(fake_port: int) -> dict[str, Any]:
    return {
        "environments": [{"slug": "bench", "name": "Benchmark"}],
        "providers": [
            {
                "slug": "fake",
                "type": "openai-compatible",
                "base_url": f"http://127.0.0.1:{fake_port}/v1",
                "api_key": "sk-bench-fake-key",
                "options": {"price_provider": "openai"},
            }
        ],
        "configs": [
            {
                "slug": CONFIG,
                "variants": [{"name": "default", "provider": "fake", "model": "gpt-4o-mini"}],
                "targeting": {"bench": {"variant": "default"}},
            }
        ],
    }


def run_cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [*llmops_command(), *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"llmops {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def loadgen(
    url: str,
    mode: str,
    concurrency: int,
    profile: Profile,
    cpu_pids: dict[str, int],
    headers: dict[str, str] | None = None,
    metrics_url: str | None = None,
    workers: int = 1,
    ids_file: Path | None = None,
) -> dict[str, Any]:
    requests = profile.requests_c1 if concurrency == 1 else profile.requests_c64
    cmd = [
        sys.executable, str(BENCH / "loadgen.py"), "--url", url, "--mode", mode,
        "--concurrency", str(concurrency), "--requests", str(requests),
        "--duration", str(profile.seconds), "--warmup-seconds", str(profile.warmup_seconds),
        "--warmup-requests", str(profile.warmup_requests), "--expect-chunks", str(CHUNKS),
    ]  # fmt: skip
    for name, value in (headers or {}).items():
        cmd += ["--header", f"{name}: {value}"]
    for name, pid in cpu_pids.items():
        cmd += ["--cpu-pid", f"{name}={pid}"]
    if metrics_url:
        cmd += ["--metrics-url", metrics_url, "--drain-confirmations", str(2 * workers)]
    if ids_file is not None:
        cmd += ["--ids-file", str(ids_file)]
    budget = profile.warmup_seconds + profile.seconds + 2 * 15 + 60
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, cwd=BENCH)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    lat = result["latency"]
    cpu = result["cpu_ms_per_request"]
    cpu_text = " ".join(f"{k}={v:.3f}" for k, v in cpu.items() if v is not None)
    console.print(
        f"  {mode:6} c={concurrency:<3} {result['ok']:>7} ok {result['errors']:>3} err "
        f"{result['rps']:>8.0f} req/s  p50 {lat['p50_ms']:.2f} ms  p99 {lat['p99_ms']:.2f} ms  "
        f"CPU ms/req {cpu_text}  busy cores {result['busy_cores']:.2f}"
        f" (machine {result['machine_busy_cores']:.2f})"
    )
    if result["errors"]:
        console.print(f"  [red]first error:[/] {result['first_error']}")
    return result


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
        self.args = args
        self.profile = QUICK if args.quick else FULL
        self.tmp = tmp
        self.procs = procs
        self.fake_port = 0
        self.fake_pid = 0
        self.results_dir = Path(args.results_dir)
        self.trickle: list[dict[str, Any]] = []
        self.stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.pg: PgCluster | None = None

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
        env.pop("DATABASE_URL", None)
        return env

    def start_fake(self) -> subprocess.Popen[bytes]:
        self.fake_port = free_port()
        cmd = [sys.executable, str(BENCH / "fake_provider.py"), "--port", str(self.fake_port)]
        proc = self.procs.spawn("fake", [*cmd, "--chunks", str(CHUNKS)], self.base_env())
        wait_until_served(proc, self.fake_port, "GET", "/v1/models", timeout=30)
        self.fake_pid = proc.pid
        return proc

    def run_direct(self, fake: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
        console.rule("direct → fake provider (baseline)")
        url = f"http://127.0.0.1:{self.fake_port}/v1/chat/completions"
        return [
            loadgen(url, mode, conc, self.profile, {"fake": fake.pid}) for mode, conc in SCENARIOS
        ]

    def gateway_env(self, backend: str, port: int) -> dict[str, str]:
        env = self.base_env()
        env.update(
            LLMOPS_DATA_DIR=str(self.tmp / backend),
            LLMOPS_PORT=str(port),
            LLMOPS_METRICS_PUBLIC="true",  # the load generator reads the writer's counters
            LLMOPS_LOG_LEVEL="warning",
        )
        if backend == "postgres":
            assert self.pg is not None
            env["DATABASE_URL"] = self.pg.url("gateway")
        return env

    def prepare(self, backend: str, env: dict[str, str]) -> str:
        """Migrate (PostgreSQL), apply the benchmark config, and return the environment secret."""
        if backend == "postgres":
            assert self.pg is not None
            self.pg.create_database("gateway")
            run_cli(["migrate"], env)
        doc = self.tmp / "bench.yaml"
        doc.write_text(yaml.safe_dump(bench_document(self.fake_port)))
        out = run_cli(["apply", str(doc)], env)
        match = re.search(r"secret for environment bench .*?: (\S+)", out)
        if not match:
            raise RuntimeError(f"no secret in the output of llmops apply:\n{out}")
        return match.group(1)

    def start_gateway(
        self, backend: str, port: int, env: dict[str, str], secret: str
    ) -> tuple[subprocess.Popen[bytes], float]:
        """Spawn ``llmops serve``; return it and the seconds from spawn to its first 200."""
        body = json.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        ).encode()
        headers = {
            "authorization": f"Bearer {secret}",
            "x-llmops-config": CONFIG,
            "content-type": "application/json",
        }
        started = time.perf_counter()
        cmd = [*llmops_command(), "serve", "--workers", str(self.args.workers)]
        proc = self.procs.spawn(f"gateway-{backend}", cmd, env)
        try:
            wait_until_served(proc, port, "POST", GATEWAY_PATH, body, headers, timeout=30)
        except (RuntimeError, TimeoutError):
            console.print(self.procs.tail(f"gateway-{backend}"))
            raise
        return proc, time.perf_counter() - started

    def run_backend(self, backend: str) -> dict[str, Any]:
        console.rule(f"gateway, logging to {backend}")
        port = free_port()
        env = self.gateway_env(backend, port)
        secret = self.prepare(backend, env)
        startups: list[float] = []
        rss: list[float] = []
        anon: list[float] = []
        gateway: subprocess.Popen[bytes] | None = None
        for i in range(self.profile.startup_samples):
            gateway, seconds = self.start_gateway(backend, port, env, secret)
            startups.append(seconds)
            time.sleep(1.0)  # let start-up work settle before reading idle memory
            rss.append(procstat.rss_bytes(gateway.pid) / 2**20)
            anon.append(procstat.rss_bytes(gateway.pid, "RssAnon") / 2**20)
            console.print(
                f"  start-up {seconds:.3f} s, idle RSS {rss[-1]:.1f} MB (anonymous {anon[-1]:.1f})"
            )
            if i < self.profile.startup_samples - 1:
                self.procs.stop(gateway)
        assert gateway is not None
        pids = {"gateway": gateway.pid, "fake": self.fake_pid}
        if backend == "postgres" and self.pg is not None and self.pg.postmaster_pid:
            pids["db"] = self.pg.postmaster_pid
        url = f"http://127.0.0.1:{port}{GATEWAY_PATH}"
        headers = {"authorization": f"Bearer {secret}", "x-llmops-config": CONFIG}
        metrics = f"http://127.0.0.1:{port}/metrics"
        scenarios = [
            loadgen(url, mode, conc, self.profile, pids, headers, metrics, self.args.workers)
            for mode, conc in SCENARIOS
        ]
        profiles = self.profile_gateway(backend, gateway.pid, url, headers, metrics)
        after = procstat.rss_bytes(gateway.pid) / 2**20
        peak = procstat.rss_bytes(gateway.pid, "VmHWM") / 2**20
        _, text = http_call(port, "GET", "/metrics")
        counters = dict(
            (line.split(" ", 1)[0], float(line.split(" ", 1)[1]))
            for line in text.decode().splitlines()
            if line.startswith("llmops_log_")
        )
        self.procs.stop(gateway)
        return {
            "startup_samples_s": startups,
            "startup_s": statistics.median(startups),
            "idle_rss_samples_mb": rss,
            "idle_rss_mb": statistics.median(rss),
            "idle_rss_anon_mb": statistics.median(anon),
            "rss_after_load_mb": after,
            "peak_rss_mb": peak,
            "log_counters": counters,
            "scenarios": scenarios,
            "profiles": profiles,
        }

    def profile_gateway(
        self, backend: str, pid: int, url: str, headers: dict[str, str], metrics: str
    ) -> list[dict[str, Any]]:
        """With --profile: each scenario once more, under py-spy (not counted as a measurement)."""
        if not self.args.profile:
            return []
        out = []
        for mode, conc in SCENARIOS:
            raw = self.results_dir / f"{self.stamp}-pyspy-{backend}-{mode}-c{conc}.txt"
            spy = profiling.start(pid, raw)
            try:
                console.print(f"  [dim]py-spy →[/] {raw.name}")
                loadgen(
                    url, mode, conc, self.profile, {"gateway": pid}, headers, metrics,
                    self.args.workers,
                )  # fmt: skip
            finally:
                profiling.finish(spy)
            if not raw.exists():
                err = spy.stderr.read().decode(errors="replace") if spy.stderr else ""
                console.print(f"  [red]py-spy wrote nothing:[/] {err[-500:]}")
                continue
            summary = profiling.summarise(raw)
            out.append({"mode": mode, "concurrency": conc, "raw": str(raw), **summary})
        return out

    def run_writer(self, backend: str) -> list[dict[str, Any]]:
        console.rule(f"log writer → {backend}")
        out = []
        for batch in (100, 1000):
            data = self.tmp / f"writer-{backend}-{batch}"
            data.mkdir()
            if backend == "postgres":
                assert self.pg is not None
                self.pg.create_database(f"writer{batch}")
                url = self.pg.url(f"writer{batch}")
            else:
                url = f"sqlite:///{data / 'llmops.db'}"
            rows = self.profile.writer_rows
            full = uvloop.run(writer_bench.writer_rows_per_second(url, data, batch, rows))
            raw = uvloop.run(writer_bench.insert_rows_per_second(url, data, batch, rows))
            console.print(
                f"  batch {batch:>5}: BatchWriter {full['rows_per_s']:>8.0f} rows/s, "
                f"insert only {raw['rows_per_s']:>8.0f} rows/s ({rows} rows)"
            )
            out.append(
                {"backend": backend, "batch": batch, "rows": rows, "writer": full, "insert": raw}
            )
        data = self.tmp / f"writer-{backend}-trickle"
        data.mkdir()
        if backend == "postgres":
            assert self.pg is not None
            self.pg.create_database("writertrickle")
            url = self.pg.url("writertrickle")
        else:
            url = f"sqlite:///{data / 'llmops.db'}"
        rate, rows = TRICKLE_RATE, int(TRICKLE_RATE * self.profile.trickle_seconds)
        steady = uvloop.run(writer_bench.trickle(url, data, rate, rows))
        console.print(
            f"  steady {rate:.0f} rows/s (batch 100, 2 s interval): {steady['flushes']} flushes, "
            f"{steady['rows_per_flush']:.1f} rows per flush, {steady['cpu_ms_per_row']:.3f} ms "
            "CPU per row"
        )
        self.trickle.append({"backend": backend, **steady})
        return out

    def run(self) -> dict[str, Any]:
        results: dict[str, Any] = {"meta": meta(self.args, self.profile)}
        fake = self.start_fake()
        results["direct"] = self.run_direct(fake)
        results["backends"] = {}
        results["writer"] = []
        for backend in self.args.backends:
            if backend == "postgres":
                self.pg = PgCluster(free_port()).start()
            try:
                results["backends"][backend] = self.run_backend(backend)
                if not self.args.skip_writer:
                    results["writer"] += self.run_writer(backend)
            finally:
                if self.pg is not None:
                    self.pg.stop()
                    self.pg = None
        self.procs.stop(fake)
        results["writer_steady"] = self.trickle
        results["targets"] = report.evaluate(results)
        return results


def meta(args: argparse.Namespace, profile: Profile) -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    git = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        git = rev + ("+dirty(src)" if dirty else "")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python bench/run.py", *sys.argv[1:]]),
        "profile": profile.name,
        "settings": profile.__dict__,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git,
        "backends": args.backends,
        "workers": args.workers,
        "stream_chunks": CHUNKS,
    }


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the cleanup in ``finally`` blocks runs."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_guarded(
    work: Callable[[], T],
    tmp: Path,
    procs: Processes,
    *,
    keep_temp: bool,
    out: Console = console,
    what: str = "benchmark",
    cleanup: Callable[[], None] | None = None,
) -> T | None:
    """``work()`` with SIGTERM as an interrupt; None if interrupted. On an error, the last lines of
    each log in ``tmp`` are printed. Whatever happens, every process ``procs`` started is stopped,
    then ``cleanup`` runs, then ``tmp`` is removed (unless ``keep_temp``)."""
    try:
        with terminate_on_sigterm():
            return work()
    except (KeyboardInterrupt, SystemExit):
        out.print("[yellow]interrupted[/]: stopping every process this run started")
        return None
    except BaseException:
        out.print(f"[red]{what} aborted[/]; the last lines of each log:")
        for log in sorted(tmp.glob("*.log")):
            out.print(f"[bold]{log.name}[/]\n{procs.tail(log.stem)}")
        raise
    finally:
        procs.stop_all()
        if cleanup is not None:
            cleanup()
        if keep_temp:
            out.print(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="LLMOps gateway benchmark (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="about a minute instead of ~6–10")
    p.add_argument(
        "--backends",
        default="sqlite,postgres",
        help="comma-separated: sqlite, postgres (default both)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="`llmops serve --workers N`; CPU and memory are summed over the process tree",
    )
    p.add_argument("--skip-writer", action="store_true", help="skip the writer micro-benchmark")
    p.add_argument(
        "--results-dir", default=str(BENCH / "results"), help="where the JSON result goes"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the measurements, run each scenario again under py-spy and summarise",
    )
    p.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs) on exit")
    args = p.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.profile and not profiling.available():
        p.error("--profile needs py-spy: pip install py-spy")
    unknown = set(args.backends) - {"sqlite", "postgres"}
    if unknown:
        p.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return args


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmops-bench-"))
    procs = Processes(tmp)
    started = time.perf_counter()
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    bench = Bench(args, tmp, procs)
    results = run_guarded(bench.run, tmp, procs, keep_temp=args.keep_temp)
    if results is None:
        return 130
    results["meta"]["wall_seconds"] = time.perf_counter() - started
    report.print_report(results, console)
    path = bench.results_dir / f"{bench.stamp}-{results['meta']['profile']}.json"
    path.write_text(json.dumps(results, indent=2))
    console.print(f"results: {path} ({results['meta']['wall_seconds']:.0f} s)")
    return 0 if all(c["pass"] for c in results["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
