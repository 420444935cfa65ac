"""The in-memory routing snapshot: everything the hot path needs, loaded once per change.

The gateway performs no database query per request. ``load_snapshot`` reads environments, secrets,
credentials, configs, variants and targeting in one transaction and builds immutable lookup tables;
``SnapshotHolder`` swaps in a new snapshot when the routing version in the database moves (checked
every ``snapshot_ttl`` seconds, and at once after a change made in this process). On PostgreSQL it
also LISTENs on ``llmops_routing`` on a dedicated connection, so that a change another process
announces with NOTIFY is picked up at once; while that connection is down (the database restarting)
it reconnects with backoff, and the TTL poll goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.keys import Keyring, secret_matches, secret_prefix
from llmops.observability.cost import PriceOverride
from llmops.observability.pricer import RecordPricer, load_overrides, price_hint
from llmops.store import Store
from llmops.store import schema as s

log = logging.getLogger("llmops.snapshot")

ROUTING_CHANNEL = "llmops_routing"  # NOTIFY'd in the transaction of every routing change
_RECONNECT_FIRST, _RECONNECT_MAX = 0.5, 10.0  # seconds between LISTEN reconnection attempts
_LISTEN_HEALTH_CHECK = 30.0  # seconds of silence after which the LISTEN connection is checked


@dataclass(frozen=True, slots=True)
class Environment:
    id: uuid.UUID
    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Credential:
    id: uuid.UUID
    slug: str
    provider_type: str
    base_url: str
    api_key: str | None
    options: Mapping[str, Any]
    disabled: bool
    price_hint: str | None = None


@dataclass(frozen=True, slots=True)
class VariantVersion:
    variant_id: uuid.UUID
    variant_name: str
    version: int
    credential: Credential
    model: str
    parameters: Mapping[str, Any]
    prompt: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Arm:
    variant_id: uuid.UUID
    version: int | None  # None follows the latest version
    weight: int


@dataclass(frozen=True, slots=True)
class Targeting:
    sticky_key: str | None
    arms: tuple[Arm, ...]
    total_weight: int


@dataclass(frozen=True, slots=True)
class Config:
    id: uuid.UUID
    slug: str
    name: str
    targeting: Mapping[uuid.UUID, Targeting]  # by environment id


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int = 0
    secrets: Mapping[str, tuple[tuple[str, Environment, dt.datetime | None], ...]] = field(
        default_factory=dict
    )
    configs: Mapping[str, Config] = field(default_factory=dict)  # by slug and by str(id)
    credentials: Mapping[str, Credential] = field(default_factory=dict)  # by slug
    versions: Mapping[tuple[uuid.UUID, int], VariantVersion] = field(default_factory=dict)
    latest: Mapping[uuid.UUID, VariantVersion] = field(default_factory=dict)

    def authenticate(self, token: str, now: dt.datetime) -> Environment | None:
        """The environment whose secret ``token`` is, or None. Digests compare in constant time."""
        prefix = secret_prefix(token)
        if prefix is None:
            return None
        for digest, env, expires_at in self.secrets.get(prefix, ()):
            if secret_matches(token, digest) and (expires_at is None or expires_at > now):
                return env
        return None

    def version_for(self, arm: Arm) -> VariantVersion | None:
        if arm.version is None:
            return self.latest.get(arm.variant_id)
        return self.versions.get((arm.variant_id, arm.version))


def read_routing_version(conn: Connection) -> int:
    value = conn.execute(
        sa.select(s.meta.c.value).where(s.meta.c.key == "routing_version")
    ).scalar()
    return int(value or 0)


def load_snapshot(conn: Connection, keyring: Keyring, environ: Mapping[str, str]) -> Snapshot:
    version = read_routing_version(conn)
    envs = {
        r.id: Environment(r.id, r.slug, r.name)
        for r in conn.execute(
            sa.select(s.environments).where(s.environments.c.deleted_at.is_(None))
        )
    }
    secrets: dict[str, list[tuple[str, Environment, dt.datetime | None]]] = {}
    for r in conn.execute(
        sa.select(s.environment_secrets).where(s.environment_secrets.c.revoked_at.is_(None))
    ):
        if r.environment_id in envs:
            expires = _utc(r.expires_at)
            secrets.setdefault(r.prefix, []).append(
                (r.secret_hash, envs[r.environment_id], expires)
            )
    creds: dict[uuid.UUID, Credential] = {}
    for r in conn.execute(
        sa.select(s.provider_credentials).where(s.provider_credentials.c.deleted_at.is_(None))
    ):
        api_key = keyring.decrypt(r.api_key_encrypted) if r.api_key_encrypted else None
        if api_key is None and r.api_key_env:
            api_key = environ.get(r.api_key_env)
        creds[r.id] = Credential(
            id=r.id,
            slug=r.slug,
            provider_type=r.provider_type,
            base_url=r.base_url or "",
            api_key=api_key,
            options=dict(r.options or {}),
            disabled=r.disabled_at is not None,
            price_hint=price_hint(r.provider_type, r.base_url or "", r.options or {}),
        )
    variant_names = {
        r.id: r.name
        for r in conn.execute(sa.select(s.variants).where(s.variants.c.deleted_at.is_(None)))
    }
    versions: dict[tuple[uuid.UUID, int], VariantVersion] = {}
    latest: dict[uuid.UUID, VariantVersion] = {}
    for r in conn.execute(sa.select(s.variant_versions).order_by(s.variant_versions.c.version)):
        if r.variant_id not in variant_names or r.credential_id not in creds:
            continue
        vv = VariantVersion(
            variant_id=r.variant_id,
            variant_name=variant_names[r.variant_id],
            version=r.version,
            credential=creds[r.credential_id],
            model=r.model,
            parameters=dict(r.parameters or {}),
            prompt=dict(r.prompt or {}),
        )
        versions[(r.variant_id, r.version)] = vv
        latest[r.variant_id] = vv
    targeting: dict[uuid.UUID, dict[uuid.UUID, Targeting]] = {}
    for r in conn.execute(sa.select(s.targeting)):
        arms = tuple(
            Arm(uuid.UUID(a["variant_id"]), a.get("version"), int(a["weight"])) for a in r.arms
        )
        targeting.setdefault(r.config_id, {})[r.environment_id] = Targeting(
            r.sticky_key, arms, sum(a.weight for a in arms)
        )
    configs: dict[str, Config] = {}
    for r in conn.execute(sa.select(s.configs).where(s.configs.c.deleted_at.is_(None))):
        cfg = Config(r.id, r.slug, r.name, targeting.get(r.id, {}))
        configs[r.slug] = cfg
        configs[str(r.id)] = cfg
    return Snapshot(
        version=version,
        secrets={k: tuple(v) for k, v in secrets.items()},
        configs=configs,
        credentials={c.slug: c for c in creds.values()},
        versions=versions,
        latest=latest,
    )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC
    return value


class SnapshotHolder:
    """Holds the current snapshot and keeps it fresh."""

    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        environ: Mapping[str, str],
        ttl: float,
        pricer: RecordPricer | None = None,
    ):
        self.current = Snapshot()
        self._pricer = pricer
        self._overrides: list[PriceOverride] | None = None
        self._store = store
        self._keyring = keyring
        self._environ = dict(environ)
        self._ttl = ttl
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = False  # whether NOTIFYs are being received right now

    async def reload(self) -> Snapshot:
        def load(conn: Connection) -> tuple[Snapshot, list[PriceOverride]]:
            return load_snapshot(conn, self._keyring, self._environ), load_overrides(conn)

        snapshot, overrides = await self._store.run(load)
        if self._pricer is not None and overrides != self._overrides:
            self._pricer.set_overrides(overrides)
            self._overrides = overrides
        self.current = snapshot
        return snapshot

    async def refresh_if_changed(self) -> bool:
        version = await self._store.run(read_routing_version)
        if version != self.current.version:
            await self.reload()
            return True
        return False

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="llmops-snapshot")
        url = getattr(self._store, "url", None)
        if self._store.dialect == "postgresql" and isinstance(url, str):
            self._listener = asyncio.create_task(self._listen(url), name="llmops-snapshot-listen")

    async def stop(self) -> None:
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._ttl)
            try:
                await self.refresh_if_changed()
            except Exception:  # the database may be away; keep serving the last snapshot
                log.warning(
                    "routing snapshot refresh failed; serving the previous one", exc_info=True
                )

    async def _listen(self, url: str) -> None:
        dsn = "postgresql://" + url.partition("://")[2]  # asyncpg's own scheme, no driver
        delay = _RECONNECT_FIRST
        while True:
            try:
                await self._listen_once(dsn)
            except Exception:
                log.warning("routing LISTEN connection failed", exc_info=True)
            if self.listening:  # it had worked: start the backoff afresh
                delay = _RECONNECT_FIRST
            self.listening = False
            log.warning(
                "routing LISTEN: reconnecting in %.1fs; polling every %.1fs meanwhile",
                delay,
                self._ttl,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX)

    async def _listen_once(self, dsn: str) -> None:
        """Receive NOTIFYs until the connection is lost."""
        import asyncpg  # only on PostgreSQL: SQLite deployments never load it

        conn = await asyncpg.connect(dsn, timeout=10)
        wake = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: wake.set())
            await conn.add_listener(ROUTING_CHANNEL, lambda *_args: wake.set())
            await self.refresh_if_changed()  # whatever changed while nobody was listening
            self.listening = True
            while not conn.is_closed():
                try:
                    await asyncio.wait_for(wake.wait(), _LISTEN_HEALTH_CHECK)
                except TimeoutError:
                    await conn.fetchval("SELECT 1", timeout=10)  # a silently dead socket raises
                    continue
                wake.clear()
                if not conn.is_closed():
                    await self.refresh_if_changed()
        finally:
            conn.terminate()
