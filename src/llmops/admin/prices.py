"""Price overrides (the data ``llmops prices`` manages): plain functions of a ``Connection``.

Rates are USD per million tokens, exact decimals. A change bumps the routing version, so every
gateway process reloads its price book; stored request costs change only when repriced
(``llmops prices reprice``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin import models as m
from llmops.admin.audit import record_audit
from llmops.admin.entities import routing_changed
from llmops.errors import NotFound
from llmops.ids import uuid7
from llmops.store import schema as s
from llmops.store import utc

PO = s.price_overrides
RATES = ("input", "output", "cache_read", "cache_write", "reasoning")


def list_overrides(conn: Connection) -> m.PriceOverrideList:
    rows = conn.execute(sa.select(PO).order_by(PO.c.effective_from, PO.c.created_at))
    return m.PriceOverrideList(data=[_override(r) for r in rows])


def create_override(
    conn: Connection, actor: str, body: m.PriceOverrideIn, now: dt.datetime
) -> m.PriceOverride:
    override_id = uuid7()
    values = {r: getattr(body, r) for r in RATES}
    conn.execute(
        sa.insert(PO).values(
            id=override_id,
            provider=body.provider,
            model_pattern=body.model_pattern,
            effective_from=body.effective_from or now,
            note=body.note,
            created_at=now,
            **values,
        )
    )
    details = {
        "provider": body.provider,
        "model_pattern": body.model_pattern,
        **{k: None if v is None else str(v) for k, v in values.items()},
    }
    record_audit(
        conn, actor, "price_override.create", "price_override", override_id, details, now=now
    )
    routing_changed(conn)
    return _override(_find(conn, override_id))


def delete_override(conn: Connection, actor: str, ref: str, now: dt.datetime) -> None:
    try:
        override_id = uuid.UUID(ref)
    except ValueError:
        raise NotFound(f"no price override {ref!r}", param="override") from None
    row = _find(conn, override_id)
    conn.execute(sa.delete(PO).where(PO.c.id == override_id))
    details = {"provider": row.provider, "model_pattern": row.model_pattern}
    record_audit(
        conn, actor, "price_override.delete", "price_override", override_id, details, now=now
    )
    routing_changed(conn)


def _find(conn: Connection, override_id: uuid.UUID) -> sa.Row[Any]:
    row = conn.execute(sa.select(PO).where(PO.c.id == override_id)).first()
    if row is None:
        raise NotFound(f"no price override {override_id}", param="override")
    return row


def _override(row: sa.Row[Any]) -> m.PriceOverride:
    return m.PriceOverride(
        id=row.id,
        provider=row.provider,
        model_pattern=row.model_pattern,
        input=row.input,
        output=row.output,
        cache_read=row.cache_read,
        cache_write=row.cache_write,
        reasoning=row.reasoning,
        effective_from=utc(row.effective_from),
        note=row.note,
        created_at=utc(row.created_at),
    )
