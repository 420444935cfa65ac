"""Targeting: which variant versions serve a config in an environment, with what weights.

Plain functions of a ``Connection`` (run with ``Store.run``). Arms are stored exactly as
``llmops apply`` stores them (``[{"variant_id", "version", "weight"}]``; ``version`` null follows
the latest version). ``put_targeting`` checks that every arm's variant belongs to the config and is
live, that a pinned version exists, and that the weights add up to more than 0.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin import models as m
from llmops.admin.audit import record_audit
from llmops.admin.entities import as_uuid, find_live, routing_changed
from llmops.errors import InvalidRequest, NotFound
from llmops.store import schema as s
from llmops.store import utc

T, C, E, V, VV = s.targeting, s.configs, s.environments, s.variants, s.variant_versions


def list_targeting(conn: Connection, config_ref: str) -> m.TargetingList:
    config = _config(conn, config_ref)
    rows = conn.execute(
        sa.select(T, E.c.slug.label("env_slug"))
        .join(E, E.c.id == T.c.environment_id)
        .where(T.c.config_id == config.id, E.c.deleted_at.is_(None))
        .order_by(E.c.slug)
    ).all()
    names = _variant_names(conn, config.id)
    return m.TargetingList(data=[_targeting(r, r.env_slug, names) for r in rows])


def get_targeting(conn: Connection, config_ref: str, env_ref: str) -> m.Targeting:
    config = _config(conn, config_ref)
    env = _env(conn, env_ref)
    row = conn.execute(
        sa.select(T).where(T.c.config_id == config.id, T.c.environment_id == env.id)
    ).first()
    if row is None:
        raise NotFound(
            f"config {config.slug!r} has no targeting in {env.slug!r}",
            param="environment",
            code="no_targeting",
        )
    return _targeting(row, env.slug, _variant_names(conn, config.id))


def put_targeting(
    conn: Connection,
    actor: str,
    config_ref: str,
    env_ref: str,
    body: m.TargetingIn,
    now: dt.datetime,
) -> m.Targeting:
    config = _config(conn, config_ref)
    env = _env(conn, env_ref)
    if sum(a.weight for a in body.arms) <= 0:
        raise InvalidRequest("arms: the weights must add up to more than 0", param="arms")
    variants = conn.execute(
        sa.select(V.c.id, V.c.name).where(V.c.config_id == config.id, V.c.deleted_at.is_(None))
    ).all()
    by_id = {r.id: r.id for r in variants}
    by_name = {r.name: r.id for r in variants}
    arms: list[dict[str, Any]] = []
    for i, arm in enumerate(body.arms):
        ref_id = as_uuid(arm.variant)
        variant_id = by_id.get(ref_id) if ref_id else None
        variant_id = variant_id or by_name.get(arm.variant)
        if variant_id is None:
            raise InvalidRequest(
                f"arms[{i}].variant: config {config.slug!r} has no variant {arm.variant!r}",
                param=f"arms[{i}].variant",
            )
        if arm.version is not None and not _version_exists(conn, variant_id, arm.version):
            raise InvalidRequest(
                f"arms[{i}].version: version {arm.version} does not exist",
                param=f"arms[{i}].version",
            )
        arms.append({"variant_id": str(variant_id), "version": arm.version, "weight": arm.weight})
    key = (T.c.config_id == config.id) & (T.c.environment_id == env.id)
    row = conn.execute(sa.select(T).where(key)).first()
    if row is not None and row.arms == arms and row.sticky_key == body.sticky_key:
        return _targeting(row, env.slug, _variant_names(conn, config.id))
    values = {"sticky_key": body.sticky_key, "arms": arms, "updated_at": now}
    if row is None:
        conn.execute(sa.insert(T).values(config_id=config.id, environment_id=env.id, **values))
    else:
        conn.execute(sa.update(T).where(key).values(**values))
    details = {
        "environment": env.slug,
        "sticky_key": body.sticky_key,
        "arms": arms,
        "previous": None if row is None else {"sticky_key": row.sticky_key, "arms": row.arms},
    }
    record_audit(conn, actor, "targeting.set", "config", config.id, details, now=now)
    routing_changed(conn)
    return get_targeting(conn, str(config.id), str(env.id))


def delete_targeting(
    conn: Connection, actor: str, config_ref: str, env_ref: str, now: dt.datetime
) -> None:
    """The config stops serving in the environment (404 no_targeting for its requests)."""
    current = get_targeting(conn, config_ref, env_ref)
    conn.execute(
        sa.delete(T).where(
            T.c.config_id == current.config_id, T.c.environment_id == current.environment_id
        )
    )
    details = {"environment": current.environment, "previous": current.model_dump(mode="json")}
    record_audit(conn, actor, "targeting.delete", "config", current.config_id, details, now=now)
    routing_changed(conn)


def variant_in_use(conn: Connection, config_id: uuid.UUID, variant_id: uuid.UUID) -> list[str]:
    """Slugs of the live environments whose targeting of the config uses the variant."""
    rows = conn.execute(
        sa.select(T.c.arms, E.c.slug)
        .join(E, E.c.id == T.c.environment_id)
        .where(T.c.config_id == config_id, E.c.deleted_at.is_(None))
    )
    wanted = str(variant_id)
    return sorted(r.slug for r in rows if any(a["variant_id"] == wanted for a in r.arms))


def _config(conn: Connection, ref: str) -> sa.Row[Any]:
    return find_live(conn, C, ref, "config", param="config")


def _env(conn: Connection, ref: str) -> sa.Row[Any]:
    return find_live(conn, E, ref, "environment", param="environment")


def _version_exists(conn: Connection, variant_id: uuid.UUID, version: int) -> bool:
    found = conn.execute(
        sa.select(VV.c.id).where(VV.c.variant_id == variant_id, VV.c.version == version)
    ).first()
    return found is not None


def _variant_names(conn: Connection, config_id: uuid.UUID) -> dict[str, str]:
    rows = conn.execute(sa.select(V.c.id, V.c.name).where(V.c.config_id == config_id))
    return {str(r.id): r.name for r in rows}


def _targeting(row: sa.Row[Any], env_slug: str, names: dict[str, str]) -> m.Targeting:
    return m.Targeting(
        config_id=row.config_id,
        environment_id=row.environment_id,
        environment=env_slug,
        sticky_key=row.sticky_key,
        arms=[
            m.Arm(
                variant_id=uuid.UUID(a["variant_id"]),
                variant=names.get(a["variant_id"], ""),
                version=a.get("version"),
                weight=int(a["weight"]),
            )
            for a in row.arms
        ],
        updated_at=utc(row.updated_at),
    )
