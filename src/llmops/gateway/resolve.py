"""Resolve a request to what serves it: config → targeting → variant version → credential.

Precedence when a variant serves the request: the variant's model replaces the requested one (the
requested one is logged as ``requested_model``), and each parameter the variant sets overrides the
request's, so a config change takes effect without a client deploy. The variant's prompt messages
are rendered with the body's ``input_variables`` and placed before the request's messages.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from typing import Any

from llmops.errors import InvalidRequest, NotFound, PermissionDenied
from llmops.gateway.snapshot import Config, Credential, Environment, Snapshot, VariantVersion

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_rng = random.Random()


@dataclass(slots=True)
class Route:
    credential: Credential
    model: str
    config: Config | None = None
    variant: VariantVersion | None = None


def resolve(
    snapshot: Snapshot,
    env: Environment,
    config_ref: str | None,
    body: dict[str, Any],
    tags: dict[str, str],
) -> Route:
    """Choose the route for ``body`` and apply the variant to it (``body`` is changed in place)."""
    if config_ref:
        return _resolve_config(snapshot, env, config_ref, body, tags)
    model = body.get("model")
    if isinstance(model, str) and model.startswith("@") and "/" in model:
        slug, _, upstream_model = model[1:].partition("/")
        cred = snapshot.credentials.get(slug)
        if cred is None:
            raise NotFound(
                f"unknown provider credential {slug!r}", param="model", code="provider_not_found"
            )
        _check_enabled(cred)
        body["model"] = upstream_model
        return Route(credential=cred, model=upstream_model)
    raise InvalidRequest(
        "name a config in the x-llmops-config header, or a provider in the model as "
        "'@<provider>/<model>'",
        param="model",
        code="no_route",
    )


def _resolve_config(
    snapshot: Snapshot, env: Environment, ref: str, body: dict[str, Any], tags: dict[str, str]
) -> Route:
    config = snapshot.configs.get(ref)
    if config is None:
        raise NotFound(f"unknown config {ref!r}", param="x-llmops-config", code="config_not_found")
    targeting = config.targeting.get(env.id)
    if targeting is None or targeting.total_weight <= 0:
        raise NotFound(
            f"config {config.slug!r} has no variant targeted in environment {env.slug!r}",
            param="x-llmops-config",
            code="no_targeting",
        )
    arms = targeting.arms
    if len(arms) == 1:
        arm = arms[0]
    else:
        sticky = tags.get(targeting.sticky_key) if targeting.sticky_key else None
        if sticky is not None:
            point = zlib.crc32(f"{config.id}:{sticky}".encode()) % targeting.total_weight
        else:
            point = _rng.randrange(targeting.total_weight)
        for arm in arms:
            point -= arm.weight
            if point < 0:
                break
    variant = snapshot.version_for(arm)
    if variant is None:
        raise NotFound(
            f"config {config.slug!r} targets a variant that no longer exists",
            param="x-llmops-config",
            code="variant_not_found",
        )
    _check_enabled(variant.credential)
    apply_variant(variant, body)
    return Route(credential=variant.credential, model=variant.model, config=config, variant=variant)


def _check_enabled(cred: Credential) -> None:
    if cred.disabled:
        raise PermissionDenied(
            f"provider credential {cred.slug!r} is disabled", code="credential_disabled"
        )


def apply_variant(variant: VariantVersion, body: dict[str, Any]) -> None:
    body["model"] = variant.model
    for key, value in variant.parameters.items():
        body[key] = value
    variables = body.pop("input_variables", None)
    prompt = variant.prompt
    if not prompt:
        return
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise InvalidRequest("input_variables must be an object", param="input_variables")
    rendered: list[dict[str, Any]] = []
    if "system" in prompt:
        rendered.append({"role": "system", "content": _render(prompt["system"], variables)})
    for msg in prompt.get("messages", ()):
        rendered.append({**msg, "content": _render_content(msg["content"], variables)})
    if "messages" in body or "prompt" not in body:
        messages = body.get("messages") or []
        body["messages"] = rendered + list(messages)


def _render_content(content: Any, variables: dict[str, Any]) -> Any:
    if isinstance(content, str):
        return _render(content, variables)
    if isinstance(content, list):
        return [
            {**p, "text": _render(p["text"], variables)}
            if isinstance(p, dict) and isinstance(p.get("text"), str)
            else p
            for p in content
        ]
    return content


def _render(template: str, variables: dict[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in variables:
            raise InvalidRequest(
                f"the prompt needs input variable {name!r}", param=f"input_variables.{name}"
            )
        return str(variables[name])

    return _VAR.sub(sub, template)
