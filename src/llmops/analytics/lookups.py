"""Lookups: names ↔ ids for environments, configs and variants, and the tag dictionary.

Request rows keep the environment slug, config slug and variant name they were logged with, and
rollups keep the latest of those per hour and key. A name given as a filter therefore resolves to
*ids*, once per query and the same way whichever table answers it: the ids of live or deleted
entities with that slug or name, plus the ids logged under that name in the queried range (a
renamed environment is still found by its old name). Filtering by ids keeps raw rows and rollups in
exact agreement, where matching names per row would not after a rename within an hour.

Display labels go the other way: the entity's current slug (``config/variant`` for variants), else
the latest name logged in the range, else the id itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.analytics.dialect import as_utc
from llmops.analytics.filters import FilterError
from llmops.store import schema as s

Entity = Literal["environment", "config", "variant"]

_HOURLY_NAME = {
    "environment": "environment_name",
    "config": "config_slug",
    "variant": "variant_name",
}


def parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def resolve_ids(
    conn: Connection, entity: Entity, values: Collection[str], start: dt.datetime, end: dt.datetime
) -> frozenset[uuid.UUID]:
    """Every id that ``values`` (ids, slugs or names) can stand for in ``[start, end)``."""
    ids = {u for u in map(parse_uuid, values) if u is not None}
    names = list(values)
    if entity == "environment":
        t = s.environments
        found = sa.select(t.c.id).where(sa.or_(t.c.slug.in_(names), t.c.name.in_(names)))
    elif entity == "config":
        t = s.configs
        found = sa.select(t.c.id).where(sa.or_(t.c.slug.in_(names), t.c.name.in_(names)))
    else:
        found = sa.select(s.variants.c.id).where(s.variants.c.name.in_(names))
    ids.update(conn.execute(found).scalars())
    h = s.llm_rollup_hourly
    logged = (
        sa.select(h.c[f"{entity}_id"])
        .where(h.c[_HOURLY_NAME[entity]].in_(names), h.c.bucket >= _hour(start), h.c.bucket < end)
        .distinct()
    )
    ids.update(u for u in map(parse_uuid, conn.execute(logged).scalars()) if u is not None)
    return frozenset(ids)


def labels(
    conn: Connection, entity: Entity, ids: Iterable[str], start: dt.datetime, end: dt.datetime
) -> dict[str, str]:
    """Display labels for ids (as text); see the module docstring for the order of sources."""
    wanted = {u: str(u) for u in map(parse_uuid, ids) if u is not None}
    out: dict[str, str] = {}
    if not wanted:
        return out
    rows: Iterable[Any]
    if entity == "environment":
        t = s.environments
        rows = conn.execute(sa.select(t.c.id, t.c.slug).where(t.c.id.in_(list(wanted))))
    elif entity == "config":
        t = s.configs
        rows = conn.execute(sa.select(t.c.id, t.c.slug).where(t.c.id.in_(list(wanted))))
    else:
        v, c = s.variants, s.configs
        rows = conn.execute(
            sa.select(v.c.id, c.c.slug + "/" + v.c.name)
            .select_from(v.join(c, v.c.config_id == c.c.id))
            .where(v.c.id.in_(list(wanted)))
        )
    for entity_id, label in rows:
        out[wanted[entity_id]] = label
    missing = [text for text in wanted.values() if text not in out]
    if missing:
        out.update(_logged_labels(conn, entity, missing, start, end))
    for text in wanted.values():
        out.setdefault(text, text)
    return out


def _logged_labels(
    conn: Connection, entity: Entity, ids: list[str], start: dt.datetime, end: dt.datetime
) -> dict[str, str]:
    h = s.llm_rollup_hourly
    id_col, name_col = h.c[f"{entity}_id"], h.c[_HOURLY_NAME[entity]]
    rows = conn.execute(
        sa.select(id_col, h.c.config_slug, name_col)
        .where(id_col.in_(ids), name_col.is_not(None), h.c.bucket >= _hour(start), h.c.bucket < end)
        .order_by(h.c.bucket)
    )
    out: dict[str, str] = {}
    for entity_id, config_slug, name in rows:  # oldest first: the latest name wins
        out[entity_id] = f"{config_slug}/{name}" if entity == "variant" and config_slug else name
    return out


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise FilterError("limit", "limit must be between 1 and 1000")


def tag_keys(conn: Connection) -> list[str]:
    """Every tag key seen, the most used first."""
    t = s.llm_tag_values
    used = sa.func.sum(t.c.requests)
    stmt = sa.select(t.c.tag_key).group_by(t.c.tag_key).order_by(used.desc(), t.c.tag_key)
    return list(conn.execute(stmt).scalars())


def tag_values(
    conn: Connection, key: str, prefix: str = "", limit: int = 50
) -> list[dict[str, Any]]:
    """Values seen for tag ``key``, the most used first, optionally those starting with
    ``prefix`` (case-insensitive for ASCII): ``[{"value", "requests", "last_seen"}]``."""
    _check_limit(limit)
    t = s.llm_tag_values
    stmt = sa.select(t.c.tag_value, t.c.requests, t.c.last_seen).where(t.c.tag_key == key)
    if prefix:
        stmt = stmt.where(sa.func.lower(t.c.tag_value).startswith(prefix.lower(), autoescape=True))
    stmt = stmt.order_by(t.c.requests.desc(), t.c.tag_value).limit(limit)
    return [
        {"value": value, "requests": int(requests), "last_seen": as_utc(last).isoformat()}
        for value, requests, last in conn.execute(stmt)
    ]
