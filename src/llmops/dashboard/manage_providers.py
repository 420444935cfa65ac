"""Provider credentials: list (keys are never shown: "key stored" or the env var's name), create,
edit (a blank key field keeps the stored key), test the connection (inline through htmx, or on the
page without JavaScript), disable and enable, delete (confirmed; refused while it serves a config).
Each action calls the same ``admin.providers`` function as the management API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmops.admin import models as m
from llmops.admin import providers
from llmops.admin.document import DEFAULT_BASE_URLS, PROVIDER_TYPES
from llmops.admin.entities import Conflict
from llmops.admin.guard import require_admin
from llmops.admin.inputs import validate
from llmops.dashboard.forms import Form, FormError, now, quote, read_form, redirect
from llmops.dashboard.manage import Pages
from llmops.errors import InvalidRequest, LLMOpsError

PROVIDERS = "/llmops/providers"
PROVIDER = PROVIDERS + "/{provider}"


def _provider_path(slug: str) -> str:
    return f"{PROVIDERS}/{quote(slug)}"


def provider_update(form: Form, current: m.Provider) -> m.ProviderUpdate:
    """The edit form as the API's ``ProviderUpdate``: a blank key field keeps the stored key,
    "remove stored key" removes it; a new key replaces the env var the form still shows."""
    options = form.json("options", {})
    if not isinstance(options, dict):
        raise InvalidRequest("options: must be a JSON object", param="options")
    data: dict[str, Any] = {
        "name": form.text("name"),
        "base_url": form.text("base_url"),
        "options": options,
        "api_key_env": form.text("api_key_env"),
    }
    key = form.get("api_key")
    if form.get("remove_key"):
        if key:
            raise InvalidRequest("api_key: give a new key or remove it, not both", param="api_key")
        data["api_key"] = None
    elif key:
        data["api_key"] = key
        if data["api_key_env"] == current.api_key_env:
            del data["api_key_env"]  # the new key replaces the env var
    if data["name"] is None:
        del data["name"]
    return validate(m.ProviderUpdate, data)


class ProviderPages(Pages):
    def routes(self) -> list[BaseRoute]:
        return [
            Route(PROVIDERS, self.index, methods=["GET"]),
            Route(PROVIDERS, self.create, methods=["POST"]),
            Route(PROVIDER, self.edit, methods=["GET"]),
            Route(PROVIDER, self.update, methods=["POST"]),
            Route(PROVIDER + "/delete", self.confirm_delete, methods=["GET"]),
            Route(PROVIDER + "/delete", self.delete, methods=["POST"]),
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

    async def edit(
        self, request: Request, error: FormError | None = None, values: dict[str, str] | None = None
    ) -> Response:
        ref = request.path_params["provider"]

        async def load() -> Response:
            provider = await self.store.run(lambda c: providers.get_provider(c, ref))
            context = {"provider": provider, "path": _provider_path(provider.slug)}
            return self.render(request, "manage_provider.html", context, error=error, values=values)

        return await self.guarded(request, load, PROVIDERS, "Providers")

    async def update(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["provider"]
        keyring = self.api(request).keyring
        form = None
        try:
            form = await read_form(request)
            got = form

            def change(c: Any) -> m.Provider:
                body = provider_update(got, providers.get_provider(c, ref))
                return providers.update_provider(c, keyring, actor, ref, body, now())

            changed = await self.api(request).change(change)
        except LLMOpsError as e:
            if e.status == 404:
                return self.not_found(request, e, PROVIDERS, "Providers")
            values = form.values() if form else {}
            values.pop("api_key", None)  # a key is never sent back to the browser
            return await self.edit(request, FormError.of("edit-provider", e), values)
        return redirect(request, _provider_path(changed.slug), f"Provider {changed.slug} saved")

    async def confirm_delete(self, request: Request) -> Response:
        ref = request.path_params["provider"]

        async def load() -> Response:
            provider = await self.store.run(lambda c: providers.get_provider(c, ref))
            return self.confirm(
                request,
                title=f"Delete provider {provider.slug}?",
                message="New variant versions can no longer use it. A provider that still serves "
                "a config (through a targeted variant) is not deleted: retarget first.",
                action=_provider_path(provider.slug) + "/delete",
                button="Delete provider",
                cancel=_provider_path(provider.slug),
            )

        return await self.guarded(request, load, PROVIDERS, "Providers")

    async def delete(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["provider"]
        try:
            await self.api(request).change(
                lambda c: providers.delete_provider(c, actor, ref, now())
            )
        except Conflict as e:
            users = e.message.partition(" serves ")[2].removesuffix(": retarget first")
            message = (
                f"{ref} still serves {users}. Target another variant (or stop serving) there "
                "first, then delete it."
                if users
                else e.message
            )
            error = FormError("delete-provider", message, None, e.status)
            return await self.edit(request, error)
        except LLMOpsError as e:
            return self.not_found(request, e, PROVIDERS, "Providers")
        return redirect(request, PROVIDERS, f"Provider {ref} deleted")
