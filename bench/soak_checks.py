"""The soak's verdicts: the log table against the answers, and the samples against the limits.

Pure functions of what ``soak.py`` collected (samples, the load generator's counts, the table, the
outage's timeline), so that a results file can be judged again without running anything.
"""

from __future__ import annotations

import collections
import statistics
from typing import Any

from soak_load import EXPECTED_STATUS, Answer
from soak_stack import DRAIN_TIMEOUT

WARMUP_SHARE = 0.20  # the first 20 % of the run is warm-up: not compared
BASELINE_END = 0.45  # the baseline window: samples in (20 %, 45 %] of the run
END_START = 0.75  # the end window: samples in (75 %, 100 %]
RSS_GROWTH_LIMIT = 0.10  # memory: end median at most 10 % above the baseline median
FD_NOISE = 5  # open fds: end median at most this many above the baseline median
TASK_NOISE = 10  # asyncio tasks: the same
CATCHUP_LIMIT = 60.0  # outage: every row queued by the database's return written within this
BATCH = 100  # the writer's default batch: at most one may commit after the database went away


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def compare(answered: list[Answer], table: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Each answered request id against the log table."""
    answered = [a for a in answered if a[2] != "-"]
    seen = collections.Counter(rid for _, _, rid, *_ in answered)
    missing = [rid for rid in seen if rid not in table]
    twice = [rid for rid, (n, _) in table.items() if n != 1]
    status_mismatch: collections.Counter[str] = collections.Counter()
    logged_status: collections.Counter[str] = collections.Counter()
    for kind, status, rid, *_ in answered:
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


def during_outage(answers: list[Answer], down: float, up: float) -> dict[str, Any]:
    """The requests that started after the database was gone and ended before it was started
    again (``down``/``up``: time.monotonic()), and those that merely overlapped the outage."""
    inside = [a for a in answers if a[4] >= down and a[5] <= up]
    overlapping = [a for a in answers if a[4] < up and a[5] > down]
    statuses: collections.Counter[str] = collections.Counter(f"{a[0]}:{a[1]}" for a in inside)
    return {
        "requests": len(inside),
        "answered": sum(1 for a in inside if a[1]),
        "as_expected": sum(1 for a in inside if a[3]),
        "unanswered": sum(1 for a in inside if not a[1]),
        "statuses": dict(sorted(statuses.items())),
        "overlapping": len(overlapping),
        "overlapping_not_as_expected": sum(1 for a in overlapping if not a[3]),
        "per_second": len(inside) / (up - down) if up > down else None,
    }


def windows(
    samples: list[dict[str, Any]], seconds: float, outage: dict[str, Any] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Warm-up, baseline and end samples. With an outage the baseline stops where the outage
    starts, the end window starts after the writer caught up, and the samples in between form
    the ``outage`` window."""
    loaded = [s for s in samples if s["t"] > 0]
    warm, base_end, end_start = WARMUP_SHARE * seconds, BASELINE_END * seconds, END_START * seconds
    out: dict[str, list[dict[str, Any]]] = {}
    if outage is not None:
        base_end = min(base_end, outage["down_begin_t"])
        recovered = outage.get("caught_up_t") or outage["up_t"]
        end_start = max(end_start, recovered)
        out["outage"] = [s for s in loaded if base_end < s["t"] <= end_start]
    out["warmup"] = [s for s in loaded if s["t"] <= warm]
    out["baseline"] = [s for s in loaded if warm < s["t"] <= base_end]
    out["end"] = [s for s in loaded if s["t"] > end_start]
    return out


def slope_per_minute(samples: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares slope of ``key`` over time, per minute."""
    pts = [(s["t"], s[key]) for s in samples if s.get(key) is not None]
    if len(pts) < 3:
        return None
    mt = sum(t for t, _ in pts) / len(pts)
    mv = sum(v for _, v in pts) / len(pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return None if not den else 60 * sum((t - mt) * (v - mv) for t, v in pts) / den


def flat_checks(
    samples: list[dict[str, Any]], w: dict[str, list[dict[str, Any]]], outage: bool
) -> list[dict[str, Any]]:
    """Memory, fds and tasks: the end window's median against the baseline's."""
    first_base = w["baseline"][0]["t"] if w["baseline"] else 0
    after = [s for s in samples if s["t"] >= first_base and s not in w.get("outage", [])]
    checks: list[dict[str, Any]] = []
    prefix = "back to the pre-outage level: " if outage else ""

    def flat(name: str, key: str, limit: str, ok: Any, unit: str) -> None:
        base = median([s[key] for s in w["baseline"] if s.get(key) is not None])
        end = median([s[key] for s in w["end"] if s.get(key) is not None])
        slope = slope_per_minute(after, key)
        if base is None or end is None:
            checks.append(
                {"check": prefix + name, "measured": "no samples", "limit": limit, "pass": False}
            )
            return
        measured = f"{base:.1f} → {end:.1f} {unit} ({end - base:+.1f}"
        measured += f", {100 * (end - base) / base:+.1f} %)" if key.startswith("rss") else ")"
        if slope is not None:
            measured += f", slope {slope:+.2f} {unit}/min"
        checks.append(
            {
                "check": prefix + name,
                "baseline_median": base,
                "end_median": end,
                "slope_per_min": slope,
                "measured": measured,
                "limit": limit,
                "pass": bool(ok(base, end)),
            }
        )

    fd_limit, task_limit = f"≤ +{FD_NOISE}", f"≤ +{TASK_NOISE}"
    flat(
        "memory flat (RSS)",
        "rss_mb",
        f"≤ +{RSS_GROWTH_LIMIT:.0%}",
        lambda b, e: e <= b * (1 + RSS_GROWTH_LIMIT),
        "MB",
    )
    flat("open fds flat (/proc)", "fds_proc", fd_limit, lambda b, e: e <= b + FD_NOISE, "")
    flat(
        "open fds flat (llmops_open_fds)",
        "fds_metric",
        fd_limit,
        lambda b, e: e <= b + FD_NOISE,
        "",
    )
    flat(
        "asyncio tasks flat (llmops_event_loop_tasks)",
        "tasks",
        task_limit,
        lambda b, e: e <= b + TASK_NOISE,
        "",
    )
    return checks


def logging_checks(
    load: dict[str, Any], logged: dict[str, Any], rollups: dict[str, int | None]
) -> list[dict[str, Any]]:
    """Exactly once, the right status, no strays, every answer as expected, rollups agree."""
    ok_log = (
        logged["missing"] == 0
        and logged["logged_more_than_once"] == 0
        and logged["answered_ids_unique"] == logged["answered_with_id"]
        and logged["answered_with_id"] > 0
    )
    mismatches = sum(logged["status_mismatches"].values())
    sent = sum(load["sent"].values())
    unanswered = sum(load["unanswered"].values())
    wrong = sum(load["wrong"].values())
    rows = logged["rows_in_table"]
    off = {name: n for name, n in rollups.items() if n is not None and n != rows}
    return [
        {
            "check": "every answered request logged exactly once",
            "measured": (
                f"{logged['answered_with_id']} answered, {logged['missing']} missing, "
                f"{logged['logged_more_than_once']} twice, "
                f"{logged['answered_with_id'] - logged['answered_ids_unique']} duplicate ids; "
                f"{rows} rows ({logged['extra_rows']} not answered to the load generator)"
            ),
            "limit": "0 missing, 0 twice",
            "pass": ok_log,
        },
        {
            "check": "logged status = status answered",
            "measured": f"{mismatches} mismatches",
            "limit": "0 (disconnects: 499)",
            "pass": mismatches == 0,
        },
        # Rows the load generator has no id for: the start-up request, plus requests it sent but
        # got no answer to (which the gateway may still have logged).
        {
            "check": "no rows beyond the answered ones",
            "measured": f"{logged['extra_rows']} extra rows",
            "limit": f"≤ 1 start-up request + {unanswered} unanswered",
            "pass": logged["extra_rows"] <= 1 + unanswered,
        },
        {
            "check": "every request answered as expected",
            "measured": f"{sent} sent, {unanswered} unanswered, {wrong} wrong",
            "limit": "0 unanswered, 0 wrong",
            "pass": unanswered == 0 and wrong == 0 and sent > 0,
        },
        {
            "check": "rollups count every row once",
            "measured": ", ".join(f"{k} {v}" for k, v in rollups.items()) + f" (rows {rows})",
            "limit": "each sum(requests) = rows",
            "pass": not off and bool(rollups),
        },
    ]


def writer_check(drain: dict[str, Any], outage: bool) -> dict[str, Any]:
    m = drain["metrics"]
    spilled = m.get("llmops_log_rows_spilled_total", 0)
    replayed = m.get("llmops_log_rows_replayed_total", 0)
    dead = m.get("llmops_log_rows_dead_lettered_total", 0)
    measured = f"drained: {'yes' if drain['ok'] else 'no'}, spilled {spilled:.0f}, "
    if outage:
        return {
            "check": "spilled rows all replayed",
            "measured": measured + f"replayed {replayed:.0f}, dead-lettered {dead:.0f}",
            "limit": f"drained within {DRAIN_TIMEOUT:.0f} s, replayed = spilled, 0 dead-lettered",
            "pass": drain["ok"] and replayed >= spilled and dead == 0,
        }
    return {
        "check": "log writer kept up",
        "measured": measured + f"dead-lettered {dead:.0f}",
        "limit": f"drained within {DRAIN_TIMEOUT:.0f} s, 0 spilled/dead-lettered",
        "pass": drain["ok"] and spilled + dead == 0,
    }


def outage_checks(outage: dict[str, Any]) -> list[dict[str, Any]]:
    """The database was really away, the gateway kept answering, the writer caught up."""
    inside = outage["during"]
    expected = {f"{k}:{v}" for k, v in EXPECTED_STATUS.items()}
    odd = {k: n for k, n in inside["statuses"].items() if k not in expected}
    written = outage["written_during"]
    catchup = outage.get("caught_up_s")
    return [
        {
            "check": "the database was unwritable during the outage",
            "measured": f"{written} rows written in {outage['down_s']:.1f} s"
            + (f" (writer saw it down: {outage['writer_saw_down']})"),
            "limit": f"≤ {BATCH} (one batch in flight)",
            "pass": written <= BATCH,
        },
        {
            "check": "requests served during the outage",
            "measured": (
                f"{inside['requests']} started and ended while it was down, "
                f"{inside['as_expected']} as expected, {inside['unanswered']} unanswered; "
                + ", ".join(f"{k}×{n}" for k, n in inside["statuses"].items())
            ),
            "limit": "> 0, all as expected (chat/stream 200)",
            "pass": inside["requests"] > 0
            and inside["as_expected"] == inside["requests"]
            and not odd,
        },
        {
            "check": "writer caught up after the outage",
            "measured": "never"
            if catchup is None
            else f"{catchup:.1f} s after the database was back ({outage['queued_at_up']} rows "
            f"queued by then, {outage['spilled_at_up']} of them spilled)",
            "limit": f"≤ {CATCHUP_LIMIT:.0f} s",
            "pass": catchup is not None and catchup <= CATCHUP_LIMIT,
        },
    ]


def evaluate(
    results: dict[str, Any], logged: dict[str, Any], rollups: dict[str, int | None]
) -> list[dict[str, Any]]:
    outage = results.get("outage")
    w = windows(results["samples"], results["meta"]["minutes"] * 60, outage)
    checks = flat_checks(results["samples"], w, outage is not None)
    checks += logging_checks(results["load"], logged, rollups)
    checks.append(writer_check(results["drain"], outage is not None))
    if outage is not None:
        checks += outage_checks(outage)
    return checks
