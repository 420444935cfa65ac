"""Rules every managed entity follows: lookup by id or slug, unique slugs, routing-change signals.

- A path names an entity by its id (UUID) or its slug (a variant: by its name within its config).
  Soft-deleted entities are invisible: 404.
- Slugs are unique among live entities. Creating or renaming to a slug that a *deleted* entity held
  renames that one to ``deleted-<id hex>`` (its request history keeps the names it was logged with),
  so a deleted slug can be reused; a live holder is a 409.
- A change to routing data calls ``routing_changed`` in its transaction: it bumps the routing
  version (every gateway process polls it on its TTL) and, on PostgreSQL, sends
  ``NOTIFY llmops_routing``, delivered at commit, so other processes reload at once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection

from llmops.admin.apply import bump_routing_version
from llmops.errors import InvalidRequest, NotFound
from llmops.gateway.snapshot import ROUTING_CHANNEL
from llmops.store import utc


class Conflict(InvalidRequest):
    """409: the request is valid but clashes with the current state."""

    status = 409
    code = "conflict"


def as_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def find_live(
    conn: Connection,
    table: sa.Table,
    ref: str,
    what: str,
    *,
    param: str,
    key: str = "slug",
    where: Iterable[ColumnElement[bool]] = (),
) -> sa.Row[Any]:
    """The live row of ``table`` that ``ref`` names (by id, else by ``key``), or NotFound."""
    query = sa.select(table).where(table.c.deleted_at.is_(None), *where)
    ref_id = as_uuid(ref)
    if ref_id is not None:
        row = conn.execute(query.where(table.c.id == ref_id)).first()
        if row is not None:
            return row
    row = conn.execute(query.where(table.c[key] == ref)).first()
    if row is None:
        raise NotFound(f"no {what} {ref!r}", param=param, code=f"{param}_not_found")
    return row


def claim_name(
    conn: Connection,
    table: sa.Table,
    value: str,
    what: str,
    *,
    key: str = "slug",
    where: Iterable[ColumnElement[bool]] = (),
    owner: uuid.UUID | None = None,
) -> None:
    """Make ``value`` free for ``owner`` (or a new row): Conflict if a live row holds it, and a
    deleted holder is renamed out of the way."""
    row = conn.execute(
        sa.select(table.c.id, table.c.deleted_at).where(table.c[key] == value, *where)
    ).first()
    if row is None or row.id == owner:
        return
    if row.deleted_at is None:
        raise Conflict(f"{what} {value!r} already exists", param=key, code=f"{key}_taken")
    conn.execute(
        sa.update(table).where(table.c.id == row.id).values({key: f"deleted-{row.id.hex}"})
    )


def routing_changed(conn: Connection) -> None:
    """Signal, inside the change's transaction, that routing data changed."""
    bump_routing_version(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_notify(ROUTING_CHANNEL, "")))


def utc_or_none(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else utc(value)
