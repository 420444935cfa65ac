"""``llmops export``: the filtered request log as CSV or JSONL, streamed to a file with progress.

Uses the same filters as the analytics API (``--param key=value`` for any of them) and pages
through the log with keyset cursors, so millions of rows never sit in memory at once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from llmops.analytics import FilterError, export, parse_filters, summary
from llmops.store import open_store


def add_parser(sub: Any, common: Any) -> None:
    p = sub.add_parser("export", help="export the request log as CSV or JSONL")
    common(p, server=False)
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--output", "-o", help="file to write (default: llmops-requests.<format>)")
    p.add_argument("--range", help="relative range, e.g. 24h, 7d (default 7d)")
    p.add_argument("--from", dest="from_", help="start date/time (UTC)")
    p.add_argument("--to", help="end date/time (UTC)")
    p.add_argument("--tag", action="append", default=[], help="key=value (repeatable)")
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--config", action="append", default=[])
    p.add_argument("--environment", action="append", default=[])
    p.add_argument("--status", action="append", default=[])
    p.add_argument("--param", action="append", default=[], help="any API filter as key=value")
    p.set_defaults(fn=cmd_export)


def _params(args: argparse.Namespace) -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = {}
    for key, value in (("range", args.range), ("from", args.from_), ("to", args.to)):
        if value:
            params[key] = value
    for key in ("tag", "model", "config", "environment", "status"):
        if getattr(args, key):
            params[key] = list(getattr(args, key))
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = value
    return params


def cmd_export(args: argparse.Namespace) -> int:
    # Imported here: every ``llmops`` command loads this module, and rich.progress would add
    # 2 MB to the idle memory of ``llmops serve`` (bench/README.md).
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from llmops.cli import settings_from_args

    settings = settings_from_args(args)
    try:
        f = parse_filters(_params(args), dt.datetime.now(dt.UTC))
    except FilterError as e:
        print(f"error: {e.param}: {e.message}", file=sys.stderr)
        return 2
    out = Path(args.output or f"llmops-requests.{args.format}")

    async def go() -> int:
        store = open_store(settings)
        try:
            total = (await store.run(lambda c: summary(c, f)))["requests"]
            written = 0
            columns = [
                TextColumn("exporting"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            ]
            with open(out, "wb") as fh, Progress(*columns, transient=True) as progress:
                task = progress.add_task("rows", total=total)
                first = True
                async for chunk in export(store, f, args.format):
                    fh.write(chunk)
                    rows = chunk.count(b"\n") - (1 if first and args.format == "csv" else 0)
                    first = False
                    written += rows
                    progress.update(task, completed=written)
            return written
        finally:
            await store.close()

    rows = asyncio.run(go())
    print(f"wrote {rows} requests to {out}")
    return 0
