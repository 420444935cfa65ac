"""The side-by-side comparison of the Costs page: two periods, or two groups of requests.

``compare=period`` (the default) sets the selected time range beside the one just before it, of
the same length. ``compare=<dimension>`` (environment, config, variant, model, provider, or
``tag`` for the page's chosen tag key) sets two of its values ``a`` and ``b`` side by side within
the selected filters, by default the two that cost the most. Each side shows requests, cost, cost
per request, average latency and error rate; then the difference B − A and the relative change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from llmops.analytics import FilterError, Filters, summary
from llmops.dashboard.filterbar import Option, choices
from llmops.dashboard.format import (
    DASH,
    change,
    latency,
    money,
    number,
    percent,
    period,
    signed_money,
)

KINDS = ("period", "environment", "config", "variant", "model", "provider", "tag")


@dataclass(frozen=True)
class Comparison:
    kind: str = "period"
    a: str | None = None
    b: str | None = None
    tag_key: str = "tenantSlug"

    @classmethod
    def parse(cls, kind: str | None, a: str | None, b: str | None, tag_key: str) -> Comparison:
        kind = kind or "period"
        if kind not in KINDS:
            raise FilterError("compare", f"compare must be one of {', '.join(KINDS)}")
        return cls(kind, a, b, tag_key)


def _only(f: Filters, c: Comparison, values: tuple[str, ...]) -> Filters:
    """``f`` with its filter on the compared dimension set to ``values`` (none: no filter)."""
    replace = dataclasses.replace
    match c.kind:
        case "environment":
            return replace(f, environments=values)
        case "config":
            return replace(f, configs=values)
        case "variant":
            return replace(f, variants=values)
        case "model":
            return replace(f, models=values)
        case "provider":
            return replace(f, providers=values)
        case "tag":
            tags = [t for t in f.tags if t[0] != c.tag_key] + (
                [(c.tag_key, values)] if values else []
            )
            return replace(f, tags=tuple(sorted(tags)))
    raise AssertionError(f"not a dimension: {c.kind}")


def _without_own_filter(f: Filters, c: Comparison) -> Filters:
    """``f`` less its filter on the compared dimension: each side sets its own value."""
    return _only(f, c, ())


def _side(f: Filters, c: Comparison, value: str) -> Filters:
    return _only(f, c, (value,))


def _metrics(s: dict[str, Any]) -> dict[str, Any]:
    n, cost = s["requests"], s["total_cost"]
    return {
        "requests": n,
        "total_cost": cost,
        "cost_per_request": (2 * cost + n) // (2 * n) if n else None,  # rounded half up
        "latency_avg_ms": s["latency_avg_ms"],
        "error_rate": s["errors"] / n if n else None,
    }


def _signed_latency(ms: float) -> str:
    return ("+" if ms > 0 else "-" if ms < 0 else "") + latency(abs(ms))


def _points(ratio: float) -> str:
    return f"{ratio * 100:+.1f} pp"


# (metric, label, format, format of the difference, whether lower is better)
_ROWS: tuple[tuple[str, str, Callable[[Any], str], Callable[[Any], str], bool | None], ...] = (
    ("requests", "Requests", number, lambda d: f"{d:+,}", None),
    ("total_cost", "Cost", money, signed_money, True),
    ("cost_per_request", "Cost per request", money, signed_money, True),
    ("latency_avg_ms", "Avg latency", latency, _signed_latency, True),
    ("error_rate", "Error rate", percent, _points, True),
)


def _rows(left: dict[str, Any], right: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for name, label, fmt, fmt_diff, lower_is_better in _ROWS:
        a, b = left[name], right[name]
        diff = None if a is None or b is None else b - a
        tone = ""
        if diff and lower_is_better is not None:
            tone = "worse" if (diff > 0) == lower_is_better else "better"
        out.append(
            {
                "label": label,
                "a": fmt(a),
                "b": fmt(b),
                "diff": DASH if diff is None else fmt_diff(diff),
                "change": change(a, b) if name != "error_rate" else DASH,
                "tone": tone,
            }
        )
    return out


def compare(
    conn: Connection, f: Filters, c: Comparison, indexed_tags: Collection[str]
) -> dict[str, Any]:
    """The comparison's context: ``sides`` (title, subtitle), ``rows``, the ``options`` to pick
    groups from and the values picked; ``ready`` False when there are not two groups."""
    options: list[Option] = []
    a = b = None
    if c.kind == "period":
        before = dataclasses.replace(f, start=f.start - (f.end - f.start), end=f.start, range=None)
        sides = [
            ("Previous period", period(before.start, before.end), before),
            ("Selected period", period(f.start, f.end), f),
        ]
    else:
        dimension = f"tag:{c.tag_key}" if c.kind == "tag" else c.kind
        options = choices(conn, _without_own_filter(f, c), dimension, indexed_tags, limit=50)
        a = c.a or (options[0][0] if options else None)
        b = c.b or next((value for value, _ in options if value != a), None)
        names = dict(options)
        what = c.tag_key if c.kind == "tag" else c.kind
        sides = [
            (names.get(value, value), f"{what} {label}", _side(f, c, value))
            for value, label in ((a, "A"), (b, "B"))
            if value is not None
        ]
    out: dict[str, Any] = {"kind": c.kind, "a": a, "b": b, "options": options, "kinds": KINDS}
    if len(sides) < 2:
        return {**out, "ready": False, "sides": [], "rows": []}
    left, right = (
        _metrics(summary(conn, side_filters, indexed_tags=indexed_tags, percentiles=False))
        for _, _, side_filters in sides
    )
    return {
        **out,
        "ready": True,
        "sides": [{"title": title, "subtitle": subtitle} for title, subtitle, _ in sides],
        "rows": _rows(left, right),
    }
