"""Environments, secrets, credentials, configs, variants, targeting and the request log."""

from __future__ import annotations

from sqlalchemy import Connection

from llmops.store import schema


def upgrade(conn: Connection) -> None:
    schema.metadata.create_all(
        conn,
        tables=[
            schema.environments,
            schema.environment_secrets,
            schema.provider_credentials,
            schema.configs,
            schema.variants,
            schema.variant_versions,
            schema.targeting,
            schema.meta,
            schema.llm_requests,
        ],
    )
