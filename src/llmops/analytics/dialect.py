"""The analytics dialect seam: every SQL expression that differs between SQLite and PostgreSQL.

Each builder takes ``conn.dialect.name``; the rest of the package is dialect-free.

- Time buckets: PostgreSQL truncates ``timestamptz`` in the session time zone, so values are first
  shifted to UTC; SQLite stores UTC text and ``strftime`` cuts it. Either way ``as_utc`` turns what
  the driver returns (aware or naive datetime, or text) into an aware UTC datetime.
- Tags: PostgreSQL filters by JSONB containment (``tags @> '{"k": "v"}'``), which the GIN index on
  ``llm_requests.tags`` serves; SQLite reads the value with ``json_extract``, or with ``json_each``
  for a key that a JSON path cannot quote (one containing ``"``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from llmops.store import utc

Unit = Literal["hour", "day"]

_SQLITE_FORMATS = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


def truncate(dialect: str, unit: Unit, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``column`` (a UTC time) cut down to the start of its hour or day, in UTC."""
    if dialect == "postgresql":
        return sa.func.date_trunc(unit, sa.func.timezone("UTC", column))
    return sa.func.strftime(_SQLITE_FORMATS[unit], column)


def as_utc(value: Any) -> dt.datetime:
    """A time as the driver returned it (datetime, naive UTC datetime, or text) → aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a time: {value!r}")
    return utc(value)


def tag_value(dialect: str, tags: ColumnElement[Any], key: str) -> ColumnElement[Any]:
    """The text value of tag ``key`` (NULL when the row lacks the key)."""
    if dialect == "sqlite" and '"' in key:
        pairs = sa.func.json_each(tags).table_valued("key", "value")
        return sa.select(pairs.c.value).where(pairs.c.key == key).scalar_subquery()
    value: ColumnElement[Any] = tags[key].as_string()
    return value


def tag_in(
    dialect: str, tags: ColumnElement[Any], key: str, values: Sequence[str]
) -> ColumnElement[bool]:
    """Rows whose tag ``key`` has one of ``values``."""
    if dialect == "postgresql":
        as_jsonb = sa.type_coerce(tags, JSONB())
        return sa.or_(*(as_jsonb.contains({key: value}) for value in values))
    return tag_value(dialect, tags, key).in_(values)
