"""The management API's HTTP handlers: parse and validate, call one domain function, respond.

Reads run ``Store.run(fn)``; changes run through ``ManagementApi.change``, which commits the domain
function's transaction (change, audit entry and routing-version bump together) and then refreshes
this process's routing snapshot, so a change serves from the next request on. Other processes
pick it up through NOTIFY (PostgreSQL) or their ``snapshot_ttl`` poll. The routes and their
documentation are listed in ``routes.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmops.admin import configs, environments, history, models, prices, providers, targeting
from llmops.admin.entities import Conflict
from llmops.admin.export import export_document
from llmops.admin.guard import require_admin
from llmops.admin.inputs import parse_body, parse_query, path_int, path_ref
from llmops.admin.probe import probe
from llmops.errors import NotFound
from llmops.gateway.state import GatewayState
from llmops.keys import Keyring
from llmops.settings import Settings
from llmops.store import Store

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ManagementServices(Protocol):
    """What the API needs of ``app.Services``."""

    settings: Settings
    store: Store
    keyring: Keyring
    gateway: GatewayState


def _json(model: BaseModel, status: int = 200) -> Response:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ManagementApi:
    def __init__(self, services: ManagementServices) -> None:
        self.store = services.store
        self.keyring = services.keyring
        self.gateway = services.gateway
        self.limit = services.settings.max_body_bytes

    async def change(self, fn: Callable[[Connection], T]) -> T:
        """Commit ``fn``'s transaction, then bring this process's routing snapshot up to date."""
        try:
            result = await self.store.run(fn)
        except sa.exc.IntegrityError:
            # Two concurrent changes claimed the same slug or version number: one lost.
            raise Conflict(
                "a concurrent change conflicted with this one; retry", code="concurrent_change"
            ) from None
        await self.gateway.snapshots.refresh_if_changed()
        return result

    async def body(self, request: Request, model: type[M]) -> M:
        return await parse_body(request, model, self.limit)

    # --- environments and secrets ----------------------------------------------------------

    async def list_environments(self, request: Request) -> Response:
        require_admin(request)
        return _json(await self.store.run(environments.list_environments))

    async def create_environment(self, request: Request) -> Response:
        actor = require_admin(request).actor
        body = await self.body(request, models.EnvironmentIn)
        env = await self.change(lambda c: environments.create_environment(c, actor, body, _now()))
        return _json(env, 201)

    async def get_environment(self, request: Request) -> Response:
        require_admin(request)
        ref = path_ref(request, "environment")
        return _json(await self.store.run(lambda c: environments.get_environment(c, ref)))

    async def update_environment(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "environment")
        body = await self.body(request, models.EnvironmentUpdate)
        return _json(
            await self.change(
                lambda c: environments.update_environment(c, actor, ref, body, _now())
            )
        )

    async def delete_environment(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "environment")
        await self.change(lambda c: environments.delete_environment(c, actor, ref, _now()))
        return Response(status_code=204)

    async def list_secrets(self, request: Request) -> Response:
        require_admin(request)
        ref = path_ref(request, "environment")
        return _json(await self.store.run(lambda c: environments.list_secrets(c, ref, _now())))

    async def create_secret(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "environment")
        body = await self.body(request, models.SecretIn)
        new = await self.change(lambda c: environments.create_secret(c, actor, ref, body, _now()))
        return _json(new, 201)

    async def revoke_secret(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, prefix = path_ref(request, "environment"), path_ref(request, "prefix")
        return _json(
            await self.change(lambda c: environments.revoke_secret(c, actor, ref, prefix, _now()))
        )

    async def rotate_secret(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, prefix = path_ref(request, "environment"), path_ref(request, "prefix")
        body = await self.body(request, models.SecretRotate)
        rotated = await self.change(
            lambda c: environments.rotate_secret(c, actor, ref, prefix, body, _now())
        )
        return _json(rotated, 201)

    # --- provider credentials --------------------------------------------------------------

    async def list_providers(self, request: Request) -> Response:
        require_admin(request)
        return _json(await self.store.run(providers.list_providers))

    async def create_provider(self, request: Request) -> Response:
        actor = require_admin(request).actor
        body = await self.body(request, models.ProviderIn)
        created = await self.change(
            lambda c: providers.create_provider(c, self.keyring, actor, body, _now())
        )
        return _json(created, 201)

    async def get_provider(self, request: Request) -> Response:
        require_admin(request)
        ref = path_ref(request, "provider")
        return _json(await self.store.run(lambda c: providers.get_provider(c, ref)))

    async def update_provider(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "provider")
        body = await self.body(request, models.ProviderUpdate)
        return _json(
            await self.change(
                lambda c: providers.update_provider(c, self.keyring, actor, ref, body, _now())
            )
        )

    async def disable_provider(self, request: Request) -> Response:
        return await self._set_disabled(request, True)

    async def enable_provider(self, request: Request) -> Response:
        return await self._set_disabled(request, False)

    async def _set_disabled(self, request: Request, disabled: bool) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "provider")
        return _json(
            await self.change(lambda c: providers.set_disabled(c, actor, ref, disabled, _now()))
        )

    async def delete_provider(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "provider")
        await self.change(lambda c: providers.delete_provider(c, actor, ref, _now()))
        return Response(status_code=204)

    async def test_provider(self, request: Request) -> Response:
        """Probe the credential as the gateway sees it (its routing snapshot's copy)."""
        require_admin(request)
        return _json(await self.test_connection(path_ref(request, "provider")))

    async def test_connection(self, ref: str) -> models.ConnectionTest:
        """Probe provider credential ``ref`` (shared with the dashboard's Providers page)."""
        row = await self.store.run(lambda c: providers.get_provider(c, ref))
        cred = self.gateway.snapshots.current.credentials.get(row.slug)
        if cred is None or cred.id != row.id:
            cred = (await self.gateway.snapshots.reload()).credentials.get(row.slug)
        if cred is None:  # deleted meanwhile
            raise NotFound(f"no provider credential {ref!r}", param="provider")
        session = self.gateway.session
        assert session is not None, "the upstream session is made before the first request"
        return await probe(session, cred)

    # --- configs, variants, versions -------------------------------------------------------

    async def list_configs(self, request: Request) -> Response:
        require_admin(request)
        return _json(await self.store.run(configs.list_configs))

    async def create_config(self, request: Request) -> Response:
        actor = require_admin(request).actor
        body = await self.body(request, models.ConfigIn)
        created = await self.change(lambda c: configs.create_config(c, actor, body, _now()))
        return _json(created, 201)

    async def get_config(self, request: Request) -> Response:
        require_admin(request)
        ref = path_ref(request, "config")
        return _json(await self.store.run(lambda c: configs.get_config(c, ref)))

    async def update_config(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "config")
        body = await self.body(request, models.ConfigUpdate)
        return _json(
            await self.change(lambda c: configs.update_config(c, actor, ref, body, _now()))
        )

    async def delete_config(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "config")
        await self.change(lambda c: configs.delete_config(c, actor, ref, _now()))
        return Response(status_code=204)

    async def list_variants(self, request: Request) -> Response:
        require_admin(request)
        ref = path_ref(request, "config")
        return _json(await self.store.run(lambda c: configs.list_variants(c, ref)))

    async def create_variant(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "config")
        body = await self.body(request, models.VariantIn)
        created = await self.change(lambda c: configs.create_variant(c, actor, ref, body, _now()))
        return _json(created, 201)

    async def delete_variant(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, variant = path_ref(request, "config"), path_ref(request, "variant")
        await self.change(lambda c: configs.delete_variant(c, actor, ref, variant, _now()))
        return Response(status_code=204)

    async def list_versions(self, request: Request) -> Response:
        require_admin(request)
        ref, variant = path_ref(request, "config"), path_ref(request, "variant")
        return _json(await self.store.run(lambda c: configs.list_versions(c, ref, variant)))

    async def create_version(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, variant = path_ref(request, "config"), path_ref(request, "variant")
        body = await self.body(request, models.VersionIn)
        version, created = await self.change(
            lambda c: configs.create_version(c, actor, ref, variant, body, _now())
        )
        return _json(version, 201 if created else 200)

    async def get_version(self, request: Request) -> Response:
        require_admin(request)
        ref, variant = path_ref(request, "config"), path_ref(request, "variant")
        number = path_int(request, "version")
        return _json(await self.store.run(lambda c: configs.get_version(c, ref, variant, number)))

    async def diff_versions(self, request: Request) -> Response:
        require_admin(request)
        ref, variant = path_ref(request, "config"), path_ref(request, "variant")
        q = parse_query(request, models.DiffQuery)
        return _json(
            await self.store.run(lambda c: configs.diff_versions(c, ref, variant, q.a, q.b))
        )

    # --- targeting -------------------------------------------------------------------------

    async def list_targeting(self, request: Request) -> Response:
        require_admin(request)
        ref = path_ref(request, "config")
        return _json(await self.store.run(lambda c: targeting.list_targeting(c, ref)))

    async def get_targeting(self, request: Request) -> Response:
        require_admin(request)
        ref, env = path_ref(request, "config"), path_ref(request, "environment")
        return _json(await self.store.run(lambda c: targeting.get_targeting(c, ref, env)))

    async def put_targeting(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, env = path_ref(request, "config"), path_ref(request, "environment")
        body = await self.body(request, models.TargetingIn)
        return _json(
            await self.change(lambda c: targeting.put_targeting(c, actor, ref, env, body, _now()))
        )

    async def delete_targeting(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, env = path_ref(request, "config"), path_ref(request, "environment")
        await self.change(lambda c: targeting.delete_targeting(c, actor, ref, env, _now()))
        return Response(status_code=204)

    # --- prices, audit, export, identity ---------------------------------------------------

    async def list_price_overrides(self, request: Request) -> Response:
        require_admin(request)
        return _json(await self.store.run(prices.list_overrides))

    async def create_price_override(self, request: Request) -> Response:
        actor = require_admin(request).actor
        body = await self.body(request, models.PriceOverrideIn)
        created = await self.change(lambda c: prices.create_override(c, actor, body, _now()))
        return _json(created, 201)

    async def delete_price_override(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = path_ref(request, "override")
        await self.change(lambda c: prices.delete_override(c, actor, ref, _now()))
        return Response(status_code=204)

    async def list_audit(self, request: Request) -> Response:
        require_admin(request)
        query = parse_query(request, models.AuditQuery)
        return _json(await self.store.run(lambda c: history.list_audit(c, query)))

    async def export_yaml(self, request: Request) -> Response:
        require_admin(request)
        text = await self.store.run(lambda c: export_document(c, _now()))
        return Response(text, media_type="application/yaml")
