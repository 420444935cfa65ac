"""Printing the analytics benchmark: the console every analytics module prints to, and the final
report (the table of query timings, facts about the database, and the plans of the statements
that made a query miss its target).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=max(Console().width, 150))


def print_report(results: dict[str, Any]) -> None:
    meta, seeding, db = results["meta"], results["seeding"], results["database"]
    rows = seeding.get("rows")
    title = (
        f"{meta['backend']}: {rows:,} rows" if rows is not None else f"{meta['backend']} (reused)"
    )
    table = Table(title=f"Dashboard queries, {title}, median and max of {meta['runs']} runs")
    for name, justify in (("page", "left"), ("query", "left"), ("median ms", "right"),
                          ("max ms", "right"), ("target", "right"), ("verdict", "left"),
                          ("answered by", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for q in results["queries"]:
        verdict = {None: "", True: "[green]PASS[/]", False: "[bold red]FAIL[/]"}[q["pass"]]
        target = "" if q["target_ms"] is None else f"≤ {q['target_ms']:g}"
        table.add_row(
            q["page"], q["name"], f"{q['median_ms']:.1f}", f"{q['max_ms']:.1f}", target, verdict,
            q["note"],
        )  # fmt: skip
    console.print(table)
    console.print(
        "database: "
        + ", ".join(
            f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
            for k, v in db.items()
        )  # fmt: skip
    )
    for q in results["queries"]:
        if "explain" not in q:
            continue
        head, *plans = q["explain"]
        console.rule(f"{q['name']}: {q['median_ms']:.1f} ms")
        console.print(
            f"{head['statements']} SQL statements, {head['statements_ms']:.1f} ms when each runs "
            "alone (rows fetched); the slowest:"
        )
        for p in plans:
            console.print(f"[bold]{p['ms']:.1f} ms[/], {p['rows']} rows")
            console.print(short_sql(p["sql"]), soft_wrap=True, markup=False, highlight=False)
            params = [v for v in p["params"] if v != 0] if p["params"] else []
            console.print(f"non-zero params: {params}", markup=False, highlight=False)
            console.print("\n".join(p["plan"]), markup=False, highlight=False)


def short_sql(sql: str) -> str:
    """A statement with a long select list cut down (the full text is in the JSON)."""
    head, sep, rest = sql.partition("FROM ")
    if sep and len(head) > 240:
        head = head[:200] + f" … ({head.count(',') + 1} columns) "
    return " ".join((head + sep + rest).split())
