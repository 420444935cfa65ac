"""Config changes beyond versions and targeting: edit a config (slug, name, description), delete a
config and delete a variant, each with a confirmation page. A variant still targeted somewhere is
not deleted (409): the page says where it serves. Each action calls the same ``admin.configs``
function as the management API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmops.admin import configs
from llmops.admin import models as m
from llmops.admin.entities import Conflict
from llmops.admin.guard import require_admin
from llmops.admin.inputs import validate
from llmops.dashboard.forms import FormError, now, quote, read_form, redirect
from llmops.dashboard.manage_configs import CONFIG, CONFIGS, ConfigPages, _config_path
from llmops.errors import LLMOpsError, NotFound

VARIANT = CONFIG + "/variants/{variant}"


class ConfigEditPages(ConfigPages):
    def routes(self) -> list[BaseRoute]:
        return [
            *super().routes(),
            Route(CONFIG + "/edit", self.update, methods=["POST"]),
            Route(CONFIG + "/delete", self.confirm_delete, methods=["GET"]),
            Route(CONFIG + "/delete", self.delete, methods=["POST"]),
            Route(VARIANT + "/delete", self.confirm_delete_variant, methods=["GET"]),
            Route(VARIANT + "/delete", self.delete_variant, methods=["POST"]),
        ]

    async def update(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["config"]
        form = None
        try:
            form = await read_form(request)
            data = {
                "slug": form.text("slug"),
                "name": form.text("name"),
                "description": form.get("description").strip(),
            }
            body = validate(m.ConfigUpdate, data)
            config = await self.api(request).change(
                lambda c: configs.update_config(c, actor, ref, body, now())
            )
        except LLMOpsError as e:
            if e.status == 404:
                return self.not_found(request, e, CONFIGS, "Configs")
            values = form.values() if form else None
            return await self.detail(request, FormError.of("edit-config", e), values)
        return redirect(request, _config_path(config.slug), f"Config {config.slug} saved")

    async def confirm_delete(self, request: Request) -> Response:
        ref = request.path_params["config"]

        async def load() -> Response:
            config = await self.store.run(lambda c: configs.get_config(c, ref))
            where = ", ".join(t.environment for t in config.targeting)
            serving = f" It serves in {where} now." if where else ""
            return self.confirm(
                request,
                title=f"Delete config {config.slug}?",
                message="Requests for it get 404 from the next request on, in every environment."
                f"{serving} Its request history is kept.",
                action=_config_path(config.slug) + "/delete",
                button="Delete config",
                cancel=_config_path(config.slug),
            )

        return await self.guarded(request, load, CONFIGS, "Configs")

    async def delete(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["config"]
        try:
            await self.api(request).change(lambda c: configs.delete_config(c, actor, ref, now()))
        except LLMOpsError as e:
            return self.not_found(request, e, CONFIGS, "Configs")
        return redirect(request, CONFIGS, f"Config {ref} deleted")

    async def confirm_delete_variant(self, request: Request) -> Response:
        ref, variant = request.path_params["config"], request.path_params["variant"]

        async def load() -> Response:
            config = await self.store.run(lambda c: configs.get_config(c, ref))
            if variant not in {v.name for v in config.variants}:
                raise NotFound(f"no variant {variant!r}", param="variant")
            return self.confirm(
                request,
                title=f"Delete variant {variant} of {config.slug}?",
                message="Its versions stay in the request history. A variant that is still "
                "targeted in an environment is not deleted: retarget first.",
                action=f"{_config_path(config.slug)}/variants/{quote(variant)}/delete",
                button="Delete variant",
                cancel=_config_path(config.slug),
            )

        return await self.guarded(request, load, CONFIGS, "Configs")

    async def delete_variant(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, variant = request.path_params["config"], request.path_params["variant"]
        try:
            await self.api(request).change(
                lambda c: configs.delete_variant(c, actor, ref, variant, now())
            )
        except Conflict as e:
            where = e.message.partition(" is targeted in ")[2].removesuffix(": retarget first")
            message = (
                f"Variant {variant} still serves in {where}. Change the targeting there first, "
                "then delete it."
                if where
                else e.message
            )
            error = FormError(f"delete-variant-{variant}", message, None, e.status)
            return await self.detail(request, error)
        except LLMOpsError as e:
            return self.not_found(request, e, _config_path(ref), "Back to the config")
        return redirect(request, _config_path(ref), f"Variant {variant} deleted")
