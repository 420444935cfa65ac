"""Admin users, dashboard sessions, admin API tokens and the audit log."""

from __future__ import annotations

from sqlalchemy import Connection

from llmops.store import schema


def upgrade(conn: Connection) -> None:
    schema.metadata.create_all(
        conn,
        tables=[
            schema.admin_users,
            schema.admin_sessions,
            schema.admin_api_tokens,
            schema.audit_log,
        ],
    )
