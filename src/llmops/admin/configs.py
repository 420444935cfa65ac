"""Configs, their variants and the variants' immutable versions: plain functions of a
``Connection`` (run with ``Store.run``).

A version's content is its provider credential, model, parameters and prompt; ``content_hash`` is
computed as ``llmops apply`` computes it, so the two never create duplicate versions of each other.
Creating a version whose content equals the latest one creates nothing and returns the latest
(``created`` is False; the API answers 200 instead of 201), so retries are safe. A variant that a
targeting rule of its config uses cannot be deleted (409): retarget first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin import models as m
from llmops.admin.audit import record_audit
from llmops.admin.entities import Conflict, claim_name, find_live, routing_changed
from llmops.admin.providers import find_provider
from llmops.admin.targeting import list_targeting, variant_in_use
from llmops.errors import InvalidRequest, NotFound
from llmops.ids import uuid7
from llmops.store import schema as s
from llmops.store import utc

C, V, VV = s.configs, s.variants, s.variant_versions
RESERVED_PARAMETERS = ("model", "messages", "stream", "metadata")


def list_configs(conn: Connection) -> m.ConfigList:
    rows = conn.execute(sa.select(C).where(C.c.deleted_at.is_(None)).order_by(C.c.slug))
    return m.ConfigList(data=[_config(r) for r in rows])


def find_config(conn: Connection, ref: str) -> sa.Row[Any]:
    return find_live(conn, C, ref, "config", param="config")


def get_config(conn: Connection, ref: str) -> m.ConfigDetail:
    row = find_config(conn, ref)
    return m.ConfigDetail(
        **_config(row).model_dump(),
        variants=list_variants(conn, str(row.id)).data,
        targeting=list_targeting(conn, str(row.id)).data,
    )


def create_config(conn: Connection, actor: str, body: m.ConfigIn, now: dt.datetime) -> m.Config:
    claim_name(conn, C, body.slug, "config")
    config_id = uuid7()
    conn.execute(
        sa.insert(C).values(
            id=config_id,
            slug=body.slug,
            name=body.name or body.slug,
            description=body.description,
            created_at=now,
        )
    )
    record_audit(conn, actor, "config.create", "config", config_id, {"slug": body.slug}, now=now)
    routing_changed(conn)
    return _config(find_config(conn, str(config_id)))


def update_config(
    conn: Connection, actor: str, ref: str, body: m.ConfigUpdate, now: dt.datetime
) -> m.Config:
    row = find_config(conn, ref)
    wanted = body.model_dump(exclude_unset=True)
    changes = {k: v for k, v in wanted.items() if v is not None and v != row._mapping[k]}
    if not changes:
        return _config(row)
    if "slug" in changes:
        claim_name(conn, C, changes["slug"], "config", owner=row.id)
    conn.execute(sa.update(C).where(C.c.id == row.id).values(**changes))
    details = {k: {"old": row._mapping[k], "new": v} for k, v in changes.items()}
    record_audit(conn, actor, "config.update", "config", row.id, details, now=now)
    routing_changed(conn)
    return _config(find_config(conn, str(row.id)))


def delete_config(conn: Connection, actor: str, ref: str, now: dt.datetime) -> None:
    row = find_config(conn, ref)
    conn.execute(sa.update(C).where(C.c.id == row.id).values(deleted_at=now))
    record_audit(conn, actor, "config.delete", "config", row.id, {"slug": row.slug}, now=now)
    routing_changed(conn)


def find_variant(conn: Connection, config_id: uuid.UUID, ref: str) -> sa.Row[Any]:
    return find_live(
        conn, V, ref, "variant", param="variant", key="name", where=[V.c.config_id == config_id]
    )


def list_variants(conn: Connection, config_ref: str) -> m.VariantList:
    config = find_config(conn, config_ref)
    rows = conn.execute(
        sa.select(V).where(V.c.config_id == config.id, V.c.deleted_at.is_(None)).order_by(V.c.name)
    ).all()
    latest = _latest_versions(conn, [r.id for r in rows])
    return m.VariantList(data=[_variant(r, latest.get(r.id)) for r in rows])


def create_variant(
    conn: Connection, actor: str, config_ref: str, body: m.VariantIn, now: dt.datetime
) -> m.Variant:
    config = find_config(conn, config_ref)
    claim_name(conn, V, body.name, "variant", key="name", where=[V.c.config_id == config.id])
    variant_id = uuid7()
    conn.execute(
        sa.insert(V).values(id=variant_id, config_id=config.id, name=body.name, created_at=now)
    )
    version, _ = _add_version(conn, variant_id, body, now)
    details = {"config": config.slug, "name": body.name, "version": version.version}
    record_audit(conn, actor, "variant.create", "variant", variant_id, details, now=now)
    routing_changed(conn)
    return _variant(find_variant(conn, config.id, str(variant_id)), version)


def delete_variant(
    conn: Connection, actor: str, config_ref: str, variant_ref: str, now: dt.datetime
) -> None:
    config = find_config(conn, config_ref)
    row = find_variant(conn, config.id, variant_ref)
    envs = variant_in_use(conn, config.id, row.id)
    if envs:
        raise Conflict(
            f"variant {row.name!r} is targeted in {', '.join(envs)}: retarget first",
            param="variant",
            code="in_use",
        )
    conn.execute(sa.update(V).where(V.c.id == row.id).values(deleted_at=now))
    details = {"config": config.slug, "name": row.name}
    record_audit(conn, actor, "variant.delete", "variant", row.id, details, now=now)
    routing_changed(conn)


def list_versions(conn: Connection, config_ref: str, variant_ref: str) -> m.VersionList:
    variant = find_variant(conn, find_config(conn, config_ref).id, variant_ref)
    rows = conn.execute(_versions_query().where(VV.c.variant_id == variant.id))
    return m.VersionList(data=[_version(r) for r in rows])


def get_version(conn: Connection, config_ref: str, variant_ref: str, number: int) -> m.Version:
    variant = find_variant(conn, find_config(conn, config_ref).id, variant_ref)
    return _get_version(conn, variant.id, number, "version")


def create_version(
    conn: Connection,
    actor: str,
    config_ref: str,
    variant_ref: str,
    body: m.VersionIn,
    now: dt.datetime,
) -> tuple[m.Version, bool]:
    """The new version and True, or the latest version and False if its content is the same."""
    config = find_config(conn, config_ref)
    variant = find_variant(conn, config.id, variant_ref)
    version, created = _add_version(conn, variant.id, body, now)
    if created:
        details = {"config": config.slug, "variant": variant.name, "version": version.version}
        record_audit(conn, actor, "variant_version.create", "variant", variant.id, details, now=now)
        routing_changed(conn)
    return version, created


def diff_versions(
    conn: Connection, config_ref: str, variant_ref: str, a: int, b: int
) -> m.VersionDiff:
    variant = find_variant(conn, find_config(conn, config_ref).id, variant_ref)
    old = _flatten(_get_version(conn, variant.id, a, "a"))
    new = _flatten(_get_version(conn, variant.id, b, "b"))
    changes = [
        m.FieldChange(field=k, old=old.get(k), new=new.get(k))
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k) or (k in old) != (k in new)
    ]
    return m.VersionDiff(variant_id=variant.id, a=a, b=b, changes=changes)


def content_hash(content: dict[str, Any]) -> str:
    """The hash ``llmops apply`` gives the same content (``credential_id`` as a string)."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _add_version(
    conn: Connection, variant_id: uuid.UUID, body: m.VersionIn, now: dt.datetime
) -> tuple[m.Version, bool]:
    for key in RESERVED_PARAMETERS:
        if key in body.parameters:
            raise InvalidRequest(
                f"parameters.{key}: not a variant parameter", param=f"parameters.{key}"
            )
    try:
        cred = find_provider(conn, body.provider)
    except NotFound:
        raise InvalidRequest(
            f"provider: no provider credential {body.provider!r}",
            param="provider",
            code="provider_not_found",
        ) from None
    content = {
        "credential_id": str(cred.id),
        "model": body.model,
        "parameters": body.parameters,
        "prompt": body.prompt.model_dump(exclude_none=True),
    }
    digest = content_hash(content)
    latest = conn.execute(
        _versions_query()
        .where(VV.c.variant_id == variant_id)
        .order_by(None)
        .order_by(VV.c.version.desc())
    ).first()
    if latest is not None and latest.content_hash == digest:
        return _version(latest), False
    number = 1 if latest is None else latest.version + 1
    conn.execute(
        sa.insert(VV).values(
            id=uuid7(),
            variant_id=variant_id,
            version=number,
            credential_id=cred.id,
            model=body.model,
            parameters=content["parameters"],
            prompt=content["prompt"],
            content_hash=digest,
            created_at=now,
        )
    )
    return _get_version(conn, variant_id, number, "version"), True


def _versions_query() -> sa.Select[Any]:
    p = s.provider_credentials
    return (
        sa.select(VV, p.c.slug.label("provider"))
        .join(p, p.c.id == VV.c.credential_id)
        .order_by(VV.c.version)
    )


def _get_version(conn: Connection, variant_id: uuid.UUID, number: int, param: str) -> m.Version:
    row = conn.execute(
        _versions_query().where(VV.c.variant_id == variant_id, VV.c.version == number)
    ).first()
    if row is None:
        raise NotFound(f"no version {number} of this variant", param=param)
    return _version(row)


def _latest_versions(conn: Connection, variant_ids: list[uuid.UUID]) -> dict[uuid.UUID, m.Version]:
    latest: dict[uuid.UUID, m.Version] = {}
    if variant_ids:
        for r in conn.execute(_versions_query().where(VV.c.variant_id.in_(variant_ids))):
            latest[r.variant_id] = _version(r)  # ordered by version: the last one wins
    return latest


def _flatten(version: m.Version) -> dict[str, Any]:
    out: dict[str, Any] = {"provider": version.provider, "model": version.model}

    def walk(prefix: str, value: dict[str, Any]) -> None:
        for key, item in value.items():
            if isinstance(item, dict) and item:
                walk(f"{prefix}.{key}", item)
            else:
                out[f"{prefix}.{key}"] = item

    walk("parameters", version.parameters)
    walk("prompt", version.prompt)
    return out


def _version(row: sa.Row[Any]) -> m.Version:
    return m.Version(
        variant_id=row.variant_id,
        version=row.version,
        provider=row.provider,
        credential_id=row.credential_id,
        model=row.model,
        parameters=dict(row.parameters or {}),
        prompt=dict(row.prompt or {}),
        content_hash=row.content_hash,
        created_at=utc(row.created_at),
    )


def _variant(row: sa.Row[Any], latest: m.Version | None) -> m.Variant:
    return m.Variant(
        id=row.id,
        config_id=row.config_id,
        name=row.name,
        created_at=utc(row.created_at),
        latest=latest,
    )


def _config(row: sa.Row[Any]) -> m.Config:
    return m.Config(
        id=row.id,
        slug=row.slug,
        name=row.name,
        description=row.description,
        created_at=utc(row.created_at),
    )
