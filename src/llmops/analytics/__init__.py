"""Analytics: named query functions over the request log, returning plain rows.

Contracts:

- Every query is a sync ``fn(conn, filters, …)`` to run through ``store.run`` (one transaction);
  only ``export`` is async, paging through the store itself. No HTTP here: handlers call
  ``parse_filters`` (``FilterError`` → 400 naming the parameter), one function, and render.
- Filters are validated once into a frozen ``Filters`` (see ``filters``).
- Aggregates read hourly/daily rollups, tag totals or daily tag rollups where they can answer
  exactly, raw rows otherwise and at the partial edges of a range; counters are identical either
  way (see ``_scope``).
- Money is integer micro-dollars (``export`` adds an exact ``total_cost_usd`` string).
- Request lists are keyset-paginated with opaque cursors; no OFFSET.
- SQL that differs between SQLite and PostgreSQL lives only in ``dialect``.
"""

from __future__ import annotations

from llmops.analytics._scope import NotFromRollups
from llmops.analytics.aggregates import (
    breakdown,
    breakdowns,
    costs_by_model,
    summary,
    timeseries,
)
from llmops.analytics.export import FORMATS, export
from llmops.analytics.filters import FilterError, Filters, parse_filters
from llmops.analytics.lookups import tag_keys, tag_values
from llmops.analytics.requests import list_requests, request_detail

__all__ = [
    "FORMATS",
    "FilterError",
    "Filters",
    "NotFromRollups",
    "breakdown",
    "breakdowns",
    "costs_by_model",
    "export",
    "list_requests",
    "parse_filters",
    "request_detail",
    "summary",
    "tag_keys",
    "tag_values",
    "timeseries",
]
