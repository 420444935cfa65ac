"""Indexes for the analytics queries: tag rollups by tag, and request lists sorted by cost."""

from __future__ import annotations

from sqlalchemy import Connection

from llmops.store import schema


def upgrade(conn: Connection) -> None:
    # checkfirst: a database created after these were added to schema.py got them from 0001/0002.
    for index in (schema.ix_rollup_daily_tags_tag, schema.ix_llm_requests_cost):
        index.create(conn, checkfirst=True)
