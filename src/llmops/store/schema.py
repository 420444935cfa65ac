"""The database schema at head, as SQLAlchemy Core tables.

Migrations (``store/migrations``) bring a database to this state; a test migrates a blank
database on both backends and compares it with these tables. Ids are UUIDv7, money is integer
micro-dollars, times are UTC. Deleting a config, variant or environment is a soft delete
(``deleted_at``) and request rows keep the names they were logged with, so history survives.
"""

from __future__ import annotations

from typing import Any

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

# Optional request/response bodies, off by default (LLMOPS_LOG_BODIES), capped in size.
llm_request_bodies = sa.Table(
    "llm_request_bodies",
    metadata,
    sa.Column("request_id", sa.Uuid, primary_key=True),
    _created(),
    sa.Column("request_body", sa.Text),
    sa.Column("response_body", sa.Text),
    sa.Column("truncated", sa.Boolean, nullable=False),
)

# User price overrides: USD per million tokens (exact decimals), effective from a date.
price_overrides = sa.Table(
    "price_overrides",
    metadata,
    _id(),
    sa.Column("provider", sa.String(64)),  # NULL: any provider
    sa.Column("model_pattern", sa.String(200), nullable=False),  # fnmatch glob
    sa.Column("input", sa.Numeric(18, 6), nullable=False),
    sa.Column("output", sa.Numeric(18, 6), nullable=False),
    sa.Column("cache_read", sa.Numeric(18, 6)),
    sa.Column("cache_write", sa.Numeric(18, 6)),
    sa.Column("reasoning", sa.Numeric(18, 6)),
    sa.Column("effective_from", UTC_TIME, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    _created(),
)

# Latency histogram: bucket 0 counts < 1 ms, bucket k (1–39) counts [2^((k-1)/2), 2^(k/2)) ms,
# bucket 40 counts ≥ 2^19.5 ms. Sums of these columns estimate percentiles over any rollup range.
LATENCY_BUCKETS = 41
LATENCY_COLUMNS = tuple(f"lat_h{k:02d}" for k in range(LATENCY_BUCKETS))
# Lower edge of buckets 1..40; a latency's bucket is the number of edges at or below it.
LATENCY_EDGES = tuple(2 ** (k / 2) for k in range(LATENCY_BUCKETS - 1))


# The additive counters of both rollup tables, in column order.
ROLLUP_COUNTERS = (
    "requests",
    "errors",
    "unpriced",  # rows with usage but no price
    "usage_missing",
    "streams",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "input_cost",
    "cached_cost",
    "cache_write_cost",
    "output_cost",
    "total_cost",
    "latency_sum",
    "ttft_sum",
    "ttft_count",
)


def _metrics(histogram: bool) -> list[sa.Column[Any]]:
    counts = ROLLUP_COUNTERS
    cols = [sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in counts]
    cols += [sa.Column("latency_min", sa.Integer), sa.Column("latency_max", sa.Integer)]
    if histogram:
        cols += [
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in LATENCY_COLUMNS
        ]
    return cols


def _key(name: str, length: int = 200) -> sa.Column[object]:
    # Rollup keys are never NULL ('' stands for "none") so that ON CONFLICT matches them.
    return sa.Column(name, sa.String(length), primary_key=True, server_default="")


def _rollup_table(name: str) -> sa.Table:
    # The hourly and daily rollups share one column set: only the bucket width differs.
    return sa.Table(
        name,
        metadata,
        sa.Column("bucket", UTC_TIME, primary_key=True),
        _key("environment_id", 36),
        _key("config_id", 36),
        _key("variant_id", 36),
        sa.Column("variant_version", sa.Integer, primary_key=True, server_default="0"),
        _key("provider", 32),
        _key("model"),
        _key("endpoint", 32),
        _key("status_class", 8),  # "2xx", "4xx", "5xx", "499", …
        sa.Column("environment_name", sa.String(64)),
        sa.Column("config_slug", sa.String(64)),
        sa.Column("variant_name", sa.String(200)),
        *_metrics(histogram=True),
    )


# Hourly aggregates written by the batch writer in the same transaction as the rows.
llm_rollup_hourly = _rollup_table("llm_rollup_hourly")

# The same aggregates per UTC day (bucket = midnight), so that long ranges read few rows.
llm_rollup_daily = _rollup_table("llm_rollup_daily")

# Daily aggregates per value of each indexed tag key (LLMOPS_INDEXED_TAGS).
llm_rollup_daily_tags = sa.Table(
    "llm_rollup_daily_tags",
    metadata,
    sa.Column("bucket", UTC_TIME, primary_key=True),
    _key("tag_key", 64),
    _key("tag_value", 512),
    _key("environment_id", 36),
    _key("config_id", 36),
    _key("variant_id", 36),
    _key("provider", 32),
    _key("model"),
    _key("status_class", 8),
    *_metrics(histogram=False),
)


def _tag_totals_table(name: str) -> sa.Table:
    # Per bucket and value of an indexed tag key, nothing else in the key: a breakdown by tenant
    # or a tenant's summary reads one row per value and bucket. Rows without the key are counted
    # too (tagged false, tag_value ''), so a breakdown's "(none)" row needs no subtraction.
    return sa.Table(
        name,
        metadata,
        sa.Column("bucket", UTC_TIME, primary_key=True),
        _key("tag_key", 64),
        sa.Column("tagged", sa.Boolean, primary_key=True),
        _key("tag_value", 512),
        *_metrics(histogram=True),
    )


# Hourly and daily totals per indexed tag key and value (migration 0006).
llm_rollup_tag_hourly = _tag_totals_table("llm_rollup_tag_hourly")
llm_rollup_tag_daily = _tag_totals_table("llm_rollup_tag_daily")

# The tag keys that have tag rollups (LLMOPS_INDEXED_TAGS) and since when: every request created at
# or after ``since`` is counted in them, so queries read them only from then on (raw rows before).
llm_tag_rollup_keys = sa.Table(
    "llm_tag_rollup_keys",
    metadata,
    sa.Column("tag_key", sa.String(64), primary_key=True),
    sa.Column("since", UTC_TIME, nullable=False),
)

# Every tag key/value seen, for filter dropdowns.
llm_tag_values = sa.Table(
    "llm_tag_values",
    metadata,
    sa.Column("tag_key", sa.String(64), primary_key=True),
    sa.Column("tag_value", sa.String(512), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_seen", UTC_TIME, nullable=False),
)

# Dashboard and admin-API users. Passwords are argon2id hashes; a user is disabled, never deleted,
# so that the audit log keeps pointing at someone.
admin_users = sa.Table(
    "admin_users",
    metadata,
    _id(),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    _created(),
    sa.Column("disabled_at", UTC_TIME),
)

# Dashboard sessions. The id is the SHA-256 of the cookie value: a leaked table opens no session.
admin_sessions = sa.Table(
    "admin_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "user_id", sa.Uuid, sa.ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False
    ),
    _created(),
    sa.Column("expires_at", UTC_TIME, nullable=False),  # absolute limit; idle limit is on top
    sa.Column("last_seen_at", UTC_TIME, nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Index("ix_admin_sessions_expires_at", "expires_at"),
)

# Admin API tokens, ``llmops_admin_<8 hex>_<random>``: the prefix is public, the rest only hashed.
admin_api_tokens = sa.Table(
    "admin_api_tokens",
    metadata,
    _id(),
    sa.Column(
        "user_id", sa.Uuid, sa.ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    _created(),
    sa.Column("last_used_at", UTC_TIME),
    sa.Column("revoked_at", UTC_TIME),
)

# Who changed what. actor: a username, "token:<prefix>" or "cli".
audit_log = sa.Table(
    "audit_log",
    metadata,
    _id(),
    _created(),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target_type", sa.String(64), nullable=False),
    sa.Column("target_id", sa.String(200)),
    sa.Column("details", JSON, nullable=False),
    sa.Index("ix_audit_log_created_at", "created_at"),
)

# Analytics indexes (migration 0004): a tenant's daily rollups without reading every tag's rows,
# and request lists sorted by cost without sorting the whole range.
ix_rollup_daily_tags_tag = sa.Index(
    "ix_rollup_daily_tags_tag",
    llm_rollup_daily_tags.c.tag_key,
    llm_rollup_daily_tags.c.tag_value,
    llm_rollup_daily_tags.c.bucket,
)
ix_llm_requests_cost = sa.Index(
    "ix_llm_requests_cost", llm_requests.c.total_cost, llm_requests.c.id
)
