"""The management API's routes under ``/llmops/api/v1``, each documented in the OpenAPI document.

``management_routes(services, doc)`` is what ``create_app`` mounts. Entities are named in paths by
id or slug (variants by id or name, secrets by prefix). Status codes: 200 read or changed, 201
created, 204 deleted (soft: request history is kept), 400 invalid input (``param`` names the field),
401/403 not an admin, 404 unknown, 409 conflicts (a taken slug, deleting something in use).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from llmops.admin import models as m
from llmops.admin.api import ManagementApi, ManagementServices
from llmops.admin.openapi import ApiDoc, ApiRoutes
from llmops.admin.web import ME_PATH

API_PREFIX = "/llmops/api/v1"

ENV = {"environment": "Environment id or slug"}
PROVIDER = {"provider": "Provider credential id or slug"}
CONFIG = {"config": "Config id or slug"}
VARIANT = {**CONFIG, "variant": "Variant id or name"}
APPLY_DOCUMENT = {
    "type": "object",
    "description": "An `llmops apply` document (see examples/llmops.yaml)",
    "properties": {
        key: {"type": "array", "items": {"type": "object"}}
        for key in ("environments", "providers", "configs")
    },
    "required": ["environments", "providers", "configs"],
}


def management_routes(services: ManagementServices, doc: ApiDoc) -> list[BaseRoute]:
    api = ManagementApi(services)
    r = ApiRoutes(doc, API_PREFIX)
    doc.add(
        "GET",
        ME_PATH,
        summary="The calling admin",
        description="For a session, also the CSRF token that writes need.",
        response_model=m.Me,
        tags=("identity",),
        operation_id="get_me",
    )
    r.add(
        "GET",
        "/openapi.json",
        doc.serve,
        summary="This OpenAPI document",
        tags=("meta",),
        operation_id="get_openapi",
    )

    env = ("environments",)
    r.add("GET", "/environments", api.list_environments, summary="List environments",
          response_model=m.EnvironmentList, tags=env)  # fmt: skip
    r.add("POST", "/environments", api.create_environment, summary="Create an environment",
          request_model=m.EnvironmentIn, response_model=m.Environment, status=201,
          errors=(409,), tags=env)  # fmt: skip
    r.add("GET", "/environments/{environment}", api.get_environment, summary="Get an environment",
          response_model=m.Environment, path_params=ENV, tags=env)  # fmt: skip
    r.add("PATCH", "/environments/{environment}", api.update_environment,
          summary="Rename an environment", request_model=m.EnvironmentUpdate,
          response_model=m.Environment, path_params=ENV, errors=(409,), tags=env)  # fmt: skip
    r.add("DELETE", "/environments/{environment}", api.delete_environment,
          summary="Delete an environment (soft; its secrets are revoked)", status=204,
          path_params=ENV, tags=env)  # fmt: skip
    sec = ("secrets",)
    secret = {**ENV, "prefix": "The secret's prefix (llmops_xxxxxxxx)"}
    r.add("GET", "/environments/{environment}/secrets", api.list_secrets,
          summary="List an environment's secrets (prefixes only)", response_model=m.SecretList,
          path_params=ENV, tags=sec)  # fmt: skip
    r.add("POST", "/environments/{environment}/secrets", api.create_secret,
          summary="Create a secret (the token is in this response only)",
          request_model=m.SecretIn, request_required=False, response_model=m.NewSecret,
          status=201, path_params=ENV, tags=sec)  # fmt: skip
    r.add("POST", "/environments/{environment}/secrets/{prefix}/revoke", api.revoke_secret,
          summary="Revoke a secret at once", response_model=m.Secret, path_params=secret,
          tags=sec)  # fmt: skip
    r.add("POST", "/environments/{environment}/secrets/{prefix}/rotate", api.rotate_secret,
          summary="Rotate a secret: a new one, and the old one expires after an overlap",
          request_model=m.SecretRotate, request_required=False, response_model=m.RotatedSecret,
          status=201, path_params=secret, errors=(409,), tags=sec)  # fmt: skip

    prov = ("providers",)
    r.add("GET", "/providers", api.list_providers, summary="List provider credentials",
          response_model=m.ProviderList, tags=prov)  # fmt: skip
    r.add("POST", "/providers", api.create_provider, summary="Create a provider credential",
          request_model=m.ProviderIn, response_model=m.Provider, status=201, errors=(409,),
          tags=prov)  # fmt: skip
    r.add("GET", "/providers/{provider}", api.get_provider, summary="Get a provider credential",
          response_model=m.Provider, path_params=PROVIDER, tags=prov)  # fmt: skip
    r.add("PATCH", "/providers/{provider}", api.update_provider,
          summary="Update a provider credential (including its key)",
          request_model=m.ProviderUpdate, response_model=m.Provider, path_params=PROVIDER,
          tags=prov)  # fmt: skip
    r.add("DELETE", "/providers/{provider}", api.delete_provider,
          summary="Delete a provider credential (soft; 409 while it serves a config)",
          status=204, path_params=PROVIDER, errors=(409,), tags=prov)  # fmt: skip
    r.add("POST", "/providers/{provider}/test", api.test_provider,
          summary="Test the connection: list the provider's models with the key",
          response_model=m.ConnectionTest, path_params=PROVIDER, tags=prov)  # fmt: skip
    r.add("POST", "/providers/{provider}/disable", api.disable_provider,
          summary="Disable: the gateway answers 403 credential_disabled for it",
          response_model=m.Provider, path_params=PROVIDER, tags=prov)  # fmt: skip
    r.add("POST", "/providers/{provider}/enable", api.enable_provider,
          summary="Enable a disabled provider credential", response_model=m.Provider,
          path_params=PROVIDER, tags=prov)  # fmt: skip

    cfg = ("configs",)
    r.add("GET", "/configs", api.list_configs, summary="List configs",
          response_model=m.ConfigList, tags=cfg)  # fmt: skip
    r.add("POST", "/configs", api.create_config, summary="Create a config",
          request_model=m.ConfigIn, response_model=m.Config, status=201, errors=(409,),
          tags=cfg)  # fmt: skip
    r.add("GET", "/configs/{config}", api.get_config,
          summary="Get a config with its variants and targeting", response_model=m.ConfigDetail,
          path_params=CONFIG, tags=cfg)  # fmt: skip
    r.add("PATCH", "/configs/{config}", api.update_config, summary="Update a config",
          request_model=m.ConfigUpdate, response_model=m.Config, path_params=CONFIG,
          errors=(409,), tags=cfg)  # fmt: skip
    r.add("DELETE", "/configs/{config}", api.delete_config,
          summary="Delete a config (soft)", status=204, path_params=CONFIG, tags=cfg)  # fmt: skip
    var = ("variants",)
    r.add("GET", "/configs/{config}/variants", api.list_variants, summary="List variants",
          response_model=m.VariantList, path_params=CONFIG, tags=var)  # fmt: skip
    r.add("POST", "/configs/{config}/variants", api.create_variant,
          summary="Create a variant with its version 1", request_model=m.VariantIn,
          response_model=m.Variant, status=201, path_params=CONFIG, errors=(409,),
          tags=var)  # fmt: skip
    r.add("DELETE", "/configs/{config}/variants/{variant}", api.delete_variant,
          summary="Delete a variant (soft; 409 while targeted)", status=204,
          path_params=VARIANT, errors=(409,), tags=var)  # fmt: skip
    r.add("GET", "/configs/{config}/variants/{variant}/versions", api.list_versions,
          summary="List a variant's versions", response_model=m.VersionList,
          path_params=VARIANT, tags=var)  # fmt: skip
    r.add("POST", "/configs/{config}/variants/{variant}/versions", api.create_version,
          summary="Create a new immutable version",
          description="Content equal to the latest version creates nothing: 200 with the "
          "latest version (201 when a version was created).",
          request_model=m.VersionIn, response_model=m.Version, status=201, alternate_status=200,
          path_params=VARIANT, tags=var)  # fmt: skip
    r.add("GET", "/configs/{config}/variants/{variant}/versions/diff", api.diff_versions,
          summary="The fields that differ between versions a and b", params=m.DiffQuery,
          response_model=m.VersionDiff, path_params=VARIANT, tags=var)  # fmt: skip
    r.add("GET", "/configs/{config}/variants/{variant}/versions/{version:int}", api.get_version,
          summary="Get one version", response_model=m.Version,
          path_params={**VARIANT, "version": "Version number"}, tags=var)  # fmt: skip

    tgt = ("targeting",)
    target = {**CONFIG, **ENV}
    r.add("GET", "/configs/{config}/targeting", api.list_targeting,
          summary="A config's targeting in every environment", response_model=m.TargetingList,
          path_params=CONFIG, tags=tgt)  # fmt: skip
    r.add("GET", "/configs/{config}/targeting/{environment}", api.get_targeting,
          summary="A config's targeting in one environment", response_model=m.Targeting,
          path_params=target, tags=tgt)  # fmt: skip
    r.add("PUT", "/configs/{config}/targeting/{environment}", api.put_targeting,
          summary="Set which variant versions serve, with weights and a sticky key",
          request_model=m.TargetingIn, response_model=m.Targeting, path_params=target,
          tags=tgt)  # fmt: skip
    r.add("DELETE", "/configs/{config}/targeting/{environment}", api.delete_targeting,
          summary="Stop serving the config in the environment", status=204,
          path_params=target, tags=tgt)  # fmt: skip

    price = ("prices",)
    r.add("GET", "/prices/overrides", api.list_price_overrides, summary="List price overrides",
          response_model=m.PriceOverrideList, tags=price)  # fmt: skip
    r.add("POST", "/prices/overrides", api.create_price_override,
          summary="Add a price override (USD per million tokens)",
          request_model=m.PriceOverrideIn, response_model=m.PriceOverride, status=201,
          tags=price)  # fmt: skip
    r.add("DELETE", "/prices/overrides/{override}", api.delete_price_override,
          summary="Delete a price override", status=204,
          path_params={"override": "Price override id"}, tags=price)  # fmt: skip

    r.add("GET", "/audit", api.list_audit, summary="The audit log, newest first",
          params=m.AuditQuery, response_model=m.AuditPage, tags=("audit",))  # fmt: skip
    r.add("GET", "/export.yaml", api.export_yaml,
          summary="The configuration as an `llmops apply` document (API keys are not exported)",
          response_media_type="application/yaml", response_schema=APPLY_DOCUMENT,
          tags=("export",))  # fmt: skip
    return r.routes
