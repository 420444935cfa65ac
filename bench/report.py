"""Targets, verdicts and the printed tables of a benchmark run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

# The targets the gateway is held to (logging on, one worker).
CPU_MS_CHAT = 1.0
CPU_MS_STREAM = 1.5
ADDED_P50_MS_C1 = 1.0
IDLE_RSS_MB = 80.0
STARTUP_S = 2.0


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _busy(scenario: dict[str, Any]) -> str:
    return f"{_fmt(scenario.get('busy_cores'))}/{_fmt(scenario.get('machine_busy_cores'))}"


def _verdict(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[bold red]FAIL[/]"


def direct_for(results: dict[str, Any], mode: str, concurrency: int) -> dict[str, Any] | None:
    for d in results["direct"]:
        if d["mode"] == mode and d["concurrency"] == concurrency:
            return d  # type: ignore[no-any-return]
    return None


def added(gateway: dict[str, Any], direct: dict[str, Any] | None, key: str) -> float | None:
    if direct is None:
        return None
    g, d = gateway["latency"][key], direct["latency"][key]
    return None if g is None or d is None else g - d


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (target, backend[, scenario]): measured value, limit, pass."""
    checks: list[dict[str, Any]] = []
    for backend, run in results["backends"].items():
        for sc in run["scenarios"]:
            limit = CPU_MS_STREAM if sc["mode"] == "stream" else CPU_MS_CHAT
            cpu = sc["cpu_ms_per_request"]["gateway"]
            checks.append(
                {
                    "target": f"gateway CPU/request, {sc['mode']}, c={sc['concurrency']}",
                    "backend": backend,
                    "value": cpu,
                    "limit": limit,
                    "unit": "ms",
                    "pass": cpu is not None and cpu <= limit and sc["errors"] == 0,
                }
            )
        for sc in run["scenarios"]:
            if sc["concurrency"] != 1:
                continue
            extra = added(sc, direct_for(results, sc["mode"], 1), "p50_ms")
            checks.append(
                {
                    "target": f"added p50 latency, {sc['mode']}, c=1",
                    "backend": backend,
                    "value": extra,
                    "limit": ADDED_P50_MS_C1,
                    "unit": "ms",
                    "pass": extra is not None and extra <= ADDED_P50_MS_C1,
                }
            )
        rss = run["idle_rss_mb"]
        checks.append(
            {
                "target": "idle RSS after start-up",
                "backend": backend,
                "value": rss,
                "limit": IDLE_RSS_MB,
                "unit": "MB",
                "pass": rss <= IDLE_RSS_MB,
            }
        )
        startup = run["startup_s"]
        checks.append(
            {
                "target": "start-up to first served request (median)",
                "backend": backend,
                "value": startup,
                "limit": STARTUP_S,
                "unit": "s",
                "pass": startup <= STARTUP_S,
            }
        )
    return checks


def print_report(results: dict[str, Any], console: Console) -> None:
    meta = results["meta"]
    console.print(
        f"\n[bold]LLMOps benchmark[/] {meta['date']} · {meta['cpus']} CPUs ({meta['cpu_model']}) · "
        f"Python {meta['python']} · {meta['profile']} run · git {meta['git']}"
    )
    table = Table(title="Latency, throughput and gateway CPU per request")
    for col in (
        "backend", "mode", "conc", "ok/err", "req/s", "p50", "p99", "direct p50", "direct p99",
        "added p50", "added p99", "gw CPU ms/req", "of which loop", "db CPU ms/req",
        "busy cores ours/all",
    ):  # fmt: skip
        table.add_column(col, justify="right" if col not in ("backend", "mode") else "left")
    for d in results["direct"]:
        table.add_row(
            "direct", d["mode"], str(d["concurrency"]), f"{d['ok']}/{d['errors']}",
            _fmt(d["rps"], 0), _fmt(d["latency"]["p50_ms"]), _fmt(d["latency"]["p99_ms"]),
            "", "", "", "", "", "", "", _busy(d),
        )  # fmt: skip
    for backend, run in results["backends"].items():
        table.add_section()
        for sc in run["scenarios"]:
            direct = direct_for(results, sc["mode"], sc["concurrency"])
            cpu = sc["cpu_ms_per_request"]
            limit = CPU_MS_STREAM if sc["mode"] == "stream" else CPU_MS_CHAT
            gw = cpu["gateway"]
            mark = _verdict(gw is not None and gw <= limit)
            table.add_row(
                backend, sc["mode"], str(sc["concurrency"]), f"{sc['ok']}/{sc['errors']}",
                _fmt(sc["rps"], 0), _fmt(sc["latency"]["p50_ms"]), _fmt(sc["latency"]["p99_ms"]),
                _fmt(direct["latency"]["p50_ms"] if direct else None),
                _fmt(direct["latency"]["p99_ms"] if direct else None),
                _fmt(added(sc, direct, "p50_ms")), _fmt(added(sc, direct, "p99_ms")),
                f"{_fmt(gw, 3)} {mark}", _fmt(cpu.get("gateway_loop"), 3),
                _fmt(cpu.get("db"), 3), _busy(sc),
            )  # fmt: skip
    console.print(table)
    print_profiles(results, console)

    proc = Table(title="Gateway process")
    for col in (
        "backend", "start-up s (samples)", "idle RSS MB", "of which anonymous", "RSS after load MB",
        "peak MB",
    ):  # fmt: skip
        proc.add_column(col, justify="left" if col == "backend" else "right")
    for backend, run in results["backends"].items():
        samples = ", ".join(_fmt(s) for s in run["startup_samples_s"])
        proc.add_row(
            backend,
            f"{_fmt(run['startup_s'])} ({samples})",
            _fmt(run["idle_rss_mb"], 1),
            _fmt(run["idle_rss_anon_mb"], 1),
            _fmt(run["rss_after_load_mb"], 1),
            _fmt(run["peak_rss_mb"], 1),
        )
    console.print(proc)

    if results["writer"]:
        writer = Table(title="Log writer throughput (rows/s)")
        for col in ("backend", "batch", "rows", "BatchWriter + pricing + rollups", "insert only"):
            writer.add_column(col, justify="left" if col == "backend" else "right")
        for w in results["writer"]:
            writer.add_row(
                w["backend"],
                str(w["batch"]),
                str(w["rows"]),
                _fmt(w["writer"]["rows_per_s"], 0),
                _fmt(w["insert"]["rows_per_s"], 0),
            )
        console.print(writer)
    if results.get("writer_steady"):
        steady = Table(title="Log writer fed at a steady rate (default batch 100, interval 2 s)")
        for col in ("backend", "rows/s fed", "rows", "flushes", "rows per flush", "CPU ms/row"):
            steady.add_column(col, justify="left" if col == "backend" else "right")
        for t in results["writer_steady"]:
            steady.add_row(
                t["backend"],
                _fmt(t["rate"], 0),
                str(t["rows"]),
                str(t["flushes"]),
                _fmt(t["rows_per_flush"], 1),
                _fmt(t["cpu_ms_per_row"], 3),
            )
        console.print(steady)

    verdicts = Table(title="Targets")
    for col in ("target", "backend", "measured", "limit", "verdict"):
        verdicts.add_column(col, justify="right" if col in ("measured", "limit") else "left")
    for c in results["targets"]:
        verdicts.add_row(
            c["target"],
            c["backend"],
            f"{_fmt(c['value'], 3)} {c['unit']}",
            f"≤ {c['limit']} {c['unit']}",
            _verdict(c["pass"]),
        )
    console.print(verdicts)


def print_profiles(results: dict[str, Any], console: Console, top: int = 12) -> None:
    for backend, run in results["backends"].items():
        for prof in run.get("profiles", []):
            table = Table(
                title=f"py-spy: gateway ({backend}), {prof['mode']} c={prof['concurrency']}, "
                f"{prof['samples']} on-CPU samples"
            )
            table.add_column("self time (leaf function)")
            table.add_column("%", justify="right")
            table.add_column("inclusive, llmops code")
            table.add_column("%", justify="right")
            table.add_column("self time by package")
            table.add_column("%", justify="right")
            columns = (prof["self"], prof["inclusive_llmops"], prof["packages"])
            for i in range(top):
                cells: list[str] = []
                for col in columns:
                    name, share = col[i] if i < len(col) else ("", None)
                    cells += [name, _fmt(share, 1) if share is not None else ""]
                table.add_row(*cells)
            console.print(table)


def markdown(results: dict[str, Any]) -> str:
    """The tables of a results file as Markdown (for pasting into bench/README.md)."""
    meta = results["meta"]
    out = [
        f"`{meta['command']}` — {meta['date']}, {meta['cpus']} CPUs ({meta['cpu_model']}), "
        f"Python {meta['python']}, git {meta['git']}, {meta.get('workers', 1)} worker(s), "
        f"{meta.get('wall_seconds', 0):.0f} s.",
        "",
        "| backend | mode | conc | ok/err | req/s | p50 ms | p99 ms | direct p50 | direct p99 "
        "| added p50 | added p99 | gw CPU ms/req | of which loop | db CPU ms/req | busy cores "
        "ours/all |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for d in results["direct"]:
        lat = d["latency"]
        out.append(
            f"| direct | {d['mode']} | {d['concurrency']} | {d['ok']}/{d['errors']} "
            f"| {d['rps']:.0f} | {_fmt(lat['p50_ms'])} | {_fmt(lat['p99_ms'])} | | | | | | | "
            f"| {_busy(d)} |"
        )
    for backend, run in results["backends"].items():
        for sc in run["scenarios"]:
            direct = direct_for(results, sc["mode"], sc["concurrency"])
            lat, cpu = sc["latency"], sc["cpu_ms_per_request"]
            out.append(
                f"| {backend} | {sc['mode']} | {sc['concurrency']} | {sc['ok']}/{sc['errors']} "
                f"| {sc['rps']:.0f} | {_fmt(lat['p50_ms'])} | {_fmt(lat['p99_ms'])} "
                f"| {_fmt(direct['latency']['p50_ms'] if direct else None)} "
                f"| {_fmt(direct['latency']['p99_ms'] if direct else None)} "
                f"| {_fmt(added(sc, direct, 'p50_ms'))} | {_fmt(added(sc, direct, 'p99_ms'))} "
                f"| {_fmt(cpu['gateway'], 3)} | {_fmt(cpu.get('gateway_loop'), 3)} "
                f"| {_fmt(cpu.get('db'), 3)} | {_busy(sc)} |"
            )
    out += [
        "",
        "| backend | start-up s (samples) | idle RSS MB | of which anonymous | RSS after load MB |",
        "|---|--:|--:|--:|--:|",
    ]
    for backend, run in results["backends"].items():
        samples = ", ".join(_fmt(s) for s in run["startup_samples_s"])
        out.append(
            f"| {backend} | {_fmt(run['startup_s'])} ({samples}) | {_fmt(run['idle_rss_mb'], 1)} "
            f"| {_fmt(run.get('idle_rss_anon_mb'), 1)} | {_fmt(run['rss_after_load_mb'], 1)} |"
        )
    if results["writer"]:
        out += [
            "",
            "| writer | batch | rows | BatchWriter + pricing + rollups, rows/s "
            "| insert only, rows/s |",
            "|---|--:|--:|--:|--:|",
        ]
        for w in results["writer"]:
            out.append(
                f"| {w['backend']} | {w['batch']} | {w['rows']} "
                f"| {w['writer']['rows_per_s']:.0f} | {w['insert']['rows_per_s']:.0f} |"
            )
    if results.get("writer_steady"):
        out += [
            "",
            "| writer at a steady rate | rows/s fed | flushes | rows per flush | CPU ms/row |",
            "|---|--:|--:|--:|--:|",
        ]
        for t in results["writer_steady"]:
            out.append(
                f"| {t['backend']} | {t['rate']:.0f} | {t['flushes']} "
                f"| {_fmt(t['rows_per_flush'], 1)} | {_fmt(t['cpu_ms_per_row'], 3)} |"
            )
    out += ["", "| target | backend | measured | limit | verdict |", "|---|---|--:|--:|---|"]
    for c in results["targets"]:
        verdict = "PASS" if c["pass"] else "**FAIL**"
        out.append(
            f"| {c['target']} | {c['backend']} | {_fmt(c['value'], 3)} {c['unit']} "
            f"| ≤ {c['limit']} {c['unit']} | {verdict} |"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import json
    import sys

    with open(sys.argv[1]) as f:
        print(markdown(json.load(f)), end="")
