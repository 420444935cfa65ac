"""`llmops apply`: bring the database in line with a document, idempotently.

Entities are matched by slug (variants by name within their config). Re-applying the same document
changes nothing; a changed variant gets a new immutable version; entities absent from the document
are left alone (apply never deletes). A new environment gets a secret, returned once in the result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin.document import ConfigSpec, Document, DocumentError, ProviderSpec
from llmops.ids import uuid7
from llmops.keys import Keyring, new_secret
from llmops.store import schema as s


@dataclass
class ApplyResult:
    changes: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # environment slug → new token


def apply_document(conn: Connection, doc: Document, keyring: Keyring) -> ApplyResult:
    """Apply ``doc`` inside the caller's transaction."""
    now = dt.datetime.now(dt.UTC)
    result = ApplyResult()
    envs = {e.slug: _apply_environment(conn, e.slug, e.name, now, result) for e in doc.environments}
    creds = {p.slug: _apply_provider(conn, p, keyring, now, result) for p in doc.providers}
    for c in doc.configs:
        _apply_config(conn, c, envs, creds, now, result)
    if result.changes:
        bump_routing_version(conn)
    return result


def bump_routing_version(conn: Connection) -> None:
    """Tell every gateway process that routing data changed (they poll this on their TTL)."""
    updated = conn.execute(
        sa.update(s.meta).where(s.meta.c.key == "routing_version").values(value=s.meta.c.value + 1)
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(s.meta).values(key="routing_version", value=1))


def create_secret(conn: Connection, environment_id: uuid.UUID, now: dt.datetime) -> str:
    secret = new_secret()
    conn.execute(
        sa.insert(s.environment_secrets).values(
            id=uuid7(),
            environment_id=environment_id,
            prefix=secret.prefix,
            secret_hash=secret.digest,
            created_at=now,
        )
    )
    return secret.token


def _apply_environment(
    conn: Connection, slug: str, name: str, now: dt.datetime, result: ApplyResult
) -> uuid.UUID:
    t = s.environments
    row = conn.execute(sa.select(t).where(t.c.slug == slug)).first()
    if row is None:
        env_id = uuid7()
        conn.execute(sa.insert(t).values(id=env_id, slug=slug, name=name, created_at=now))
        result.secrets[slug] = create_secret(conn, env_id, now)
        result.changes.append(f"created environment {slug}")
        return env_id
    if row.name != name or row.deleted_at is not None:
        conn.execute(sa.update(t).where(t.c.id == row.id).values(name=name, deleted_at=None))
        result.changes.append(f"updated environment {slug}")
    existing: uuid.UUID = row.id
    return existing


def _apply_provider(
    conn: Connection, p: ProviderSpec, keyring: Keyring, now: dt.datetime, result: ApplyResult
) -> uuid.UUID:
    t = s.provider_credentials
    row = conn.execute(sa.select(t).where(t.c.slug == p.slug)).first()
    wanted: dict[str, Any] = {
        "name": p.name,
        "provider_type": p.type,
        "base_url": p.base_url,
        "api_key_env": p.api_key_env,
        "options": p.options,
    }
    if row is None:
        cred_id = uuid7()
        enc = keyring.encrypt(p.api_key) if p.api_key else None
        conn.execute(
            sa.insert(t).values(
                id=cred_id, slug=p.slug, created_at=now, api_key_encrypted=enc, **wanted
            )
        )
        result.changes.append(f"created provider {p.slug}")
        return cred_id
    current_key = keyring.decrypt(row.api_key_encrypted) if row.api_key_encrypted else None
    changed = {k: v for k, v in wanted.items() if getattr(row, k) != v}
    if current_key != p.api_key:
        changed["api_key_encrypted"] = keyring.encrypt(p.api_key) if p.api_key else None
    if row.deleted_at is not None:
        changed["deleted_at"] = None
    if changed:
        conn.execute(sa.update(t).where(t.c.id == row.id).values(**changed))
        result.changes.append(f"updated provider {p.slug}")
    existing: uuid.UUID = row.id
    return existing


def _apply_config(
    conn: Connection,
    c: ConfigSpec,
    envs: Mapping[str, uuid.UUID],
    creds: Mapping[str, uuid.UUID],
    now: dt.datetime,
    result: ApplyResult,
) -> None:
    t = s.configs
    row = conn.execute(sa.select(t).where(t.c.slug == c.slug)).first()
    if row is None:
        config_id = uuid7()
        conn.execute(
            sa.insert(t).values(
                id=config_id, slug=c.slug, name=c.name, description=c.description, created_at=now
            )
        )
        result.changes.append(f"created config {c.slug}")
    else:
        config_id = row.id
        if (row.name, row.description, row.deleted_at) != (c.name, c.description, None):
            conn.execute(
                sa.update(t)
                .where(t.c.id == config_id)
                .values(name=c.name, description=c.description, deleted_at=None)
            )
            result.changes.append(f"updated config {c.slug}")
    variant_ids: dict[str, uuid.UUID] = {}
    for i, v in enumerate(c.variants):
        cred_id = creds.get(v.provider) or _credential_id(conn, v.provider)
        if cred_id is None:
            raise DocumentError(
                f"configs[{c.slug}].variants[{i}].provider: unknown provider {v.provider!r}"
            )
        content = {
            "credential_id": str(cred_id),
            "model": v.model,
            "parameters": v.parameters,
            "prompt": v.prompt,
        }
        variant_ids[v.name] = _apply_variant(conn, config_id, c.slug, v.name, content, now, result)
    for tg in c.targeting:
        env_id = envs.get(tg.environment) or _environment_id(conn, tg.environment)
        if env_id is None:
            raise DocumentError(
                f"configs[{c.slug}].targeting.{tg.environment}: unknown environment"
            )
        arms = [
            {"variant_id": str(variant_ids[a.variant]), "version": a.version, "weight": a.weight}
            for a in tg.arms
        ]
        for a in tg.arms:
            if a.version is not None:
                _check_version(conn, variant_ids[a.variant], a.version, c.slug, tg.environment)
        _apply_targeting(
            conn, config_id, env_id, tg.sticky_key, arms, now, c.slug, tg.environment, result
        )


def _apply_variant(
    conn: Connection,
    config_id: uuid.UUID,
    config_slug: str,
    name: str,
    content: dict[str, Any],
    now: dt.datetime,
    result: ApplyResult,
) -> uuid.UUID:
    v, vv = s.variants, s.variant_versions
    row = conn.execute(sa.select(v).where(v.c.config_id == config_id, v.c.name == name)).first()
    if row is None:
        variant_id = uuid7()
        conn.execute(
            sa.insert(v).values(id=variant_id, config_id=config_id, name=name, created_at=now)
        )
    else:
        variant_id = row.id
        if row.deleted_at is not None:
            conn.execute(sa.update(v).where(v.c.id == variant_id).values(deleted_at=None))
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    latest = conn.execute(
        sa.select(vv.c.version, vv.c.content_hash)
        .where(vv.c.variant_id == variant_id)
        .order_by(vv.c.version.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.content_hash == digest:
        return variant_id
    version = 1 if latest is None else latest.version + 1
    conn.execute(
        sa.insert(vv).values(
            id=uuid7(),
            variant_id=variant_id,
            version=version,
            credential_id=uuid.UUID(content["credential_id"]),
            model=content["model"],
            parameters=content["parameters"],
            prompt=content["prompt"],
            content_hash=digest,
            created_at=now,
        )
    )
    result.changes.append(f"created variant {config_slug}/{name} version {version}")
    return variant_id


def _apply_targeting(
    conn: Connection,
    config_id: uuid.UUID,
    env_id: uuid.UUID,
    sticky_key: str | None,
    arms: list[dict[str, Any]],
    now: dt.datetime,
    config_slug: str,
    env_slug: str,
    result: ApplyResult,
) -> None:
    t = s.targeting
    key = (t.c.config_id == config_id) & (t.c.environment_id == env_id)
    row = conn.execute(sa.select(t).where(key)).first()
    if row is None:
        conn.execute(
            sa.insert(t).values(
                config_id=config_id,
                environment_id=env_id,
                sticky_key=sticky_key,
                arms=arms,
                updated_at=now,
            )
        )
    elif row.sticky_key != sticky_key or row.arms != arms:
        conn.execute(
            sa.update(t).where(key).values(sticky_key=sticky_key, arms=arms, updated_at=now)
        )
    else:
        return
    result.changes.append(f"set targeting {config_slug} in {env_slug}")


def _credential_id(conn: Connection, slug: str) -> uuid.UUID | None:
    t = s.provider_credentials
    value: uuid.UUID | None = conn.execute(
        sa.select(t.c.id).where(t.c.slug == slug, t.c.deleted_at.is_(None))
    ).scalar()
    return value


def _environment_id(conn: Connection, slug: str) -> uuid.UUID | None:
    t = s.environments
    value: uuid.UUID | None = conn.execute(
        sa.select(t.c.id).where(t.c.slug == slug, t.c.deleted_at.is_(None))
    ).scalar()
    return value


def _check_version(
    conn: Connection, variant_id: uuid.UUID, version: int, config: str, env: str
) -> None:
    vv = s.variant_versions
    found = conn.execute(
        sa.select(vv.c.id).where(vv.c.variant_id == variant_id, vv.c.version == version)
    ).first()
    if found is None:
        raise DocumentError(f"configs[{config}].targeting.{env}: version {version} does not exist")
