"""Export: the filtered request list streamed as CSV or JSON Lines, one page at a time.

``export`` validates its arguments when called (so an API can answer 400 before it starts a
response) and returns an async iterator of encoded chunks. Each chunk is one keyset page read in
its own ``store.run`` transaction, so memory holds at most ``chunk_rows`` rows whatever the size of
the export, and a long export never holds one transaction open.

Columns are those of ``llm_requests`` in schema order, then ``total_cost_usd``: money stays
integer micro-dollars, and ``total_cost_usd`` is the exact decimal string (``"0.000028"``), empty
or null when unpriced. CSV writes tags as a JSON object, booleans as ``true``/``false`` and NULL as
an empty field; JSON Lines writes one object per line with tags as a nested object.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import orjson

from llmops.analytics.filters import FilterError, Filters
from llmops.analytics.requests import DIRECTIONS, MAX_LIMIT, SORT_COLUMNS, list_requests
from llmops.store import Store
from llmops.store import schema as s

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
# str(): column names are quoted_name, a str subclass that orjson refuses as a key.
COLUMNS = (*(str(c.name) for c in s.llm_requests.c), "total_cost_usd")
_MICRO = Decimal(1_000_000)
_SIX_PLACES = Decimal("0.000001")


def usd(micro: int | None) -> str | None:
    """Integer micro-dollars → exact decimal dollars with six places (None stays None)."""
    return None if micro is None else str((Decimal(micro) / _MICRO).quantize(_SIX_PLACES))


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def _csv(rows: Sequence[dict[str, Any]], header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_csv_value(row[name]) for name in COLUMNS])
    return buffer.getvalue().encode()


def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps({name: row[name] for name in COLUMNS}) + b"\n" for row in rows)


def export(
    store: Store,
    f: Filters,
    fmt: str = "csv",
    *,
    sort: str = "time",
    direction: str = "desc",
    chunk_rows: int = 1000,
) -> AsyncIterator[bytes]:
    """Stream the filtered requests, ordered like ``list_requests``, as ``fmt`` (csv or jsonl):
    one chunk of bytes per page of ``chunk_rows`` rows (a CSV header leads the first chunk,
    which is sent even when no row matches). FORMATS maps each format to its media type."""
    if fmt not in FORMATS:
        raise FilterError("format", "format must be csv or jsonl")
    if sort not in SORT_COLUMNS:
        raise FilterError("sort", f"sort must be one of {', '.join(SORT_COLUMNS)}")
    if direction not in DIRECTIONS:
        raise FilterError("direction", "direction must be desc or asc")
    if not 1 <= chunk_rows <= MAX_LIMIT:
        raise FilterError("chunk_rows", f"chunk_rows must be between 1 and {MAX_LIMIT}")
    return _chunks(store, f, fmt, sort, direction, chunk_rows)


async def _chunks(
    store: Store, f: Filters, fmt: str, sort: str, direction: str, chunk_rows: int
) -> AsyncIterator[bytes]:
    cursor: str | None = None
    first = True
    while True:
        page = functools.partial(
            list_requests, f=f, sort=sort, direction=direction, limit=chunk_rows, cursor=cursor
        )
        rows, cursor = await store.run(page)
        for row in rows:
            row["total_cost_usd"] = usd(row["total_cost"])
        chunk = _csv(rows, header=first) if fmt == "csv" else _jsonl(rows)
        first = False
        if chunk:
            yield chunk
        if cursor is None:
            return
