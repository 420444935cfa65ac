"""The filter bar every analytics page shares, as plain data for ``_filters.html``.

One GET form: time presets (links), custom from/to, one select each for environment, config,
variant, model and status, and the tag picker (a key, then values searched as you type). What the
form has no control for (tags, provider, streaming, latency bounds, several values of one
select…) is carried in hidden fields and shown as removable chips, so submitting the form never
loses a filter. Changing a filter always starts the list again from the first page.

The selects offer the values that had traffic in the selected time range (``filter_options``,
run in the page's transaction); ``choices`` serves the Costs comparison the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from llmops.analytics import Filters, breakdown, breakdowns, tag_keys
from llmops.dashboard.format import period
from llmops.dashboard.query import FILTER_PARAMS, PageQuery

PRESETS = (("24h", "24h"), ("7d", "7d"), ("30d", "30d"))
PAGING = ("cursor", "back")
STATUS_OPTIONS = (
    ("success", "Success"),
    ("error", "Errors"),
    ("2xx", "2xx"),
    ("4xx", "4xx"),
    ("5xx", "5xx"),
)
SELECTS = (
    ("environment", "Environment"),
    ("config", "Config"),
    ("variant", "Variant"),
    ("model", "Model"),
    ("status", "Status"),
)
SELECT_DIMENSIONS = ("environment", "config", "variant", "model")
_INPUT_FORMAT = "%Y-%m-%dT%H:%M"
Option = tuple[str, str]


@dataclass(frozen=True)
class Options:
    """What the selects offer (``(value, label)`` by select name) and the known tag keys."""

    selects: dict[str, list[Option]]
    tag_keys: list[str]


def option_value(dimension: str, row: dict[str, Any]) -> str:
    """The filter value for a breakdown row: environment and config slugs read well in a URL
    (the filters take them); a variant's label is ``config/variant``, which they do not, so a
    variant is chosen by id."""
    if dimension in ("environment", "config"):
        return str(row["label"])
    return str(row["key"])


def choices(
    conn: Connection,
    f: Filters,
    dimension: str,
    indexed_tags: Collection[str],
    limit: int = 100,
) -> list[Option]:
    """``(value, label)`` for each value of ``dimension`` (as for ``breakdown``, ``tag:<key>``
    too) with traffic under ``f``, busiest first."""
    rows = breakdown(conn, f, dimension, "requests", limit, indexed_tags=indexed_tags)["rows"]
    return _options(dimension, rows)


def _options(dimension: str, rows: list[dict[str, Any]]) -> list[Option]:
    out: dict[str, str] = {}
    for row in rows:
        if row["key"] is not None and not row["is_other"]:
            out.setdefault(option_value(dimension, row), str(row["label"]))
    return list(out.items())


def filter_options(conn: Connection, f: Filters, indexed_tags: Collection[str]) -> Options:
    """Values with traffic in the time range of ``f`` (whatever the other filters say, so that
    a filter can be changed to any of them) and every tag key: one grouped query for all the
    selects."""
    window = Filters(start=f.start, end=f.end, range=f.range)
    found = breakdowns(conn, window, SELECT_DIMENSIONS, "requests", 100, indexed_tags=indexed_tags)
    selects = {r["by"]: _options(r["by"], r["rows"]) for r in found}
    return Options(selects, tag_keys(conn))


def _custom_range(q: PageQuery, f: Filters | None) -> dict[str, str]:
    """Values for the from/to inputs: what the URL gave, as the browser's datetime-local
    format wants it; an end left open ("until now") stays empty, so it keeps moving."""
    out = {"from": q.get("from") or "", "to": q.get("to") or "", "step": "60"}
    if f is None or f.range is not None:
        return out
    moments = {"from": f.start, "to": f.end}
    if any(m.second or m.microsecond for name, m in moments.items() if out[name]):
        out["step"] = "1"  # a minute-step input would refuse a value with seconds
    fmt = "%Y-%m-%dT%H:%M:%S" if out["step"] == "1" else _INPUT_FORMAT
    for name, moment in moments.items():
        if out[name]:
            out[name] = moment.strftime(fmt)
    return out


def _chip_label(name: str, value: str, options: Sequence[Option]) -> str:
    if name == "tag":
        key, _, tag_value = value.partition("=")
        return f"{key} = {tag_value}"
    label = dict(options).get(value, value)
    return f"{name.replace('_', ' ')}: {label}"


def filter_bar(
    q: PageQuery,
    f: Filters | None,
    options: Mapping[str, Sequence[Option]],
    tag_keys: Sequence[str],
    path: str,
    page_params: Sequence[str] = (),
) -> dict[str, Any]:
    """The filter bar's context. ``f`` is None when the filters did not parse (the bar still
    shows what the URL asked for, so it can be corrected); ``options`` maps each select's name
    to ``(value, label)`` pairs; ``tag_keys`` are the keys the tag picker offers."""
    custom = f is not None and f.range is None
    current_range = f.range if f is not None else q.get("range")
    presets = [
        {
            "label": label,
            "href": q.link(path, replace={"range": value}, drop=("from", "to", *PAGING)),
            "active": current_range == value and not custom,
        }
        for value, label in PRESETS
    ]
    selects: list[dict[str, Any]] = []
    hidden: list[tuple[str, str]] = [(k, v) for k, v in q.pairs if k in page_params]
    chips: list[dict[str, str]] = []
    controlled = {name for name, _ in SELECTS}
    for name, label in SELECTS:
        values = q.getlist(name)
        choices = list(STATUS_OPTIONS if name == "status" else options.get(name, ()))
        if len(values) > 1:  # several values ORed: a chip each, the select adds none
            hidden += [(name, v) for v in values]
            chips += [
                {
                    "label": _chip_label(name, v, choices),
                    "href": q.link(path, remove=[(name, v)], drop=PAGING),
                }
                for v in values
            ]
            continue
        selected = values[0] if values else ""
        if selected and selected not in dict(choices):
            choices.append((selected, selected))
        selects.append({"name": name, "label": label, "options": choices, "selected": selected})
    for name, value in q.pairs:
        if name in FILTER_PARAMS and name not in controlled and name not in ("range", "from", "to"):
            hidden.append((name, value))
            chips.append(
                {
                    "label": _chip_label(name, value, ()),
                    "href": q.link(path, remove=[(name, value)], drop=PAGING),
                }
            )
    return {
        "action": q.root + path,
        "presets": presets,
        "custom": custom,
        "range": "" if custom else (current_range or ""),
        **_custom_range(q, f),
        "period": period(f.start, f.end) if f is not None else "",
        "selects": selects,
        "hidden": hidden,
        "chips": chips,
        "tag_keys": list(tag_keys),
        "reset": q.link(path, keep=page_params, drop=PAGING),
    }
