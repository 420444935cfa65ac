"""Environments and their secrets: plain functions of a ``Connection`` (run with ``Store.run``).

Every change writes an audit entry and signals a routing change in the same transaction. Secrets
are shown once (``NewSecret.token``); the database keeps their prefix and a SHA-256. Deleting an
environment is a soft delete that also revokes its secrets, so reviving it (``llmops apply``) never
brings old keys back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin import models as m
from llmops.admin.audit import record_audit
from llmops.admin.entities import Conflict, claim_name, find_live, routing_changed, utc_or_none
from llmops.errors import InvalidRequest, NotFound
from llmops.ids import uuid7
from llmops.keys import new_secret
from llmops.store import schema as s
from llmops.store import utc

E = s.environments
S = s.environment_secrets


def list_environments(conn: Connection) -> m.EnvironmentList:
    rows = conn.execute(sa.select(E).where(E.c.deleted_at.is_(None)).order_by(E.c.slug))
    return m.EnvironmentList(data=[_environment(r) for r in rows])


def get_environment(conn: Connection, ref: str) -> m.Environment:
    return _environment(find_env(conn, ref))


def find_env(conn: Connection, ref: str, param: str = "environment") -> sa.Row[Any]:
    return find_live(conn, E, ref, "environment", param=param)


def create_environment(
    conn: Connection, actor: str, body: m.EnvironmentIn, now: dt.datetime
) -> m.Environment:
    claim_name(conn, E, body.slug, "environment")
    env_id = uuid7()
    name = body.name or body.slug
    conn.execute(sa.insert(E).values(id=env_id, slug=body.slug, name=name, created_at=now))
    record_audit(
        conn, actor, "environment.create", "environment", env_id, {"slug": body.slug}, now=now
    )
    routing_changed(conn)
    return get_environment(conn, str(env_id))


def update_environment(
    conn: Connection, actor: str, ref: str, body: m.EnvironmentUpdate, now: dt.datetime
) -> m.Environment:
    row = find_env(conn, ref)
    changes = {
        k: v
        for k, v in body.model_dump(exclude_unset=True).items()
        if v is not None and v != row._mapping[k]
    }
    if not changes:
        return _environment(row)
    if "slug" in changes:
        claim_name(conn, E, changes["slug"], "environment", owner=row.id)
    conn.execute(sa.update(E).where(E.c.id == row.id).values(**changes))
    details = {k: {"old": row._mapping[k], "new": v} for k, v in changes.items()}
    record_audit(conn, actor, "environment.update", "environment", row.id, details, now=now)
    routing_changed(conn)
    return get_environment(conn, str(row.id))


def delete_environment(conn: Connection, actor: str, ref: str, now: dt.datetime) -> None:
    row = find_env(conn, ref)
    conn.execute(sa.update(E).where(E.c.id == row.id).values(deleted_at=now))
    revoked = conn.execute(
        sa.update(S)
        .where(S.c.environment_id == row.id, S.c.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount
    details = {"slug": row.slug, "secrets_revoked": revoked}
    record_audit(conn, actor, "environment.delete", "environment", row.id, details, now=now)
    routing_changed(conn)


def list_secrets(conn: Connection, env_ref: str, now: dt.datetime) -> m.SecretList:
    env = find_env(conn, env_ref)
    rows = conn.execute(
        sa.select(S).where(S.c.environment_id == env.id).order_by(S.c.created_at, S.c.id)
    )
    return m.SecretList(data=[_secret(r, now) for r in rows])


def create_secret(
    conn: Connection, actor: str, env_ref: str, body: m.SecretIn, now: dt.datetime
) -> m.NewSecret:
    env = find_env(conn, env_ref)
    if body.expires_at is not None and body.expires_at <= now:
        raise InvalidRequest("expires_at: must be in the future", param="expires_at")
    new = _insert_secret(conn, env.id, body.expires_at, now)
    details = {"prefix": new.prefix, "expires_at": _iso(body.expires_at)}
    record_audit(conn, actor, "secret.create", "environment", env.id, details, now=now)
    routing_changed(conn)
    return new


def revoke_secret(
    conn: Connection, actor: str, env_ref: str, prefix: str, now: dt.datetime
) -> m.Secret:
    env = find_env(conn, env_ref)
    row = _find_secret(conn, env.id, prefix)
    if row.revoked_at is not None:
        return _secret(row, now)
    conn.execute(sa.update(S).where(S.c.id == row.id).values(revoked_at=now))
    record_audit(conn, actor, "secret.revoke", "environment", env.id, {"prefix": prefix}, now=now)
    routing_changed(conn)
    return _secret(_find_secret(conn, env.id, prefix), now)


def rotate_secret(
    conn: Connection,
    actor: str,
    env_ref: str,
    prefix: str,
    body: m.SecretRotate,
    now: dt.datetime,
) -> m.RotatedSecret:
    """A new secret; the old one keeps working for ``overlap_seconds`` (never longer than it
    would have anyway)."""
    env = find_env(conn, env_ref)
    old = _find_secret(conn, env.id, prefix)
    if not _active(old, now):
        raise Conflict(
            f"secret {prefix} is revoked or expired: create a new one instead",
            param="prefix",
            code="secret_inactive",
        )
    until = now + dt.timedelta(seconds=body.overlap_seconds)
    current = utc_or_none(old.expires_at)
    if current is not None and current < until:
        until = current
    conn.execute(sa.update(S).where(S.c.id == old.id).values(expires_at=until))
    new = _insert_secret(conn, env.id, None, now)
    details = {
        "prefix": prefix,
        "new_prefix": new.prefix,
        "overlap_seconds": body.overlap_seconds,
        "expires_at": _iso(until),
    }
    record_audit(conn, actor, "secret.rotate", "environment", env.id, details, now=now)
    routing_changed(conn)
    return m.RotatedSecret(secret=new, previous=_secret(_find_secret(conn, env.id, prefix), now))


def _insert_secret(
    conn: Connection, env_id: uuid.UUID, expires_at: dt.datetime | None, now: dt.datetime
) -> m.NewSecret:
    secret = new_secret()
    secret_id = uuid7()
    conn.execute(
        sa.insert(S).values(
            id=secret_id,
            environment_id=env_id,
            prefix=secret.prefix,
            secret_hash=secret.digest,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return m.NewSecret(
        id=secret_id,
        environment_id=env_id,
        prefix=secret.prefix,
        created_at=now,
        expires_at=expires_at,
        revoked_at=None,
        active=True,
        token=secret.token,
    )


def _find_secret(conn: Connection, env_id: uuid.UUID, prefix: str) -> sa.Row[Any]:
    row = conn.execute(
        sa.select(S).where(S.c.environment_id == env_id, S.c.prefix == prefix)
    ).first()
    if row is None:
        raise NotFound(f"no secret {prefix!r} in this environment", param="prefix")
    return row


def _active(row: sa.Row[Any], now: dt.datetime) -> bool:
    expires = utc_or_none(row.expires_at)
    return row.revoked_at is None and (expires is None or expires > now)


def _secret(row: sa.Row[Any], now: dt.datetime) -> m.Secret:
    return m.Secret(
        id=row.id,
        environment_id=row.environment_id,
        prefix=row.prefix,
        created_at=utc(row.created_at),
        expires_at=utc_or_none(row.expires_at),
        revoked_at=utc_or_none(row.revoked_at),
        active=_active(row, now),
    )


def _environment(row: sa.Row[Any]) -> m.Environment:
    return m.Environment(id=row.id, slug=row.slug, name=row.name, created_at=utc(row.created_at))


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
