"""Printing the soak: one progress line per sample while it runs, then the tables of the report
(samples, load generator, outage, checks). ``python bench/soak_report.py FILE.json`` prints a
results file again."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from soak_checks import windows
from soak_load import MIX

console = Console(width=max(Console().width, 160))


def _f(v: Any, spec: str = ".0f") -> str:
    return "—" if v is None else format(v, spec)


def progress_line(s: dict[str, Any]) -> str:
    return (
        f"  t={s['t']:>6.0f} s  RSS {s['rss_mb']:6.1f} MB  fds {_f(s['fds_proc'], 'd')}"
        f"/{_f(s['fds_metric'], '.0f')}  tasks {_f(s['tasks'], '.0f')}  queue "
        f"{_f(s['queue_depth'], '.0f')}  rows {_f(s['rows_written'], '.0f')}  "
        f"{_f(s.get('req_per_s'), '.0f')} req/s  gw {_f(s.get('gateway_cores'), '.2f')} "
        f"cores  machine {_f(s.get('machine_cores'), '.2f')}"
        + (f"  spilled {_f(s.get('rows_spilled'))}" if s.get("rows_spilled") else "")
        + ("  [database down]" if s.get("database_down") else "")
    )


def samples_table(results: dict[str, Any]) -> Table:
    seconds = results["meta"]["minutes"] * 60
    w = windows(results["samples"], seconds, results.get("outage"))
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

    def lat(b: dict[str, Any] | None, key: str) -> str:
        if b is None or not b[key]["n"]:
            return "—"
        return f"{b[key]['p50_ms']:.1f}/{b[key]['p99_ms']:.1f}"

    rows = [*results["samples"], {**results["after_drain"], "t": "drained"}]
    for s in rows:
        b = buckets.get(round(s["t"])) if isinstance(s["t"], float | int) else None
        t.add_row(
            _f(s["t"]) if not isinstance(s["t"], str) else s["t"],
            phase.get(id(s), "idle" if s["t"] == 0 else ""),
            _f(s["rss_mb"], ".1f"),
            _f(s["rss_anon_mb"], ".1f"),
            _f(s["fds_proc"], "d"),
            _f(s["fds_metric"]),
            _f(s["tasks"]),
            _f(s["threads"], "d"),
            _f(s["queue_depth"]),
            _f(s["rows_written"]),
            _f(s.get("req_per_s")),
            _f(s.get("gateway_cores"), ".2f"),
            _f(s.get("machine_cores"), ".2f"),
            lat(b, "chat"),
            lat(b, "stream"),
            _f(b["problems"], "d") if b else "—",
        )
    return t


def load_table(results: dict[str, Any]) -> Table:
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
    return lt


def outage_table(o: dict[str, Any]) -> Table:
    """The outage's timeline (t: seconds since the load started) and what happened in it."""
    t = Table(title=f"database outage: {o['method']}")
    t.add_column("what")
    t.add_column("measured")

    def s(key: str) -> str:
        return _f(o.get(key), ".1f")

    inside = o["during"]
    t.add_row(
        "database away",
        f"t={s('down_begin_t')} (gone at {s('down_t')}) → back at t={s('up_t')} (start at "
        f"{s('up_begin_t')}): {s('down_s')} s unwritable",
    )
    t.add_row(
        "requests started and ended while away",
        f"{inside['requests']} ({_f(inside['per_second'])}/s), {inside['as_expected']} as "
        f"expected, {inside['unanswered']} unanswered; "
        + ", ".join(f"{k}×{n}" for k, n in inside["statuses"].items()),
    )
    t.add_row(
        "requests overlapping the outage",
        f"{inside['overlapping']}, {inside['overlapping_not_as_expected']} not as expected",
    )
    t.add_row(
        "writer while away",
        f"{o['written_during']} rows written; saw the database down: {o['writer_saw_down']}; at "
        f"the return: {o['queued_at_up']} rows queued since start, {o['queue_depth_at_up']} in "
        f"memory, {o['spilled_at_up']} spilled",
    )
    up = f"writer saw it up {s('writer_up_s')}, " if o["writer_saw_down"] else ""
    spill = (
        f"spill replayed {s('spill_replayed_s')}, " if o["spilled_at_up"] else "nothing spilled, "
    )
    t.add_row(
        "after the return (s)",
        up + spill + f"every row queued by the return written {s('backlog_written_s')}",
    )
    return t


def print_report(results: dict[str, Any]) -> None:
    console.print(samples_table(results))
    load = results["load"]
    console.print(load_table(results))
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
    if results.get("outage"):
        console.print(outage_table(results["outage"]))
    title = "checks (baseline = samples in 20–45 % of the run, end = last 25 %)"
    if results.get("outage"):
        title = "checks (baseline = after the warm-up, before the outage; end = last 25 %, after "
        title += "the writer caught up)"
    ct = Table(title=title)
    for col in ("check", "measured", "limit", "verdict"):
        ct.add_column(col)
    for c in results["checks"]:
        ct.add_row(
            c["check"], c["measured"], c["limit"], "PASS" if c["pass"] else "[bold red]FAIL[/]"
        )
    console.print(ct)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/soak_report.py bench/results/<stamp>-soak-….json")
    print_report(json.loads(Path(sys.argv[1]).read_text()))
