"""Environments and their secrets: list, create, rename, delete (confirmed); per environment its
secrets: create (the token is shown once, on the result page), rotate with an overlap, revoke
(confirmed). Each action calls the same ``admin.environments`` function as the management API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmops.admin import environments
from llmops.admin import models as m
from llmops.admin.guard import require_admin
from llmops.admin.inputs import validate
from llmops.dashboard.forms import FormError, now, quote, read_form, redirect
from llmops.dashboard.manage import Pages
from llmops.errors import InvalidRequest, LLMOpsError

ENVS = "/llmops/environments"
ENV = ENVS + "/{environment}"
SECRET = ENV + "/secrets/{prefix}"


def _rotation(hours: str) -> m.SecretRotate:
    """The overlap as typed on the form (hours) as the API's ``overlap_seconds``."""
    try:
        seconds = round(float(hours) * 3600)
    except (ValueError, OverflowError):
        seconds = -1
    if not 0 <= seconds <= 366 * 86_400:
        message = "overlap_hours: a number of hours from 0 to 8784"
        raise InvalidRequest(message, param="overlap_hours")
    return validate(m.SecretRotate, {"overlap_seconds": seconds})


def _env_path(slug: str) -> str:
    return f"{ENVS}/{quote(slug)}"


class EnvironmentPages(Pages):
    def routes(self) -> list[BaseRoute]:
        return [
            Route(ENVS, self.index, methods=["GET"]),
            Route(ENVS, self.create, methods=["POST"]),
            Route(ENV, self.detail, methods=["GET"]),
            Route(ENV + "/rename", self.rename, methods=["POST"]),
            Route(ENV + "/delete", self.confirm_delete, methods=["GET"]),
            Route(ENV + "/delete", self.delete, methods=["POST"]),
            Route(ENV + "/secrets", self.create_secret, methods=["POST"]),
            Route(SECRET + "/rotate", self.rotate_secret, methods=["POST"]),
            Route(SECRET + "/revoke", self.confirm_revoke, methods=["GET"]),
            Route(SECRET + "/revoke", self.revoke_secret, methods=["POST"]),
        ]

    async def index(
        self, request: Request, error: FormError | None = None, values: dict[str, str] | None = None
    ) -> Response:
        def load(conn: Any) -> list[dict[str, Any]]:
            out = []
            for env in environments.list_environments(conn).data:
                secrets = environments.list_secrets(conn, str(env.id), now()).data
                out.append({"env": env, "active": sum(1 for s in secrets if s.active)})
            return out

        rows = await self.store.run(load)
        context = {"rows": rows}
        return self.render(request, "manage_envs.html", context, error=error, values=values)

    async def create(self, request: Request) -> Response:
        actor = require_admin(request).actor
        form = None
        try:
            form = await read_form(request)
            body = validate(m.EnvironmentIn, {"slug": form.get("slug"), "name": form.text("name")})
            env = await self.api(request).change(
                lambda c: environments.create_environment(c, actor, body, now())
            )
        except LLMOpsError as e:
            values = form.values() if form else None
            return await self.index(request, FormError.of("create-environment", e), values)
        notice = f"Environment {env.slug} created. Create a secret for it below."
        return redirect(request, _env_path(env.slug), notice)

    async def detail(
        self, request: Request, error: FormError | None = None, values: dict[str, str] | None = None
    ) -> Response:
        ref = request.path_params["environment"]

        async def load() -> Response:
            env, secrets = await self.store.run(
                lambda c: (
                    environments.get_environment(c, ref),
                    environments.list_secrets(c, ref, now()).data,
                )
            )
            context = {"env": env, "secrets": secrets[::-1], "path": _env_path(env.slug)}
            return self.render(request, "manage_env.html", context, error=error, values=values)

        return await self.guarded(request, load, ENVS, "Environments")

    async def rename(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["environment"]
        form = None
        try:
            form = await read_form(request)
            data = {"slug": form.text("slug"), "name": form.text("name")}
            body = validate(m.EnvironmentUpdate, {k: v for k, v in data.items() if v is not None})
            env = await self.api(request).change(
                lambda c: environments.update_environment(c, actor, ref, body, now())
            )
        except LLMOpsError as e:
            values = form.values() if form else None
            return await self.detail(request, FormError.of("rename-environment", e), values)
        return redirect(request, _env_path(env.slug), "Environment saved")

    async def confirm_delete(self, request: Request) -> Response:
        ref = request.path_params["environment"]

        async def load() -> Response:
            env = await self.store.run(lambda c: environments.get_environment(c, ref))
            return self.confirm(
                request,
                title=f"Delete environment {env.slug}?",
                message="Its secrets are revoked at once: every application using them gets "
                "401 from the next request on. Its request history is kept.",
                action=_env_path(env.slug) + "/delete",
                button="Delete environment",
                cancel=_env_path(env.slug),
            )

        return await self.guarded(request, load, ENVS, "Environments")

    async def delete(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["environment"]
        try:
            await self.api(request).change(
                lambda c: environments.delete_environment(c, actor, ref, now())
            )
        except LLMOpsError as e:
            return self.not_found(request, e, ENVS, "Environments")
        return redirect(request, ENVS, f"Environment {ref} deleted")

    async def create_secret(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["environment"]
        try:
            await read_form(request)
            body = m.SecretIn(expires_at=None)
            new = await self.api(request).change(
                lambda c: environments.create_secret(c, actor, ref, body, now())
            )
            env = await self.store.run(lambda c: environments.get_environment(c, ref))
        except LLMOpsError as e:
            return await self.detail(request, FormError.of("create-secret", e))
        return self._show_secret(request, env, new, None)

    async def rotate_secret(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, prefix = request.path_params["environment"], request.path_params["prefix"]
        form = None
        try:
            form = await read_form(request)
            body = _rotation(form.text("overlap_hours") or "24")
            rotated = await self.api(request).change(
                lambda c: environments.rotate_secret(c, actor, ref, prefix, body, now())
            )
            env = await self.store.run(lambda c: environments.get_environment(c, ref))
        except LLMOpsError as e:
            values = form.values() if form else None
            return await self.detail(request, FormError.of(f"rotate-{prefix}", e), values)
        return self._show_secret(request, env, rotated.secret, rotated.previous)

    def _show_secret(
        self, request: Request, env: m.Environment, new: m.NewSecret, previous: m.Secret | None
    ) -> Response:
        context = {"env": env, "new": new, "previous": previous, "path": _env_path(env.slug)}
        return self.render(request, "manage_secret.html", context, status=201)

    async def confirm_revoke(self, request: Request) -> Response:
        ref, prefix = request.path_params["environment"], request.path_params["prefix"]

        async def load() -> Response:
            env = await self.store.run(lambda c: environments.get_environment(c, ref))
            return self.confirm(
                request,
                title=f"Revoke secret {prefix}?",
                message=f"Applications using it in {env.slug} get 401 from the next request on. "
                "This cannot be undone.",
                action=f"{_env_path(env.slug)}/secrets/{quote(prefix)}/revoke",
                button="Revoke secret",
                cancel=_env_path(env.slug),
            )

        return await self.guarded(request, load, ENVS, "Environments")

    async def revoke_secret(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref, prefix = request.path_params["environment"], request.path_params["prefix"]
        try:
            await self.api(request).change(
                lambda c: environments.revoke_secret(c, actor, ref, prefix, now())
            )
        except LLMOpsError as e:
            return self.not_found(request, e, ENVS, "Environments")
        return redirect(request, _env_path(ref), f"Secret {prefix} revoked")
