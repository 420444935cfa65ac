"""Reading the audit log: newest first, keyset-paginated, filtered by target.

The cursor is an opaque string naming the last entry of a page (its time and id), so pages stay
stable while new entries arrive and cost the same however deep they go.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin import models as m
from llmops.errors import InvalidRequest
from llmops.store import schema as s
from llmops.store import utc

A = s.audit_log


def list_audit(conn: Connection, query: m.AuditQuery) -> m.AuditPage:
    stmt = sa.select(A).order_by(A.c.created_at.desc(), A.c.id.desc()).limit(query.limit + 1)
    if query.target_type is not None:
        stmt = stmt.where(A.c.target_type == query.target_type)
    if query.target_id is not None:
        stmt = stmt.where(A.c.target_id == query.target_id)
    if query.cursor is not None:
        at, last_id = decode_cursor(query.cursor)
        stmt = stmt.where(
            sa.or_(A.c.created_at < at, sa.and_(A.c.created_at == at, A.c.id < last_id))
        )
    rows = conn.execute(stmt).all()
    entries = [
        m.AuditEntry(
            id=r.id,
            created_at=utc(r.created_at),
            actor=r.actor,
            action=r.action,
            target_type=r.target_type,
            target_id=r.target_id,
            details=dict(r.details or {}),
        )
        for r in rows[: query.limit]
    ]
    more = len(rows) > query.limit
    return m.AuditPage(
        data=entries,
        next_cursor=encode_cursor(entries[-1].created_at, entries[-1].id) if more else None,
    )


def encode_cursor(at: dt.datetime, entry_id: uuid.UUID) -> str:
    raw = f"{at.isoformat()}|{entry_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, _, id_text = raw.partition("|")
        at = dt.datetime.fromisoformat(at_text)
        entry_id = uuid.UUID(id_text)
    except (ValueError, binascii.Error):
        raise InvalidRequest(
            "cursor: not a cursor from this API", param="cursor", code="invalid_cursor"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    try:
        return at.astimezone(dt.UTC), entry_id
    except OverflowError:
        raise InvalidRequest("cursor: out of range", param="cursor") from None
