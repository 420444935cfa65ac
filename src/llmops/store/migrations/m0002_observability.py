"""Request bodies, price overrides, hourly and daily-tag rollups, the tag-values dictionary."""

from __future__ import annotations

from sqlalchemy import Connection

from llmops.store import schema


def upgrade(conn: Connection) -> None:
    schema.metadata.create_all(
        conn,
        tables=[
            schema.llm_request_bodies,
            schema.price_overrides,
            schema.llm_rollup_hourly,
            schema.llm_rollup_daily_tags,
            schema.llm_tag_values,
        ],
    )
