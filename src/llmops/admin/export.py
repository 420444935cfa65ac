"""Export the live configuration as an ``llmops apply`` document (YAML).

Applying the export to the database it came from changes nothing (a round trip), with one
exception by design: provider API keys are never exported. A credential whose key reads from an
environment variable exports ``api_key_env``; one whose key is stored encrypted gets a YAML comment
saying the key must be supplied, because applying the file without it would remove the stored key.

Not exported: deleted entities, secrets (only hashes are stored), price overrides, disabled flags,
versions older than the latest (apply compares with the latest), and variants or targeting that
refer to deleted entities (listed in a closing comment).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy import Connection

from llmops.store import schema as s

KEY_COMMENT = (
    "# api_key: stored encrypted and not exported. Add `api_key: ...` (or `api_key_env: ...`)\n"
    "# here before applying this file: applying it without one removes the stored key.\n"
)


def export_document(conn: Connection, now: dt.datetime) -> str:
    skipped: list[str] = []
    e, p = s.environments, s.provider_credentials
    envs = conn.execute(sa.select(e).where(e.c.deleted_at.is_(None)).order_by(e.c.slug)).all()
    creds = conn.execute(sa.select(p).where(p.c.deleted_at.is_(None)).order_by(p.c.slug)).all()
    live_creds = {r.id: r.slug for r in creds}
    env_slugs = {r.id: r.slug for r in envs}
    configs = [
        _config(conn, row, live_creds, env_slugs, skipped)
        for row in conn.execute(
            sa.select(s.configs).where(s.configs.c.deleted_at.is_(None)).order_by(s.configs.c.slug)
        )
    ]
    parts = [
        f"# llmops apply document, exported {now:%Y-%m-%d %H:%M:%S} UTC.\n",
        "# Provider API keys are never exported; see the comments on providers below.\n",
        _dump({"environments": [{"slug": r.slug, "name": r.name} for r in envs]}),
        "providers:" + ("\n" if creds else " []\n"),
    ]
    for row in creds:
        parts.append((KEY_COMMENT if row.api_key_encrypted else "") + _dump([_provider(row)]))
    parts.append(_dump({"configs": configs}))
    if skipped:
        parts.append("# Not exported (they refer to deleted entities):\n")
        parts += [f"#   {line}\n" for line in skipped]
    return "".join(parts)


def _provider(row: sa.Row[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"slug": row.slug, "name": row.name, "type": row.provider_type}
    if row.base_url:
        out["base_url"] = row.base_url
    if row.api_key_env:
        out["api_key_env"] = row.api_key_env
    if row.options:
        out["options"] = dict(row.options)
    return out


def _config(
    conn: Connection,
    row: sa.Row[Any],
    creds: dict[uuid.UUID, str],
    envs: dict[uuid.UUID, str],
    skipped: list[str],
) -> dict[str, Any]:
    v, vv = s.variants, s.variant_versions
    variants: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # variant id → name, for the exported ones
    for variant in conn.execute(
        sa.select(v).where(v.c.config_id == row.id, v.c.deleted_at.is_(None)).order_by(v.c.name)
    ):
        latest = conn.execute(
            sa.select(vv).where(vv.c.variant_id == variant.id).order_by(vv.c.version.desc())
        ).first()
        if latest is None or latest.credential_id not in creds:
            skipped.append(f"config {row.slug}: variant {variant.name} (deleted provider)")
            continue
        out: dict[str, Any] = {
            "name": variant.name,
            "provider": creds[latest.credential_id],
            "model": latest.model,
        }
        if latest.parameters:
            out["parameters"] = dict(latest.parameters)
        if latest.prompt:
            out["prompt"] = dict(latest.prompt)
        variants.append(out)
        names[str(variant.id)] = variant.name
    targeting: dict[str, Any] = {}
    t = s.targeting
    for target in conn.execute(sa.select(t).where(t.c.config_id == row.id)):
        env = envs.get(target.environment_id)
        if env is None:
            continue
        if any(a["variant_id"] not in names for a in target.arms):
            skipped.append(f"config {row.slug}: targeting in {env} (deleted variant)")
            continue
        targeting[env] = _targeting(target, names)
    config: dict[str, Any] = {"slug": row.slug, "name": row.name}
    if row.description:
        config["description"] = row.description
    config["variants"] = variants
    if targeting:
        config["targeting"] = dict(sorted(targeting.items()))
    return config


def _targeting(row: sa.Row[Any], names: dict[str, str]) -> dict[str, Any]:
    arms = row.arms
    out: dict[str, Any] = {}
    if len(arms) == 1 and int(arms[0]["weight"]) == 1:
        out["variant"] = names[arms[0]["variant_id"]]
        if arms[0].get("version") is not None:
            out["version"] = arms[0]["version"]
        if row.sticky_key is not None:
            out["sticky_key"] = row.sticky_key
        return out
    if row.sticky_key is not None:
        out["sticky_key"] = row.sticky_key
    out["variants"] = [
        {"variant": names[a["variant_id"]], "weight": int(a["weight"])}
        | ({"version": a["version"]} if a.get("version") is not None else {})
        for a in arms
    ]
    return out


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
