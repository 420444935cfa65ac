"""Provider credentials: plain functions of a ``Connection`` (run with ``Store.run``).

API keys are encrypted with the app's ``Keyring`` and never leave: reads say ``has_api_key`` and
``api_key_env`` only, and audit entries say that a key changed, not what to. A disabled credential
stays in the routing snapshot and the gateway answers 403 ``credential_disabled`` for it. A
credential that currently serves a config (through a targeted variant version) cannot be deleted:
409, retarget first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin import models as m
from llmops.admin.audit import record_audit
from llmops.admin.document import DEFAULT_BASE_URLS
from llmops.admin.entities import Conflict, claim_name, find_live, routing_changed, utc_or_none
from llmops.errors import InvalidRequest
from llmops.ids import uuid7
from llmops.keys import Keyring
from llmops.store import schema as s
from llmops.store import utc

P = s.provider_credentials


def list_providers(conn: Connection) -> m.ProviderList:
    rows = conn.execute(sa.select(P).where(P.c.deleted_at.is_(None)).order_by(P.c.slug))
    return m.ProviderList(data=[_provider(r) for r in rows])


def get_provider(conn: Connection, ref: str) -> m.Provider:
    return _provider(find_provider(conn, ref))


def find_provider(conn: Connection, ref: str, param: str = "provider") -> sa.Row[Any]:
    return find_live(conn, P, ref, "provider credential", param=param)


def create_provider(
    conn: Connection, keyring: Keyring, actor: str, body: m.ProviderIn, now: dt.datetime
) -> m.Provider:
    if body.api_key and body.api_key_env:
        raise InvalidRequest("give api_key or api_key_env, not both", param="api_key_env")
    claim_name(conn, P, body.slug, "provider credential")
    cred_id = uuid7()
    conn.execute(
        sa.insert(P).values(
            id=cred_id,
            slug=body.slug,
            name=body.name or body.slug,
            provider_type=body.type,
            base_url=_base_url(body.type, body.base_url),
            api_key_encrypted=keyring.encrypt(body.api_key) if body.api_key else None,
            api_key_env=body.api_key_env,
            options=body.options,
            created_at=now,
        )
    )
    details = {"slug": body.slug, "type": body.type, "api_key": "set" if body.api_key else None}
    record_audit(conn, actor, "provider.create", "provider_credential", cred_id, details, now=now)
    routing_changed(conn)
    return get_provider(conn, str(cred_id))


def update_provider(
    conn: Connection,
    keyring: Keyring,
    actor: str,
    ref: str,
    body: m.ProviderUpdate,
    now: dt.datetime,
) -> m.Provider:
    row = find_provider(conn, ref)
    given = body.model_fields_set
    if body.api_key and body.api_key_env:
        raise InvalidRequest("give api_key or api_key_env, not both", param="api_key_env")
    values: dict[str, Any] = {}
    if body.name is not None:
        values["name"] = body.name
    if body.type is not None:
        values["provider_type"] = body.type
    if body.options is not None:
        values["options"] = body.options
    provider_type = values.get("provider_type", row.provider_type)
    if "base_url" in given or "provider_type" in values:
        values["base_url"] = _base_url(
            provider_type, body.base_url if "base_url" in given else row.base_url
        )
    if "api_key" in given:
        if body.api_key is None:
            values["api_key_encrypted"] = None
        else:
            if not _same_key(keyring, row.api_key_encrypted, body.api_key):
                values["api_key_encrypted"] = keyring.encrypt(body.api_key)
            values["api_key_env"] = None
    if "api_key_env" in given:
        values["api_key_env"] = body.api_key_env
        if body.api_key_env:
            values["api_key_encrypted"] = None
    changed = {k: v for k, v in values.items() if row._mapping[k] != v}
    if not changed:
        return _provider(row)
    conn.execute(sa.update(P).where(P.c.id == row.id).values(**changed))
    details = {
        k.removesuffix("_encrypted"): "changed" if k == "api_key_encrypted" else v
        for k, v in changed.items()
    }
    record_audit(conn, actor, "provider.update", "provider_credential", row.id, details, now=now)
    routing_changed(conn)
    return get_provider(conn, str(row.id))


def set_disabled(
    conn: Connection, actor: str, ref: str, disabled: bool, now: dt.datetime
) -> m.Provider:
    row = find_provider(conn, ref)
    if (row.disabled_at is not None) == disabled:
        return _provider(row)
    conn.execute(sa.update(P).where(P.c.id == row.id).values(disabled_at=now if disabled else None))
    action = "provider.disable" if disabled else "provider.enable"
    record_audit(conn, actor, action, "provider_credential", row.id, {"slug": row.slug}, now=now)
    routing_changed(conn)
    return get_provider(conn, str(row.id))


def delete_provider(conn: Connection, actor: str, ref: str, now: dt.datetime) -> None:
    row = find_provider(conn, ref)
    users = credential_users(conn, row.id)
    if users:
        raise Conflict(
            f"provider credential {row.slug!r} serves {', '.join(users)}: retarget first",
            param="provider",
            code="in_use",
        )
    conn.execute(sa.update(P).where(P.c.id == row.id).values(deleted_at=now))
    record_audit(
        conn, actor, "provider.delete", "provider_credential", row.id, {"slug": row.slug}, now=now
    )
    routing_changed(conn)


def credential_users(conn: Connection, cred_id: uuid.UUID) -> list[str]:
    """``config in environment`` for each live targeting whose arms resolve to ``cred_id``."""
    vv = s.variant_versions
    versions: dict[uuid.UUID, dict[int, uuid.UUID]] = {}
    for r in conn.execute(sa.select(vv.c.variant_id, vv.c.version, vv.c.credential_id)):
        versions.setdefault(r.variant_id, {})[r.version] = r.credential_id
    t, c, e = s.targeting, s.configs, s.environments
    rows = conn.execute(
        sa.select(t.c.arms, c.c.slug.label("config"), e.c.slug.label("env"))
        .join(c, c.c.id == t.c.config_id)
        .join(e, e.c.id == t.c.environment_id)
        .where(c.c.deleted_at.is_(None), e.c.deleted_at.is_(None))
    )
    users = []
    for r in rows:
        for arm in r.arms:
            known = versions.get(uuid.UUID(arm["variant_id"]), {})
            version = arm.get("version") or max(known, default=0)
            if known.get(version) == cred_id:
                users.append(f"config {r.config!r} in {r.env!r}")
                break
    return sorted(users)


def _same_key(keyring: Keyring, stored: str | None, key: str) -> bool:
    try:
        return stored is not None and keyring.decrypt(stored) == key
    except ValueError:  # stored under another secret key: replacing it is the fix
        return False


def _base_url(provider_type: str, base_url: str | None) -> str:
    value = base_url or DEFAULT_BASE_URLS.get(provider_type)
    if value is None:
        raise InvalidRequest(
            f"base_url: required for provider type {provider_type!r}", param="base_url"
        )
    return value.rstrip("/")


def _provider(row: sa.Row[Any]) -> m.Provider:
    return m.Provider(
        id=row.id,
        slug=row.slug,
        name=row.name,
        type=row.provider_type,
        base_url=row.base_url,
        has_api_key=row.api_key_encrypted is not None,
        api_key_env=row.api_key_env,
        options=dict(row.options or {}),
        disabled=row.disabled_at is not None,
        disabled_at=utc_or_none(row.disabled_at),
        created_at=utc(row.created_at),
    )
