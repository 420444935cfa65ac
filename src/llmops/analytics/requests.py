"""The request list (keyset-paginated, filtered, sortable) and one request's detail.

Pagination never uses OFFSET: a page ends with an opaque cursor (base64url of JSON holding the
sort, the direction, and the last row's sort value and id), and the next page starts strictly
after that ``(value, id)`` pair. The id breaks ties, so pages neither repeat nor skip rows even when
many rows share a cost or a millisecond; rows written meanwhile appear only if they sort after the
cursor. Unpriced (NULL cost) and usage-less (NULL tokens) rows sort last in both directions: the
list reads the non-NULL rows first, then the NULL ones ordered by id, so each phase is a plain
range scan on a ``(column, id)`` index.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement

from llmops.analytics._scope import open_scope, raw_where
from llmops.analytics.dialect import as_utc
from llmops.analytics.filters import FilterError, Filters
from llmops.analytics.lookups import parse_uuid
from llmops.store import schema as s

SORT_COLUMNS = {
    "time": "created_at",
    "cost": "total_cost",
    "latency": "latency_ms",
    "tokens": "total_tokens",
}
DIRECTIONS = ("desc", "asc")
MAX_LIMIT = 1000
_UUID_COLUMNS = ("id", "environment_id", "config_id", "variant_id")


def plain_row(row: Any) -> dict[str, Any]:
    """A ``llm_requests`` row as JSON-ready values: ids as text, ``created_at`` as ISO UTC."""
    out = {str(name): value for name, value in row._mapping.items()}
    for name in _UUID_COLUMNS:
        if out.get(name) is not None:
            out[name] = str(out[name])
    out["created_at"] = as_utc(out["created_at"]).isoformat()
    out["is_streaming"] = bool(out["is_streaming"])
    return out


def _encode(sort: str, direction: str, value: Any, row_id: uuid.UUID) -> str:
    if isinstance(value, dt.datetime):
        value = as_utc(value).isoformat()
    data = {"s": sort, "d": direction, "v": value, "i": str(row_id)}
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def _decode(cursor: str, sort: str, direction: str) -> tuple[Any, uuid.UUID]:
    bad = FilterError("cursor", "cursor is not valid for this list")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    if not isinstance(data, dict) or (data.get("s"), data.get("d")) != (sort, direction):
        raise bad
    row_id, value = parse_uuid(str(data.get("i"))), data.get("v")
    if row_id is None:
        raise bad
    try:
        if sort == "time":
            return as_utc(dt.datetime.fromisoformat(str(value))), row_id
    except (TypeError, ValueError):
        raise bad from None
    if value is not None and (type(value) is not int or not -(2**63) <= value < 2**63):
        raise bad
    return value, row_id


def _after(column: Any, row_id: Any, value: Any, last_id: uuid.UUID, desc: bool) -> Any:
    """Rows strictly after ``(value, last_id)`` in the list's order."""
    left = sa.tuple_(column, row_id)
    right = sa.tuple_(
        sa.bindparam(None, value, type_=column.type), sa.bindparam(None, last_id, type_=sa.Uuid)
    )
    return left < right if desc else left > right


def list_requests(
    conn: Connection,
    f: Filters,
    sort: str = "time",
    direction: str = "desc",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of filtered requests and the cursor of the next page (None on the last).

    ``sort`` is time, cost, latency or tokens; ``direction`` desc or asc. Raises FilterError
    for a bad sort, direction, limit (1–1000) or cursor."""
    if sort not in SORT_COLUMNS:
        raise FilterError("sort", f"sort must be one of {', '.join(SORT_COLUMNS)}")
    if direction not in DIRECTIONS:
        raise FilterError("direction", "direction must be desc or asc")
    if not 1 <= limit <= MAX_LIMIT:
        raise FilterError("limit", f"limit must be between 1 and {MAX_LIMIT}")
    after = None if cursor is None else _decode(cursor, sort, direction)
    t = s.llm_requests
    column, row_id, desc = t.c[SORT_COLUMNS[sort]], t.c.id, direction == "desc"
    nullable = sort in ("cost", "tokens")
    where: list[ColumnElement[bool]] = raw_where(open_scope(conn, f), f.start, f.end)

    def fetch(conditions: list[Any], order: list[Any], count: int) -> list[Any]:
        stmt = sa.select(t).where(*where, *conditions).order_by(*order).limit(count)
        return list(conn.execute(stmt))

    def ordered(c: Any) -> Any:
        return c.desc() if desc else c.asc()

    rows: list[Any] = []
    if after is None or after[0] is not None:  # the rows with a value
        conditions: list[Any] = [column.is_not(None)] if nullable else []
        if after is not None:
            conditions.append(_after(column, row_id, after[0], after[1], desc))
        rows = fetch(conditions, [ordered(column), ordered(row_id)], limit + 1)
    if nullable and len(rows) <= limit:  # then the rows without one
        conditions = [column.is_(None)]
        if after is not None and after[0] is None:
            conditions.append(row_id < after[1] if desc else row_id > after[1])
        rows += fetch(conditions, [ordered(row_id)], limit + 1 - len(rows))
    page = [plain_row(r) for r in rows[:limit]]
    if len(rows) <= limit:
        return page, None
    last = rows[limit - 1]
    return page, _encode(sort, direction, last._mapping[column.name], last.id)


def request_detail(conn: Connection, request_id: str | uuid.UUID) -> dict[str, Any] | None:
    """Everything stored about one request, with ``body`` (the ``llm_request_bodies`` row:
    request_body, response_body, truncated) or None when bodies were not logged; None if no
    such request (or ``request_id`` is not a UUID)."""
    rid = request_id if isinstance(request_id, uuid.UUID) else parse_uuid(request_id)
    if rid is None:
        return None
    row = conn.execute(sa.select(s.llm_requests).where(s.llm_requests.c.id == rid)).first()
    if row is None:
        return None
    out = plain_row(row)
    b = s.llm_request_bodies
    body = conn.execute(
        sa.select(b.c.request_body, b.c.response_body, b.c.truncated).where(b.c.request_id == rid)
    ).first()
    out["body"] = None if body is None else {**body._mapping, "truncated": bool(body.truncated)}
    return out
