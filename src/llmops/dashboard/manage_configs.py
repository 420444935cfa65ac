"""Configs: the list and a page per config with its variants, their version history (and a diff of
two versions), a form for a new version (or a new variant), the targeting per environment with an
A/B split editor, and ready-to-paste code that calls the config. Each action calls the same
``admin.configs`` / ``admin.targeting`` function as the management API."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmops.admin import configs, environments, providers, targeting
from llmops.admin import models as m
from llmops.admin.guard import require_admin
from llmops.admin.inputs import validate
from llmops.dashboard.forms import Form, FormError, now, quote, read_form, redirect
from llmops.dashboard.manage import Pages
from llmops.errors import InvalidRequest, LLMOpsError

CONFIGS = "/llmops/configs"
CONFIG = CONFIGS + "/{config}"
TARGET = CONFIG + "/targeting/{environment}"
GATEWAY_PATH = "/llmops/api/genai/v1"
MAX_ARMS = 20
_ARM = re.compile(r"^arms\[(\d+)\]")


def _config_path(slug: str) -> str:
    return f"{CONFIGS}/{quote(slug)}"


def version_body(form: Form) -> dict[str, Any]:
    """A variant version's content as the API takes it, from the version form's fields."""
    parameters = form.json("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidRequest("parameters: must be a JSON object", param="parameters")
    prompt: dict[str, Any] = {}
    if form.get("system").strip():
        prompt["system"] = form.get("system")
    messages = form.json("prompt_messages", None)
    if messages is not None:
        prompt["messages"] = messages
    return {
        "provider": form.get("provider"),
        "model": form.get("model").strip(),
        "parameters": parameters,
        "prompt": prompt,
    }


def targeting_body(form: Form) -> tuple[dict[str, Any], list[int]]:
    """The A/B editor's rows (``arm-<i>-variant|version|weight``; rows without a variant are
    left out) as the API's ``TargetingIn``, and the form row of each arm."""
    arms, rows = [], []
    for i in range(MAX_ARMS):
        variant = form.text(f"arm-{i}-variant")
        if variant is None:
            continue
        arm = {"variant": variant, "weight": form.text(f"arm-{i}-weight") or "1"}
        version = form.text(f"arm-{i}-version")
        if version is not None:
            arm["version"] = version
        arms.append(arm)
        rows.append(i)
    if not arms:
        raise InvalidRequest("arms: choose the variant of at least one arm", param="arms")
    return {"sticky_key": form.text("sticky_key"), "arms": arms}, rows


class ConfigPages(Pages):
    def routes(self) -> list[BaseRoute]:
        return [
            Route(CONFIGS, self.index, methods=["GET"]),
            Route(CONFIGS, self.create, methods=["POST"]),
            Route(CONFIG, self.detail, methods=["GET"]),
            Route(CONFIG + "/variants", self.create_variant, methods=["POST"]),
            Route(CONFIG + "/variants/{variant}/versions", self.create_version, methods=["POST"]),
            Route(TARGET, self.put_targeting, methods=["POST"]),
            Route(TARGET + "/delete", self.confirm_stop, methods=["GET"]),
            Route(TARGET + "/delete", self.stop, methods=["POST"]),
        ]

    async def index(
        self, request: Request, error: FormError | None = None, values: dict[str, str] | None = None
    ) -> Response:
        def load(conn: Connection) -> list[m.ConfigDetail]:
            return [configs.get_config(conn, str(c.id)) for c in configs.list_configs(conn).data]

        context = {"configs": await self.store.run(load)}
        return self.render(request, "manage_configs.html", context, error=error, values=values)

    async def create(self, request: Request) -> Response:
        actor = require_admin(request).actor
        form = None
        try:
            form = await read_form(request)
            data = {
                "slug": form.get("slug").strip(),
                "name": form.text("name"),
                "description": form.get("description").strip(),
            }
            body = validate(m.ConfigIn, data)
            created = await self.api(request).change(
                lambda c: configs.create_config(c, actor, body, now())
            )
        except LLMOpsError as e:
            values = form.values() if form else None
            return await self.index(request, FormError.of("create-config", e), values)
        notice = f"Config {created.slug} created. Add its first variant below."
        return redirect(request, _config_path(created.slug), notice)

    async def detail(
        self, request: Request, error: FormError | None = None, values: dict[str, str] | None = None
    ) -> Response:
        ref = request.path_params["config"]
        q = request.query_params
        diff_variant, diff_error = q.get("diff_variant"), None

        def load(conn: Connection) -> dict[str, Any]:
            config = configs.get_config(conn, ref)
            return {
                "config": config,
                "versions": {
                    v.name: configs.list_versions(conn, str(config.id), str(v.id)).data
                    for v in config.variants
                },
                "environments": environments.list_environments(conn).data,
                "providers": providers.list_providers(conn).data,
            }

        async def page() -> Response:
            nonlocal error, diff_error
            data = await self.store.run(load)
            diff = None
            if diff_variant:
                try:
                    query = validate(m.DiffQuery, {"a": q.get("a"), "b": q.get("b")})
                    cid, a, b = str(data["config"].id), query.a, query.b
                    diff = await self.store.run(
                        lambda c: configs.diff_versions(c, cid, diff_variant, a, b)
                    )
                except LLMOpsError as e:
                    diff_error = FormError.of(f"diff-{diff_variant}", e)
                    error = error or diff_error
            slug, targets = data["config"].slug, data["config"].targeting
            context = {
                **data,
                "targets": {t.environment: t for t in targets},
                "diff": diff,
                "diff_variant": diff_variant,
                "path": _config_path(slug),
                "gateway_url": str(request.base_url).rstrip("/") + GATEWAY_PATH,
                "sticky": next((t.sticky_key for t in targets if t.sticky_key), None),
            }
            return self.render(request, "manage_config.html", context, error=error, values=values)

        return await self.guarded(request, page, CONFIGS, "Configs")

    async def create_variant(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["config"]
        form = None
        try:
            form = await read_form(request)
            body = validate(m.VariantIn, {**version_body(form), "name": form.get("name").strip()})
            variant = await self.api(request).change(
                lambda c: configs.create_variant(c, actor, ref, body, now())
            )
        except LLMOpsError as e:
            values = form.values() if form else None
            return await self.detail(request, FormError.of("create-variant", e), values)
        return redirect(request, _config_path(ref), f"Variant {variant.name} created (version 1)")

    async def create_version(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, variant = request.path_params["config"], request.path_params["variant"]
        form = None
        try:
            form = await read_form(request)
            body = validate(m.VersionIn, version_body(form))
            version, created = await self.api(request).change(
                lambda c: configs.create_version(c, actor, ref, variant, body, now())
            )
        except LLMOpsError as e:
            values = form.values() if form else None
            return await self.detail(request, FormError.of(f"version-{variant}", e), values)
        notice = (
            f"Version {version.version} of {variant} created"
            if created
            else f"Nothing changed: version {version.version} of {variant} already has this content"
        )
        return redirect(request, _config_path(ref), notice)

    async def put_targeting(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, env = request.path_params["config"], request.path_params["environment"]
        form, rows = None, list[int]()
        try:
            form = await read_form(request)
            data, rows = targeting_body(form)
            body = validate(m.TargetingIn, data)
            await self.api(request).change(
                lambda c: targeting.put_targeting(c, actor, ref, env, body, now())
            )
        except LLMOpsError as e:
            error = FormError.of(f"targeting-{env}", e)
            match = _ARM.match(e.param or "")
            if match and int(match.group(1)) < len(rows):
                row = rows[int(match.group(1))]
                error = FormError(
                    error.form, f"arm {row + 1}: {error.message}", f"arm-{row}", error.status
                )
            values = form.values() if form else None
            return await self.detail(request, error, values)
        return redirect(request, _config_path(ref), f"Targeting in {env} saved")

    async def confirm_stop(self, request: Request) -> Response:
        ref, env = request.path_params["config"], request.path_params["environment"]

        async def load() -> Response:
            current = await self.store.run(lambda c: targeting.get_targeting(c, ref, env))
            return self.confirm(
                request,
                title=f"Stop serving {ref} in {current.environment}?",
                message="Requests for this config with the environment's secrets get 404 "
                "no_targeting from the next request on.",
                action=f"{_config_path(ref)}/targeting/{quote(env)}/delete",
                button="Stop serving",
                cancel=_config_path(ref),
            )

        return await self.guarded(request, load, _config_path(ref), "Back to the config")

    async def stop(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, env = request.path_params["config"], request.path_params["environment"]
        try:
            await self.api(request).change(
                lambda c: targeting.delete_targeting(c, actor, ref, env, now())
            )
        except LLMOpsError as e:
            return self.not_found(request, e, _config_path(ref), "Back to the config")
        return redirect(request, _config_path(ref), f"{ref} no longer serves in {env}")
