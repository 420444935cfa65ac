"""``create_app(settings)`` builds the ASGI app: the only place that wires the parts together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from llmops.admin.web import AdminWeb
from llmops.analytics.api import AnalyticsAPI
from llmops.dashboard import Dashboard
from llmops.gateway.proxy import new_session
from llmops.gateway.routes import CompletionEndpoint, ModelsEndpoint, NotFoundEndpoint
from llmops.gateway.snapshot import SnapshotHolder
from llmops.gateway.state import GatewayState
from llmops.keys import Keyring
from llmops.lazy_routes import LazyRoutes
from llmops.observability.pricer import RecordPricer
from llmops.observability.rollups import write_request_rollups
from llmops.observability.writer import BatchWriter
from llmops.settings import Settings
from llmops.store import Store, open_store
from llmops.store.migrate import migrate, pending

log = logging.getLogger("llmops")

GATEWAY_PREFIX = "/llmops/api/genai/v1"


class PendingMigrations(RuntimeError):
    pass


class LLMOpsApp(Starlette):
    """Starlette, except that the gateway's endpoints are reached by one dict lookup.

    They are raw ASGI handlers, public, and render their own errors; Starlette's middleware and
    router measured 7–11 % of the gateway's CPU per request (bench/), so they are skipped."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fast_paths: dict[str, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.fast_paths.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


@dataclass
class Services:
    """Everything the app owns; tests reach it as ``app.state.services``."""

    settings: Settings
    store: Store
    keyring: Keyring
    gateway: GatewayState


def create_app(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """Build the app. ``environ`` (default ``os.environ``, read now) supplies provider keys named by
    ``api_key_env``; ``extra_routes`` lets ``llmops demo`` mount its fake provider.

    Every route needs an admin (session cookie or admin API token) except those made public here
    (the gateway, health checks, ``extra_routes``) and by ``AdminWeb`` (login page, static)."""
    store = open_store(settings)
    keyring = Keyring.load(settings.secret_key, settings.data_dir)
    pricer = RecordPricer()
    snapshots = SnapshotHolder(
        store,
        keyring,
        dict(os.environ if environ is None else environ),
        settings.snapshot_ttl,
        pricer=pricer,
    )
    writer = BatchWriter(
        store,
        settings.data_dir,
        flush_interval_ms=settings.flush_interval_ms,
        max_batch_size=settings.max_batch_size,
        max_queue_size=settings.max_queue_size,
        price=pricer,
        body_cap=settings.max_logged_body_bytes,
        after=functools.partial(write_request_rollups, indexed_tags=settings.indexed_tag_keys),
    )
    gateway = GatewayState(settings=settings, snapshots=snapshots, writer=writer)
    services = Services(settings=settings, store=store, keyring=keyring, gateway=gateway)
    public = [GATEWAY_PREFIX + "/*", "/v1/*", "/healthz", "/readyz"]
    public += [
        r.path + "/*" if isinstance(r, Mount) else getattr(r, "path", "") for r in extra_routes
    ]
    admin = AdminWeb(settings, store, public=public)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if store.dialect == "sqlite":
            await store.run(migrate)
        else:
            missing = await store.run(pending)
            if missing:
                raise PendingMigrations(
                    f"the database needs migrations {', '.join(missing)}: run `llmops migrate`"
                )
        await admin.start()
        await snapshots.reload()
        snapshots.start()
        writer.start()
        gateway.session = new_session(
            settings.upstream_pool_size,
            settings.upstream_connect_timeout,
            settings.upstream_timeout,
        )
        try:
            yield
        finally:
            await gateway.session.close()
            await writer.stop()
            await snapshots.stop()
            await store.close()

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        try:
            await store.ping()
        except Exception as e:
            return JSONResponse({"ready": False, "database": type(e).__name__}, status_code=503)
        return JSONResponse({"ready": True, "routing_version": snapshots.current.version})

    async def metrics(request: Request) -> Response:
        st = writer.stats
        lines = [
            f"llmops_log_queue_depth {writer.depth}",
            f"llmops_log_rows_queued_total {st.queued}",
            f"llmops_log_rows_written_total {st.written}",
            f"llmops_log_flush_retries_total {st.retried}",
            f"llmops_log_rows_spilled_total {st.spilled}",
            f"llmops_log_rows_replayed_total {st.replayed}",
            f"llmops_log_rows_dead_lettered_total {st.dead_lettered}",
            f"llmops_log_rows_unpriced_total {st.unpriced}",
            f"llmops_log_database_down {int(st.database_down)}",
            f"llmops_routing_version {snapshots.current.version}",
            # For soak tests: these must stay flat under steady load.
            f"llmops_event_loop_tasks {len(asyncio.all_tasks())}",
            f"llmops_open_fds {_open_fds()}",
        ]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    gateway_routes: list[BaseRoute] = [
        Route("/chat/completions", CompletionEndpoint(gateway, "chat.completions")),
        Route("/completions", CompletionEndpoint(gateway, "completions")),
        Route("/embeddings", CompletionEndpoint(gateway, "embeddings")),
        Route("/responses", CompletionEndpoint(gateway, "responses")),
        Route("/models", ModelsEndpoint(gateway)),
        Route("/{rest:path}", NotFoundEndpoint()),
    ]
    routes: list[BaseRoute] = [
        Mount(GATEWAY_PREFIX, routes=gateway_routes),
        Mount("/v1", routes=gateway_routes),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *AnalyticsAPI(store, settings.indexed_tag_keys).routes(),
        *Dashboard(store, settings).routes(),
        *extra_routes,
    ]
    app = LLMOpsApp(routes=routes, lifespan=lifespan)
    for prefix in (GATEWAY_PREFIX, "/v1"):
        for route in gateway_routes[:-1]:
            assert isinstance(route, Route)
            app.fast_paths[prefix + route.path] = route.app
    admin.install(app)
    # Last: the management API, loaded on first use (see LazyRoutes).
    app.router.routes.append(LazyRoutes("/llmops/api/v1/", lambda: _management_routes(services)))
    app.state.services = services
    return app


def _management_routes(services: Services) -> list[BaseRoute]:
    from llmops.admin.openapi import ApiDoc
    from llmops.admin.routes import management_routes

    # ApiDoc: the OpenAPI document that every /llmops/api/v1 module registers into.
    return management_routes(services, ApiDoc())


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux
        return -1


def app_from_env() -> Starlette:
    """The app built from ``LLMOPS_*`` environment variables (``llmops serve --workers N``)."""
    return create_app(Settings.load())
