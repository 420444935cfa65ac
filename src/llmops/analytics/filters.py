"""Filters: the query parameters every analytics view shares, parsed once and validated.

``parse_filters`` turns URL query parameters (single strings or repeated lists) into a frozen
``Filters``; a bad value raises ``FilterError`` naming the parameter, which the API renders as a
400. Unknown parameters are ignored (views add their own, such as ``sort`` or ``cursor``), and
empty values are skipped, as an HTML form sends them for "any".

Semantics:

- Time: ``[start, end)`` in UTC. ``from``/``to`` take ISO dates or datetimes (naive means UTC; a
  bare date in ``to`` includes that whole day); ``range`` is relative to ``now`` (``15m``, ``24h``,
  ``7d``, ``2w``), default ``7d``. ``range`` cannot be combined with ``from``/``to``.
- Repeating one parameter ORs its values; different parameters AND. ``environment``, ``config``
  and ``variant`` take ids or names (environment slug or name, config slug or name, variant name);
  a name stands for every id it has been logged with (see ``lookups.resolve_ids``).
- ``status``: ``success`` (HTTP 2xx), ``error`` (anything else), a class ``2xx``/``4xx``/``5xx``
  (``4xx`` excludes 499, its own class: the client went away) or one code such as ``429``.
  A 200 whose stream broke is "success" here although it counts as an error in the totals.
- ``tag=key=value``: several keys AND, several values of one key OR.
- ``min_latency``/``max_latency`` (ms) and ``min_cost``/``max_cost`` (integer micro-dollars) are
  inclusive; a cost bound excludes unpriced rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from llmops.errors import InvalidRequest
from llmops.store import utc

DEFAULT_RANGE = "7d"
STATUS_WORDS = ("success", "error", "2xx", "4xx", "5xx")
_RANGE = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MAX_SPAN = dt.timedelta(days=3660)
_TAG_KEY_MAX = 64


class FilterError(InvalidRequest):
    """A query parameter has a bad value; ``param`` names it (the API answers 400)."""

    code = "invalid_filter"

    def __init__(self, param: str, message: str):
        super().__init__(message, param=param)


@dataclass(frozen=True, slots=True)
class Filters:
    """Validated filters. Times are aware UTC; every tuple is sorted and free of duplicates."""

    start: dt.datetime
    end: dt.datetime
    range: str | None = None  # the relative range that produced start/end, for links
    environments: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()  # words from STATUS_WORDS or decimal codes
    streaming: bool | None = None
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (key, values), sorted by key
    min_latency: int | None = None
    max_latency: int | None = None
    min_cost: int | None = None
    max_cost: int | None = None

    def to_params(self) -> list[tuple[str, str]]:
        """Query parameters that parse back to these filters (relative ranges stay relative)."""
        out: list[tuple[str, str]] = []
        if self.range is not None:
            out.append(("range", self.range))
        else:
            out += [("from", self.start.isoformat()), ("to", self.end.isoformat())]
        lists = (
            ("environment", self.environments),
            ("config", self.configs),
            ("variant", self.variants),
            ("provider", self.providers),
            ("model", self.models),
            ("endpoint", self.endpoints),
            ("status", self.statuses),
        )
        for name, values in lists:
            out += [(name, v) for v in values]
        if self.streaming is not None:
            out.append(("streaming", "true" if self.streaming else "false"))
        out += [("tag", f"{key}={value}") for key, values in self.tags for value in values]
        numbers = (
            ("min_latency", self.min_latency),
            ("max_latency", self.max_latency),
            ("min_cost", self.min_cost),
            ("max_cost", self.max_cost),
        )
        out += [(name, str(n)) for name, n in numbers if n is not None]
        return out


def parse_filters(params: Mapping[str, str | list[str]], now: dt.datetime) -> Filters:
    """Validate query parameters into ``Filters``; raise ``FilterError`` naming a bad one."""
    start, end, relative = _time_range(params, utc(now))
    min_latency, max_latency = _bounds(params, "min_latency", "max_latency")
    min_cost, max_cost = _bounds(params, "min_cost", "max_cost")
    return Filters(
        start=start,
        end=end,
        range=relative,
        environments=_strings(params, "environment"),
        configs=_strings(params, "config"),
        variants=_strings(params, "variant"),
        providers=_strings(params, "provider"),
        models=_strings(params, "model"),
        endpoints=_strings(params, "endpoint"),
        statuses=tuple(sorted({_status(v) for v in _values(params, "status")})),
        streaming=_boolean(params, "streaming"),
        tags=_tags(params),
        min_latency=min_latency,
        max_latency=max_latency,
        min_cost=min_cost,
        max_cost=max_cost,
    )


def _values(params: Mapping[str, str | list[str]], name: str) -> list[str]:
    raw = params.get(name)
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else list(raw)
    return [v.strip() for v in items if v.strip()]


def _single(params: Mapping[str, str | list[str]], name: str) -> str | None:
    values = _values(params, name)
    if len(values) > 1:
        raise FilterError(name, f"{name} can be given only once")
    return values[0] if values else None


def _strings(params: Mapping[str, str | list[str]], name: str) -> tuple[str, ...]:
    return tuple(sorted(set(_values(params, name))))


def _moment(text: str, name: str, *, end_of_day: bool) -> dt.datetime:
    try:
        if len(text) == 10:  # a bare date
            day = dt.date.fromisoformat(text)
            moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return moment + dt.timedelta(days=1) if end_of_day else moment
        return utc(dt.datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise FilterError(name, f"{name} must be an ISO 8601 date or datetime") from None


def _time_range(
    params: Mapping[str, str | list[str]], now: dt.datetime
) -> tuple[dt.datetime, dt.datetime, str | None]:
    start_text, end_text = _single(params, "from"), _single(params, "to")
    relative = _single(params, "range")
    if relative is not None and (start_text or end_text):
        raise FilterError("range", "range cannot be combined with from/to")
    if start_text is None and end_text is None:
        relative = relative or DEFAULT_RANGE
        return now - _span(relative), now, relative
    end = now if end_text is None else _moment(end_text, "to", end_of_day=True)
    if start_text is None:
        start = end - _span(DEFAULT_RANGE)
    else:
        start = _moment(start_text, "from", end_of_day=False)
    if start >= end:
        raise FilterError("from", "from must be before to")
    if end - start > _MAX_SPAN:
        raise FilterError("from", "the time range is longer than ten years")
    return start, end, None


def _span(text: str) -> dt.timedelta:
    match = _RANGE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise FilterError("range", "range must be a positive number and a unit: 15m, 24h, 7d, 2w")
    span = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if span > _MAX_SPAN:
        raise FilterError("range", "range is longer than ten years")
    return span


def _status(text: str) -> str:
    word = text.lower()
    if word in STATUS_WORDS:
        return word
    if word.isdigit() and len(word) <= 3:
        return str(int(word))
    raise FilterError(
        "status", "status must be success, error, 2xx, 4xx, 5xx or an HTTP status code"
    )


def _boolean(params: Mapping[str, str | list[str]], name: str) -> bool | None:
    text = _single(params, name)
    if text is None:
        return None
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise FilterError(name, f"{name} must be true or false")


def _integer(params: Mapping[str, str | list[str]], name: str) -> int | None:
    text = _single(params, name)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 18:
        raise FilterError(name, f"{name} must be a non-negative integer")
    return int(text)


def _bounds(
    params: Mapping[str, str | list[str]], low_name: str, high_name: str
) -> tuple[int | None, int | None]:
    low, high = _integer(params, low_name), _integer(params, high_name)
    if low is not None and high is not None and low > high:
        raise FilterError(low_name, f"{low_name} must not exceed {high_name}")
    return low, high


def _tags(params: Mapping[str, str | list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    by_key: dict[str, set[str]] = {}
    for item in _values(params, "tag"):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FilterError("tag", "tag must be key=value")
        if len(key) > _TAG_KEY_MAX:
            raise FilterError("tag", f"tag keys are at most {_TAG_KEY_MAX} characters")
        by_key.setdefault(key, set()).add(value)
    return tuple((key, tuple(sorted(values))) for key, values in sorted(by_key.items()))
