"""The database schema at head, as SQLAlchemy Core tables.

Migrations (``store/migrations``) bring a database to this state; a test migrates a blank
database on both backends and compares it with these tables. Ids are UUIDv7, money is integer
micro-dollars, times are UTC. Deleting a config, variant or environment is a soft delete
(``deleted_at``) and request rows keep the names they were logged with, so history survives.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
UTC_TIME = sa.DateTime(timezone=True)


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid, primary_key=True)


def _created() -> sa.Column[object]:
    return sa.Column("created_at", UTC_TIME, nullable=False)


def _deleted() -> sa.Column[object]:
    return sa.Column("deleted_at", UTC_TIME)


environments = sa.Table(
    "environments",
    metadata,
    _id(),
    sa.Column("slug", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    _created(),
    _deleted(),
)

environment_secrets = sa.Table(
    "environment_secrets",
    metadata,
    _id(),
    sa.Column("environment_id", sa.Uuid, sa.ForeignKey("environments.id"), nullable=False),
    # The public part of the secret, shown in lists; the rest is only ever stored as a hash.
    sa.Column("prefix", sa.String(32), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    _created(),
    sa.Column("expires_at", UTC_TIME),
    sa.Column("revoked_at", UTC_TIME),
)

provider_credentials = sa.Table(
    "provider_credentials",
    metadata,
    _id(),
    sa.Column("slug", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("provider_type", sa.String(32), nullable=False),
    sa.Column("base_url", sa.String(500)),
    sa.Column("api_key_encrypted", sa.Text),
    sa.Column("api_key_env", sa.String(200)),
    sa.Column("options", JSON, nullable=False),
    _created(),
    sa.Column("disabled_at", UTC_TIME),
    _deleted(),
)

configs = sa.Table(
    "configs",
    metadata,
    _id(),
    sa.Column("slug", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    _created(),
    _deleted(),
)

variants = sa.Table(
    "variants",
    metadata,
    _id(),
    sa.Column("config_id", sa.Uuid, sa.ForeignKey("configs.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    _created(),
    _deleted(),
    sa.UniqueConstraint("config_id", "name"),
)

variant_versions = sa.Table(
    "variant_versions",
    metadata,
    _id(),
    sa.Column("variant_id", sa.Uuid, sa.ForeignKey("variants.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("credential_id", sa.Uuid, sa.ForeignKey("provider_credentials.id"), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("parameters", JSON, nullable=False),
    sa.Column("prompt", JSON, nullable=False),
    # sha256 of the canonical content: re-applying the same variant creates no new version.
    sa.Column("content_hash", sa.String(64), nullable=False),
    _created(),
    sa.UniqueConstraint("variant_id", "version"),
)

targeting = sa.Table(
    "targeting",
    metadata,
    sa.Column("config_id", sa.Uuid, sa.ForeignKey("configs.id"), primary_key=True),
    sa.Column("environment_id", sa.Uuid, sa.ForeignKey("environments.id"), primary_key=True),
    # The tag whose value keeps one caller on one arm of an A/B split (e.g. userId); NULL: random.
    sa.Column("sticky_key", sa.String(64)),
    # [{"variant_id": "…", "version": int | null (null follows the latest), "weight": int}]
    sa.Column("arms", JSON, nullable=False),
    sa.Column("updated_at", UTC_TIME, nullable=False),
)

# One row per key; "routing_version" is bumped on every routing change so that other processes
# notice it on their next snapshot check.
meta = sa.Table(
    "llmops_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

llm_requests = sa.Table(
    "llm_requests",
    metadata,
    _id(),
    _created(),
    sa.Column("environment_id", sa.Uuid),
    sa.Column("environment_name", sa.String(64)),
    sa.Column("config_id", sa.Uuid),
    sa.Column("config_slug", sa.String(64)),
    sa.Column("variant_id", sa.Uuid),
    sa.Column("variant_name", sa.String(200)),
    sa.Column("variant_version", sa.Integer),
    sa.Column("credential_slug", sa.String(64)),
    sa.Column("provider", sa.String(32)),
    sa.Column("model", sa.String(200)),
    sa.Column("requested_model", sa.String(200)),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("total_tokens", sa.Integer),
    sa.Column("cached_tokens", sa.Integer),
    sa.Column("cache_write_tokens", sa.Integer),
    sa.Column("reasoning_tokens", sa.Integer),
    sa.Column("input_cost", sa.BigInteger),
    sa.Column("cached_cost", sa.BigInteger),
    sa.Column("cache_write_cost", sa.BigInteger),
    sa.Column("output_cost", sa.BigInteger),
    sa.Column("total_cost", sa.BigInteger),
    sa.Column("price_source", sa.String(200)),
    sa.Column("usage_source", sa.String(16), nullable=False),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("ttft_ms", sa.Integer),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("error_type", sa.String(64)),
    sa.Column("is_streaming", sa.Boolean, nullable=False),
    sa.Column("tags", JSON, nullable=False),
    sa.Index("ix_llm_requests_created_at", "created_at"),
    sa.Index("ix_llm_requests_config_created", "config_id", "created_at"),
    sa.Index(
        "ix_llm_requests_tags",
        "tags",
        postgresql_using="gin",
        postgresql_ops={"tags": "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql"),
)
