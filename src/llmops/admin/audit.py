"""The audit log: who changed what, written in the same transaction as the change.

``actor`` is a username (dashboard session), ``token:<prefix>`` (admin API token) or ``cli``;
``AdminIdentity.actor`` gives the first two. ``details`` is a JSON object; never put a secret in it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.ids import uuid7
from llmops.store import schema as s

CLI_ACTOR = "cli"


def record_audit(
    conn: Connection,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | uuid.UUID | None,
    details: Mapping[str, Any] | None = None,
    *,
    now: dt.datetime | None = None,
) -> uuid.UUID:
    """Append one audit entry (e.g. ``"admin_token.create"`` on ``"admin_api_token"``)."""
    entry_id = uuid7()
    conn.execute(
        sa.insert(s.audit_log).values(
            id=entry_id,
            created_at=now or dt.datetime.now(dt.UTC),
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=dict(details or {}),
        )
    )
    return entry_id
