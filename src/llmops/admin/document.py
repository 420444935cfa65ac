"""Parse and validate an `llmops apply` YAML document into plain, checked specs.

Every error names the path of the offending field (``configs[0].variants[1].provider``) so a user
can fix the file without reading our code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PROVIDER_TYPES = ("openai", "azure", "anthropic", "openai-compatible")
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class DocumentError(ValueError):
    """The document is invalid; the message starts with the offending path."""


@dataclass(frozen=True)
class EnvironmentSpec:
    slug: str
    name: str


@dataclass(frozen=True)
class ProviderSpec:
    slug: str
    name: str
    type: str
    base_url: str | None
    api_key: str | None
    api_key_env: str | None
    options: dict[str, Any]


@dataclass(frozen=True)
class VariantSpec:
    name: str
    provider: str
    model: str
    parameters: dict[str, Any]
    prompt: dict[str, Any]


@dataclass(frozen=True)
class ArmSpec:
    variant: str
    weight: int
    version: int | None


@dataclass(frozen=True)
class TargetingSpec:
    environment: str
    sticky_key: str | None
    arms: tuple[ArmSpec, ...]


@dataclass(frozen=True)
class ConfigSpec:
    slug: str
    name: str
    description: str
    variants: tuple[VariantSpec, ...]
    targeting: tuple[TargetingSpec, ...]


@dataclass(frozen=True)
class Document:
    environments: tuple[EnvironmentSpec, ...] = ()
    providers: tuple[ProviderSpec, ...] = ()
    configs: tuple[ConfigSpec, ...] = field(default=())


def parse_document(data: Any) -> Document:
    root = _mapping(data, "document", {"environments", "providers", "configs"})
    envs = tuple(_environment(e, f"environments[{i}]") for i, e in _items(root, "environments"))
    providers = tuple(_provider(p, f"providers[{i}]") for i, p in _items(root, "providers"))
    configs = tuple(_config(c, f"configs[{i}]") for i, c in _items(root, "configs"))
    _unique([e.slug for e in envs], "environments", "slug")
    _unique([p.slug for p in providers], "providers", "slug")
    _unique([c.slug for c in configs], "configs", "slug")
    return Document(environments=envs, providers=providers, configs=configs)


def _environment(raw: Any, path: str) -> EnvironmentSpec:
    if isinstance(raw, str):
        raw = {"slug": raw}
    m = _mapping(raw, path, {"slug", "name"})
    slug = _slug(m, path)
    return EnvironmentSpec(slug=slug, name=_str(m, "name", path, default=slug))


def _provider(raw: Any, path: str) -> ProviderSpec:
    m = _mapping(
        raw, path, {"slug", "name", "type", "base_url", "api_key", "api_key_env", "options"}
    )
    slug = _slug(m, path)
    type_ = _str(m, "type", path)
    if type_ not in PROVIDER_TYPES:
        raise DocumentError(f"{path}.type: must be one of {', '.join(PROVIDER_TYPES)}")
    base_url = _str(m, "base_url", path, default=DEFAULT_BASE_URLS.get(type_))
    if base_url is None:
        raise DocumentError(f"{path}.base_url: required for provider type {type_!r}")
    if not base_url.startswith(("http://", "https://")):
        raise DocumentError(f"{path}.base_url: must start with http:// or https://")
    api_key = _str(m, "api_key", path, default=None)
    api_key_env = _str(m, "api_key_env", path, default=None)
    if api_key and api_key_env:
        raise DocumentError(f"{path}: give api_key or api_key_env, not both")
    options = _mapping(m.get("options", {}), f"{path}.options", None)
    return ProviderSpec(
        slug=slug,
        name=_str(m, "name", path, default=slug),
        type=type_,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        api_key_env=api_key_env,
        options=dict(options),
    )


def _variant(raw: Any, path: str) -> VariantSpec:
    m = _mapping(raw, path, {"name", "provider", "model", "parameters", "prompt"})
    prompt = _mapping(m.get("prompt", {}), f"{path}.prompt", {"system", "messages"})
    if "system" in prompt and not isinstance(prompt["system"], str):
        raise DocumentError(f"{path}.prompt.system: must be a string")
    for j, msg in enumerate(prompt.get("messages", [])):
        mm = _mapping(msg, f"{path}.prompt.messages[{j}]", None)
        if not isinstance(mm.get("role"), str) or "content" not in mm:
            raise DocumentError(f"{path}.prompt.messages[{j}]: needs role and content")
    params = _mapping(m.get("parameters", {}), f"{path}.parameters", None)
    for reserved in ("model", "messages", "stream", "metadata"):
        if reserved in params:
            raise DocumentError(f"{path}.parameters.{reserved}: not a variant parameter")
    return VariantSpec(
        name=_str(m, "name", path),
        provider=_str(m, "provider", path),
        model=_str(m, "model", path),
        parameters=dict(params),
        prompt=dict(prompt),
    )


def _targeting(env: str, raw: Any, path: str) -> TargetingSpec:
    m = _mapping(raw, path, {"variant", "version", "variants", "sticky_key"})
    if "variant" in m:
        if "variants" in m:
            raise DocumentError(f"{path}: give variant or variants, not both")
        arms: tuple[ArmSpec, ...] = (_arm({**m, "weight": 1}, path, with_sticky=True),)
    else:
        items = m.get("variants")
        if not isinstance(items, list) or not items:
            raise DocumentError(f"{path}.variants: a non-empty list of {{variant, weight}}")
        arms = tuple(_arm(a, f"{path}.variants[{i}]") for i, a in enumerate(items))
        if sum(a.weight for a in arms) <= 0:
            raise DocumentError(f"{path}.variants: weights must add up to more than 0")
    return TargetingSpec(
        environment=env, sticky_key=_str(m, "sticky_key", path, default=None), arms=arms
    )


def _arm(raw: Any, path: str, with_sticky: bool = False) -> ArmSpec:
    allowed = {"variant", "weight", "version"} | ({"sticky_key"} if with_sticky else set())
    m = _mapping(raw, path, allowed)
    weight = m.get("weight", 1)
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
        raise DocumentError(f"{path}.weight: must be a whole number ≥ 0")
    version = m.get("version")
    if version is not None and (not isinstance(version, int) or version < 1):
        raise DocumentError(f"{path}.version: must be a version number ≥ 1")
    return ArmSpec(variant=_str(m, "variant", path), weight=weight, version=version)


def _config(raw: Any, path: str) -> ConfigSpec:
    m = _mapping(raw, path, {"slug", "name", "description", "variants", "targeting"})
    slug = _slug(m, path)
    variants = tuple(_variant(v, f"{path}.variants[{i}]") for i, v in _items(m, "variants"))
    _unique([v.name for v in variants], f"{path}.variants", "name")
    names = {v.name for v in variants}
    tmap = _mapping(m.get("targeting", {}), f"{path}.targeting", None)
    targeting = tuple(_targeting(str(env), t, f"{path}.targeting.{env}") for env, t in tmap.items())
    for t in targeting:
        for arm in t.arms:
            if arm.variant not in names:
                raise DocumentError(
                    f"{path}.targeting.{t.environment}: unknown variant {arm.variant!r}"
                )
    return ConfigSpec(
        slug=slug,
        name=_str(m, "name", path, default=slug),
        description=_str(m, "description", path, default=""),
        variants=variants,
        targeting=targeting,
    )


def _mapping(raw: Any, path: str, allowed: set[str] | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DocumentError(f"{path}: expected a mapping")
    if allowed is not None:
        for key in raw:
            if key not in allowed:
                raise DocumentError(
                    f"{path}.{key}: unknown field (allowed: {', '.join(sorted(allowed))})"
                )
    return raw


def _items(m: dict[str, Any], key: str) -> list[tuple[int, Any]]:
    value = m.get(key) or []
    if not isinstance(value, list):
        raise DocumentError(f"{key}: expected a list")
    return list(enumerate(value))


_MISSING: Any = object()


def _str(m: dict[str, Any], key: str, path: str, default: Any = _MISSING) -> Any:
    value = m.get(key, default)
    if value is _MISSING:
        raise DocumentError(f"{path}.{key}: required")
    if value is not None and not isinstance(value, str):
        raise DocumentError(f"{path}.{key}: must be a string")
    return value


def _slug(m: dict[str, Any], path: str) -> str:
    slug: str = _str(m, "slug", path)
    if not _SLUG.match(slug):
        raise DocumentError(
            f"{path}.slug: {slug!r} must be 1–64 lowercase letters, digits, '-' or '_'"
        )
    return slug


def _unique(values: list[str], path: str, what: str) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise DocumentError(f"{path}: duplicate {what} {v!r}")
        seen.add(v)
