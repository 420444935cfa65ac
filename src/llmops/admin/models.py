"""The management API's request and response bodies, as pydantic models.

Request models (``…In``, ``…Update``, ``…Query``) forbid unknown fields and carry the limits the
databases need (lengths, integer ranges, decimal precision), so what validates can be stored.
Response models are what the domain functions return; the OpenAPI document is generated from both.
Times are UTC; money is a decimal string (USD per million tokens).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from llmops.admin.document import PROVIDER_TYPES


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None
    if not 1970 <= value.year <= 9999:
        raise ValueError("the year must be between 1970 and 9999")
    return value


def _url(value: str) -> str:
    """A URL the gateway can call: it must split, with a host and a valid port."""
    try:
        parts = urlsplit(value)
        if not parts.hostname or parts.port == 0:
            raise ValueError
    except ValueError:
        raise ValueError("not a valid http(s) URL with a host") from None
    return value


SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Slug = Annotated[
    str,
    Field(pattern=SLUG_PATTERN, description="1–64 lowercase letters, digits, '-' or '_'"),
]
Ref = Annotated[str, Field(min_length=1, max_length=64, description="An id or a slug")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
VariantName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^/]+$", description="No '/'")
]
UtcTime = Annotated[dt.datetime, AfterValidator(_utc)]
URL_PATTERN = r"^https?://[A-Za-z0-9.\-_~%@:\[\]]+(/[!-~]*)?$"
Url = Annotated[str, Field(max_length=500, pattern=URL_PATTERN), AfterValidator(_url)]
Price = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]
ProviderType = Literal["openai", "azure", "anthropic", "openai-compatible"]
assert set(get_args(ProviderType)) == set(PROVIDER_TYPES)


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- environments and secrets -------------------------------------------------------------------


class EnvironmentIn(Input):
    slug: Slug
    name: Name | None = Field(None, description="Display name (default: the slug)")


class EnvironmentUpdate(Input):
    slug: Slug | None = None
    name: Name | None = None


class Environment(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    created_at: dt.datetime


class EnvironmentList(BaseModel):
    data: list[Environment]


class SecretIn(Input):
    expires_at: UtcTime | None = Field(None, description="When the secret stops working")


class SecretRotate(Input):
    overlap_seconds: int = Field(
        86_400,
        ge=0,
        le=366 * 86_400,
        description="How long the old secret keeps working (default 24 h)",
    )


class Secret(BaseModel):
    id: uuid.UUID
    environment_id: uuid.UUID
    prefix: str = Field(description="The public part of the secret, which names it")
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    active: bool


class NewSecret(Secret):
    token: str = Field(description="The secret itself: shown once, never again")


class SecretList(BaseModel):
    data: list[Secret]


class RotatedSecret(BaseModel):
    secret: NewSecret
    previous: Secret


# --- provider credentials -----------------------------------------------------------------------


class ProviderIn(Input):
    slug: Slug
    name: Name | None = None
    type: ProviderType
    base_url: Url | None = Field(None, description="Required for azure and openai-compatible")
    api_key: str | None = Field(
        None, min_length=1, max_length=4096, description="Stored encrypted; never returned"
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,199}$",
        description="Environment variable holding the key (instead of api_key)",
    )
    options: dict[str, Any] = Field(default_factory=dict)


class ProviderUpdate(Input):
    """Fields left out stay as they are; ``api_key: null`` removes the stored key. Setting
    ``api_key`` clears ``api_key_env`` and the other way round."""

    name: Name | None = None
    type: ProviderType | None = None
    base_url: Url | None = None
    api_key: str | None = Field(None, min_length=1, max_length=4096)
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
    options: dict[str, Any] | None = None


class Provider(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    type: str
    base_url: str | None
    has_api_key: bool = Field(description="Whether a key is stored (encrypted)")
    api_key_env: str | None
    options: dict[str, Any]
    disabled: bool
    disabled_at: dt.datetime | None
    created_at: dt.datetime


class ProviderList(BaseModel):
    data: list[Provider]


class ConnectionTest(BaseModel):
    ok: bool
    status: int | None = Field(description="The provider's HTTP status, if it answered")
    latency_ms: int
    error: str | None


# --- configs, variants, versions ----------------------------------------------------------------


class ConfigIn(Input):
    slug: Slug
    name: Name | None = None
    description: str = Field("", max_length=10_000)


class ConfigUpdate(Input):
    slug: Slug | None = None
    name: Name | None = None
    description: str | None = Field(None, max_length=10_000)


class PromptMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(min_length=1, max_length=64)
    content: str | list[Any]


class Prompt(Input):
    system: str | None = Field(None, max_length=100_000)
    messages: list[PromptMessage] | None = Field(None, max_length=100)


class VersionIn(Input):
    """The content of a variant version."""

    provider: Ref = Field(description="Provider credential id or slug")
    model: str = Field(min_length=1, max_length=200)
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Request parameters the variant sets (not model, messages, stream, metadata)",
    )
    prompt: Prompt = Field(default_factory=lambda: Prompt.model_validate({}))


class VariantIn(VersionIn):
    name: VariantName


class Config(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    created_at: dt.datetime


class ConfigList(BaseModel):
    data: list[Config]


class Version(BaseModel):
    variant_id: uuid.UUID
    version: int
    provider: str = Field(description="Provider credential slug")
    credential_id: uuid.UUID
    model: str
    parameters: dict[str, Any]
    prompt: dict[str, Any]
    content_hash: str
    created_at: dt.datetime


class VersionList(BaseModel):
    data: list[Version]


class Variant(BaseModel):
    id: uuid.UUID
    config_id: uuid.UUID
    name: str
    created_at: dt.datetime
    latest: Version | None


class VariantList(BaseModel):
    data: list[Variant]


class DiffQuery(Input):
    a: int = Field(ge=1, le=2**31 - 1, description="One version number")
    b: int = Field(ge=1, le=2**31 - 1, description="The other version number")


class FieldChange(BaseModel):
    field: str = Field(description="e.g. model, provider, parameters.temperature, prompt.system")
    old: Any = Field(description="The value in version a (null: absent)")
    new: Any = Field(description="The value in version b (null: absent)")


class VersionDiff(BaseModel):
    variant_id: uuid.UUID
    a: int
    b: int
    changes: list[FieldChange]


# --- targeting ----------------------------------------------------------------------------------


class ArmIn(Input):
    variant: str = Field(min_length=1, max_length=200, description="Variant id or name")
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Pin a version; null follows the latest"
    )
    weight: int = Field(1, ge=0, le=1_000_000)


class TargetingIn(Input):
    sticky_key: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Tag whose value keeps a caller on one arm (e.g. userId); null: random",
    )
    arms: list[ArmIn] = Field(min_length=1, max_length=100)


class Arm(BaseModel):
    variant_id: uuid.UUID
    variant: str
    version: int | None
    weight: int


class Targeting(BaseModel):
    config_id: uuid.UUID
    environment_id: uuid.UUID
    environment: str = Field(description="Environment slug")
    sticky_key: str | None
    arms: list[Arm]
    updated_at: dt.datetime


class TargetingList(BaseModel):
    data: list[Targeting]


class ConfigDetail(Config):
    variants: list[Variant]
    targeting: list[Targeting]


# --- prices, audit, identity --------------------------------------------------------------------


class PriceOverrideIn(Input):
    provider: str | None = Field(
        None, min_length=1, max_length=64, description="Provider type; null: any"
    )
    model_pattern: str = Field(min_length=1, max_length=200, description="Model name or glob")
    input: Price
    output: Price
    cache_read: Price | None = None
    cache_write: Price | None = None
    reasoning: Price | None = None
    effective_from: UtcTime | None = Field(None, description="Default: now")
    note: str = Field("", max_length=2000)


class PriceOverride(BaseModel):
    id: uuid.UUID
    provider: str | None
    model_pattern: str
    input: Decimal
    output: Decimal
    cache_read: Decimal | None
    cache_write: Decimal | None
    reasoning: Decimal | None
    effective_from: dt.datetime
    note: str
    created_at: dt.datetime


class PriceOverrideList(BaseModel):
    data: list[PriceOverride]


class AuditQuery(Input):
    target_type: str | None = Field(None, min_length=1, max_length=64)
    target_id: str | None = Field(None, min_length=1, max_length=200)
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the last page")


class AuditEntry(BaseModel):
    id: uuid.UUID
    created_at: dt.datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    data: list[AuditEntry]
    next_cursor: str | None


class Me(BaseModel):
    user_id: uuid.UUID
    username: str
    auth: str
    actor: str
    token_prefix: str | None
    csrf_token: str | None
