"""Repricing history: recompute stored costs (after a price override) and rebuild the rollups.

Each row is priced at its own ``created_at`` with the same code the writer uses, so repricing a
row that no price changed is a no-op. The update and the rollup rebuild run in one transaction;
on PostgreSQL the rollup tables are locked for its duration so that rows written meanwhile by a
gateway are counted exactly once (their writer waits, then adds them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.observability.pricer import RecordPricer, price_hint
from llmops.observability.records import COLUMNS
from llmops.observability.rollups import write_rollups
from llmops.observability.usage import Usage
from llmops.store import schema as s
from llmops.store import utc

_PARTS = ("input_cost", "cached_cost", "cache_write_cost", "output_cost")
_CHUNK = 1000


@dataclass
class RepriceResult:
    rows: int = 0  # rows with usage in the range
    changed: int = 0
    cost_before: int = 0  # micro-dollars, over the rows in the range
    cost_after: int = 0
    unpriced_before: int = 0
    unpriced_after: int = 0


def credential_hints(conn: Connection) -> dict[str, str | None]:
    t = s.provider_credentials
    return {
        r.slug: price_hint(r.provider_type, r.base_url or "", r.options or {})
        for r in conn.execute(sa.select(t.c.slug, t.c.provider_type, t.c.base_url, t.c.options))
    }


def reprice(
    conn: Connection,
    pricer: RecordPricer,
    since: dt.datetime,
    until: dt.datetime | None = None,
    *,
    dry_run: bool = False,
    indexed_tags: Sequence[str] = (),
) -> RepriceResult:
    t = s.llm_requests
    hints = credential_hints(conn)
    result = RepriceResult()
    cond = [t.c.created_at >= since, t.c.prompt_tokens.is_not(None)]
    if until is not None:
        cond.append(t.c.created_at < until)
    cols = [
        t.c.id,
        t.c.created_at,
        t.c.provider,
        t.c.model,
        t.c.credential_slug,
        t.c.prompt_tokens,
        t.c.completion_tokens,
        t.c.total_tokens,
        t.c.cached_tokens,
        t.c.cache_write_tokens,
        t.c.reasoning_tokens,
        t.c.total_cost,
        *(t.c[p] for p in _PARTS),
        t.c.price_source,
    ]
    last_id = None
    while True:
        q = sa.select(*cols).where(*cond).order_by(t.c.id).limit(_CHUNK)
        if last_id is not None:
            q = q.where(t.c.id > last_id)
        chunk = conn.execute(q).all()
        if not chunk:
            break
        last_id = chunk[-1].id
        updates = []
        for r in chunk:
            result.rows += 1
            usage = Usage(
                r.prompt_tokens or 0,
                r.completion_tokens or 0,
                r.total_tokens or 0,
                r.cached_tokens or 0,
                r.cache_write_tokens or 0,
                r.reasoning_tokens or 0,
            )
            cost = pricer.cost(
                r.provider, r.model, usage, r.created_at, hints.get(r.credential_slug or "")
            )
            new: dict[str, Any] = (
                dict.fromkeys(_PARTS) | {"total_cost": None, "price_source": None}
                if cost is None
                else {p: getattr(cost, p) for p in _PARTS}
                | {"total_cost": cost.total, "price_source": cost.source}
            )
            result.cost_before += r.total_cost or 0
            result.cost_after += new["total_cost"] or 0
            result.unpriced_before += r.total_cost is None
            result.unpriced_after += new["total_cost"] is None
            if any(getattr(r, k) != v for k, v in new.items()):
                result.changed += 1
                updates.append({"_id": r.id, **new})
        if updates and not dry_run:
            conn.execute(
                sa.update(t)
                .where(t.c.id == sa.bindparam("_id"))
                .values({k: sa.bindparam(k) for k in updates[0] if k != "_id"}),
                updates,
            )
    if result.changed and not dry_run:
        rebuild_rollups(conn, since, until, indexed_tags)
    return result


def _day(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


_ROLLUPS = (
    s.llm_rollup_hourly,
    s.llm_rollup_daily,
    s.llm_rollup_daily_tags,
    s.llm_rollup_tag_hourly,
    s.llm_rollup_tag_daily,
)


def rebuild_rollups(
    conn: Connection, since: dt.datetime, until: dt.datetime | None, indexed_tags: Sequence[str]
) -> None:
    """Recompute every rollup (hourly, daily, daily tags, tag totals) of the whole days touching
    [since, until)."""
    start = _day(since)
    end = _day(until) + dt.timedelta(days=1) if until is not None else None
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(f"LOCK TABLE {', '.join(t.name for t in _ROLLUPS)} IN SHARE ROW EXCLUSIVE MODE")
        )
    for table in _ROLLUPS:
        cond = [table.c.bucket >= start] + ([table.c.bucket < end] if end is not None else [])
        conn.execute(sa.delete(table).where(*cond))
    t = s.llm_requests
    cond = [t.c.created_at >= start] + ([t.c.created_at < end] if end is not None else [])
    last_id = None
    while True:
        q = sa.select(*(t.c[c] for c in COLUMNS)).where(*cond).order_by(t.c.id).limit(_CHUNK)
        if last_id is not None:
            q = q.where(t.c.id > last_id)
        rows: list[Mapping[str, Any]] = [dict(r._mapping) for r in conn.execute(q)]
        if not rows:
            break
        last_id = rows[-1]["id"]
        write_rollups(conn, rows, indexed_tags, tag_values=False)


def rebuild_rollups_and_keys(
    conn: Connection, since: dt.datetime, until: dt.datetime | None, indexed_tags: Sequence[str]
) -> dict[str, dt.datetime]:
    """``rebuild_rollups``, then let queries read the tag rollups of ``indexed_tags`` from the
    first rebuilt day on, where the rebuilt days reach the time they counted from before (a tag
    key indexed today and rebuilt from a month ago is read from rollups for the whole month).
    Returns each indexed key's time from which its rollups count every row."""
    rebuild_rollups(conn, since, until, indexed_tags)
    keys = s.llm_tag_rollup_keys
    start = _day(since)
    end = _day(until) + dt.timedelta(days=1) if until is not None else None
    out: dict[str, dt.datetime] = {}
    for key, stored in conn.execute(sa.select(keys.c.tag_key, keys.c.since)).all():
        counted_from = utc(stored)  # SQLite hands back naive UTC
        if start < counted_from and (end is None or counted_from <= end):
            conn.execute(sa.update(keys).where(keys.c.tag_key == key).values(since=start))
            counted_from = start
        out[key] = counted_from
    return out
