"""What each page shows, gathered from the analytics queries in one transaction.

Every function here is ``fn(conn, …)`` for ``store.run``; none runs SQL of its own (the layering is
dashboard → analytics → store). A bad parameter raises ``FilterError`` naming it, which the page
shows as a message. Money stays integer micro-dollars until a template formats it; charts get
``{"x": [epoch seconds], "unit", "series": [{"label", "values"}]}`` for ``app.js``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection

from llmops.analytics import (
    FilterError,
    Filters,
    breakdown,
    breakdowns,
    costs_by_model,
    list_requests,
    request_detail,
    summary,
    timeseries,
)
from llmops.dashboard.compare import Comparison, compare

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def has_requests(conn: Connection, now: dt.datetime) -> bool:
    """Whether anything was ever logged (an empty page then explains how to get started)."""
    ever = Filters(start=_EPOCH, end=now + dt.timedelta(days=1))
    rows, _ = list_requests(conn, ever, limit=1)
    return bool(rows)


def _x(points: Sequence[dict[str, Any]]) -> list[int]:
    return [int(dt.datetime.fromisoformat(p["time"]).timestamp()) for p in points]


def _chart(points: Sequence[dict[str, Any]], unit: str, *series: tuple[str, str]) -> dict[str, Any]:
    return {
        "x": _x(points),
        "unit": unit,
        "series": [{"label": label, "values": [p[name] for p in points]} for label, name in series],
    }


def overview(
    conn: Connection, f: Filters, indexed_tags: Collection[str], now: dt.datetime
) -> dict[str, Any]:
    totals = summary(conn, f, indexed_tags=indexed_tags)
    points = timeseries(conn, f, indexed_tags=indexed_tags)["points"]
    top = {
        r["by"]: r["rows"]
        for r in breakdowns(conn, f, ("model", "config"), "cost", 5, indexed_tags=indexed_tags)
    }
    return {
        "summary": totals,
        "has_any": totals["requests"] > 0 or has_requests(conn, now),
        "top_models": top["model"],
        "top_configs": top["config"],
        "charts": {
            "cost": _chart(points, "usd_micro", ("Cost", "total_cost")),
            "requests": _chart(points, "count", ("Requests", "requests"), ("Errors", "errors")),
            "tokens": _chart(
                points,
                "tokens",
                ("Prompt", "prompt_tokens"),
                ("Completion", "completion_tokens"),
            ),
        },
    }


def requests_page(
    conn: Connection,
    f: Filters,
    now: dt.datetime,
    *,
    sort: str,
    direction: str,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    rows, next_cursor = list_requests(conn, f, sort, direction, limit, cursor)
    return {
        "rows": rows,
        "next_cursor": next_cursor,
        "has_any": bool(rows) or has_requests(conn, now),
    }


def _pretty(text: str | None) -> str | None:
    """A JSON body indented for reading; anything else (a truncated body) as it is."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def detail(conn: Connection, request_id: str) -> dict[str, Any] | None:
    row = request_detail(conn, request_id)
    if row is None:
        return None
    body = row.get("body")
    if body is not None:
        row["body"] = {
            "request": _pretty(body.get("request_body")),
            "response": _pretty(body.get("response_body")),
            "truncated": body.get("truncated", False),
        }
    prompt = row["prompt_tokens"]
    parts = (row["cached_tokens"] or 0) + (row["cache_write_tokens"] or 0)
    row["uncached_tokens"] = None if prompt is None else max(prompt - parts, 0)  # as priced
    if row["total_cost"] is not None:
        row["cost_state"] = "priced"
    else:  # a missing cost is never shown as zero: say why it is missing
        row["cost_state"] = "no_usage" if row["total_tokens"] is None else "unpriced"
    tags = row.get("tags") or {}
    row["tags"] = dict(sorted(tags.items())) if isinstance(tags, dict) else {}
    return row


def costs(
    conn: Connection,
    f: Filters,
    indexed_tags: Collection[str],
    now: dt.datetime,
    *,
    by_tag: str,
    comparison: Comparison,
) -> dict[str, Any]:
    if not 0 < len(by_tag) <= 64:
        raise FilterError("by_tag", "by_tag must be a tag key of 1 to 64 characters")
    by_model = costs_by_model(conn, f, indexed_tags=indexed_tags)
    tables = {
        r["by"]: r["rows"]
        for r in breakdowns(conn, f, ("provider", "config"), "cost", 20, indexed_tags=indexed_tags)
    }
    by = f"tag:{by_tag}"
    tables[by] = breakdown(conn, f, by, "cost", 20, indexed_tags=indexed_tags)["rows"]
    series = timeseries(conn, f, split_by="model", limit=5, indexed_tags=indexed_tags)
    points = series["points"]
    chart = _chart(points, "usd_micro", ("All models", "total_cost"))
    for i, s in enumerate(series["series"]):
        values = [p["series"][i]["total_cost"] for p in points]
        chart["series"].append({"label": s["label"], "values": values})
    return {
        "by_model": by_model,
        "by_provider": tables["provider"],
        "by_config": tables["config"],
        "by_tag": tables[f"tag:{by_tag}"],
        "chart": chart,
        "comparison": compare(conn, f, comparison, indexed_tags),
        "has_any": by_model["total"]["requests"] > 0 or has_requests(conn, now),
    }
