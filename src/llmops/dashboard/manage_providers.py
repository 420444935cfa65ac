"""Provider credentials: list (keys are never shown: "key stored" or the env var's name), create,
test the connection (inline through htmx, or on the page without JavaScript), disable and enable.
Each action calls the same ``admin.providers`` function as the management API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmops.admin import models as m
from llmops.admin import providers
from llmops.admin.document import DEFAULT_BASE_URLS, PROVIDER_TYPES
from llmops.admin.guard import require_admin
from llmops.admin.inputs import validate
from llmops.dashboard.forms import FormError, now, read_form, redirect
from llmops.dashboard.manage import Pages
from llmops.errors import LLMOpsError

PROVIDERS = "/llmops/providers"
PROVIDER = PROVIDERS + "/{provider}"


class ProviderPages(Pages):
    def routes(self) -> list[BaseRoute]:
        return [
            Route(PROVIDERS, self.index, methods=["GET"]),
            Route(PROVIDERS, self.create, methods=["POST"]),
            Route(PROVIDER + "/test", self.test, methods=["POST"]),
            Route(PROVIDER + "/disable", self.disable, methods=["POST"]),
            Route(PROVIDER + "/enable", self.enable, methods=["POST"]),
        ]

    async def index(
        self,
        request: Request,
        error: FormError | None = None,
        values: dict[str, str] | None = None,
        probes: dict[str, m.ConnectionTest] | None = None,
    ) -> Response:
        listed = await self.store.run(providers.list_providers)
        context: dict[str, Any] = {
            "providers": listed.data,
            "types": PROVIDER_TYPES,
            "default_urls": DEFAULT_BASE_URLS,
            "probes": probes or {},
        }
        return self.render(request, "manage_providers.html", context, error=error, values=values)

    async def create(self, request: Request) -> Response:
        actor = require_admin(request).actor
        form = None
        try:
            form = await read_form(request)
            data = {
                "slug": form.get("slug").strip(),
                "name": form.text("name"),
                "type": form.get("type"),
                "base_url": form.text("base_url"),
                "api_key": form.text("api_key"),
                "api_key_env": form.text("api_key_env"),
            }
            body = validate(m.ProviderIn, data)
            keyring = self.api(request).keyring
            created = await self.api(request).change(
                lambda c: providers.create_provider(c, keyring, actor, body, now())
            )
        except LLMOpsError as e:
            values = form.values() if form else {}
            values.pop("api_key", None)  # a key is never sent back to the browser
            return await self.index(request, FormError.of("create-provider", e), values)
        return redirect(request, PROVIDERS, f"Provider {created.slug} created")

    async def test(self, request: Request) -> Response:
        """The connection test: the result alone for htmx, else the page showing it."""
        require_admin(request)
        ref = request.path_params["provider"]
        try:
            result = await self.api(request).test_connection(ref)
        except LLMOpsError as e:
            result = m.ConnectionTest(ok=False, status=None, latency_ms=0, error=e.message)
        if request.headers.get("hx-request"):
            return self.layout.render(request, "_probe.html", {"probe": result})
        return await self.index(request, probes={ref: result})

    async def disable(self, request: Request) -> Response:
        return await self._set_disabled(request, True)

    async def enable(self, request: Request) -> Response:
        return await self._set_disabled(request, False)

    async def _set_disabled(self, request: Request, disabled: bool) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["provider"]
        try:
            changed = await self.api(request).change(
                lambda c: providers.set_disabled(c, actor, ref, disabled, now())
            )
        except LLMOpsError as e:
            return self.not_found(request, e, PROVIDERS, "Providers")
        state = "disabled: the gateway refuses its configs (403)" if disabled else "enabled"
        return redirect(request, PROVIDERS, f"Provider {changed.slug} {state}")
