"""The OpenAPI 3.1 document of the JSON APIs under ``/llmops/api/v1``, built from pydantic models.

One ``ApiDoc`` is made by ``create_app`` and handed to every module that serves JSON API routes;
each registers its operations, and ``GET /llmops/api/v1/openapi.json`` serves them all as one
document (built on first request, rebuilt after a later ``add``).

Registering an operation — the route and its documentation side by side, so they cannot drift::

    from llmops.admin.openapi import ApiDoc, ApiRoutes

    def analytics_routes(services: ..., doc: ApiDoc) -> list[BaseRoute]:
        api = ApiRoutes(doc, "/llmops/api/v1/analytics", tags=("analytics",))
        api.add(
            "GET", "/summary", summary_handler,          # a Starlette endpoint
            summary="Totals over a time range",
            params=SummaryQuery,                          # pydantic model: the query parameters
            response_model=Summary,                       # pydantic model: the 200 body
        )
        api.add("POST", "/views/{view}", save_view, summary="Save a view",
                request_model=ViewIn, response_model=View, status=201, errors=(409,))
        return api.routes                                 # Starlette ``Route`` objects to mount

or, for a route built some other way, ``doc.add("GET", "/llmops/api/v1/x/{id}", summary=...,
response_model=X)`` alone. Conventions:

- Paths are absolute; ``{name}`` and Starlette's ``{name:int}`` both become a path parameter
  (string, or integer ≥ 1), described by ``path_params={"name": "what it names"}`` if wanted.
- Request models are documented as pydantic validates them (``mode="validation"``), responses as
  pydantic serialises them (``mode="serialization"``): return ``model.model_dump(mode="json")``.
- Every operation answers 401/403 with the OpenAI error envelope (``ErrorEnvelope``); 400 is added
  when the operation takes a body or query, 404 when its path has parameters, 413 with a body;
  list any other status in ``errors`` (e.g. ``(409,)``). ``status=204`` documents no body.
- ``response_media_type`` (e.g. ``"text/csv"``) documents a non-JSON body as a string, or as
  ``response_schema`` (a JSON schema) when the body is structured (YAML).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

Endpoint = Callable[[Request], Awaitable[Response]]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")
_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Invalid request: `error.param` names the field",
    401: "Admin authentication required (Bearer admin API token or session cookie)",
    403: "Forbidden (a session's write without its CSRF token)",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
}


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(BaseModel):
    """The OpenAI error envelope every error response uses."""

    error: ErrorBody


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: {name}
    summary: str
    operation_id: str
    description: str = ""
    tags: tuple[str, ...] = ()
    request_model: type[BaseModel] | None = None
    request_required: bool = True
    response_model: type[BaseModel] | None = None
    response_media_type: str = "application/json"
    response_schema: dict[str, Any] | None = None
    status: int = 200
    params: type[BaseModel] | None = None
    path_params: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    alternate_status: int | None = None


class ApiDoc:
    """The operations of the JSON APIs, and the OpenAPI document describing them."""

    def __init__(
        self,
        title: str = "LLMOps API",
        version: str = "1",
        description: str = (
            "Management (and analytics) API of the LLMOps gateway. Authenticate with "
            "`Authorization: Bearer <admin API token>` (`llmops admin token create`). Errors use "
            'the OpenAI envelope `{"error": {"message", "type", "param", "code"}}`; `param` names '
            "the offending field."
        ),
    ) -> None:
        self.title = title
        self.version = version
        self.description = description
        self.operations: list[Operation] = []
        self._document: dict[str, Any] | None = None

    def add(
        self,
        method: Method,
        path: str,
        *,
        summary: str,
        description: str = "",
        operation_id: str | None = None,
        tags: Iterable[str] = (),
        request_model: type[BaseModel] | None = None,
        request_required: bool = True,
        response_model: type[BaseModel] | None = None,
        response_media_type: str = "application/json",
        response_schema: dict[str, Any] | None = None,
        status: int = 200,
        params: type[BaseModel] | None = None,
        path_params: Mapping[str, str] | None = None,
        errors: Iterable[int] = (),
        alternate_status: int | None = None,
    ) -> None:
        """Document one operation (see the module docstring). ``alternate_status``: another
        success status with the same body (200 for an idempotent create that changed nothing)."""
        clean = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        op_id = operation_id or _operation_id(method, clean)
        for op in self.operations:
            if (op.method, op.path) == (method, clean) or op.operation_id == op_id:
                raise ValueError(f"{method} {clean} ({op_id}) is documented twice")
        described = path_params or {}
        schemas: dict[str, dict[str, Any]] = {}
        for m in _PARAM.finditer(path):
            name, convertor = m.group(1), m.group(2)
            schema: dict[str, Any] = (
                {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
                if convertor == "int"
                else {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/.][^/]*$"}
            )
            if name in described:
                schema["description"] = described[name]
            schemas[name] = schema
        self.operations.append(
            Operation(
                method=method,
                path=clean,
                summary=summary,
                operation_id=op_id,
                description=description,
                tags=tuple(tags),
                request_model=request_model,
                request_required=request_required,
                response_model=response_model,
                response_media_type=response_media_type,
                response_schema=response_schema,
                status=status,
                params=params,
                path_params=schemas,
                errors=tuple(errors),
                alternate_status=alternate_status,
            )
        )
        self._document = None

    def document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document (a fresh copy is not made: do not change it)."""
        if self._document is None:
            self._document = self._build()
        return self._document

    async def serve(self, request: Request) -> Response:
        return JSONResponse(self.document())

    def _build(self) -> dict[str, Any]:
        wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorEnvelope, "serialization")]
        for op in self.operations:
            if op.request_model is not None:
                wanted.append((op.request_model, "validation"))
            if op.response_model is not None:
                wanted.append((op.response_model, "serialization"))
        refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=_REF)
        error_ref = refs[(ErrorEnvelope, "serialization")]
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, error_ref)
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version, "description": self.description},
            "paths": paths,
            "components": {
                "schemas": defs.get("$defs", {}),
                "securitySchemes": {
                    "adminToken": {"type": "http", "scheme": "bearer"},
                    "session": {"type": "apiKey", "in": "cookie", "name": "llmops_session"},
                },
            },
            "security": [{"adminToken": []}, {"session": []}],
        }


def _operation(
    op: Operation,
    refs: Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]],
    error_ref: dict[str, Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name, schema in op.path_params.items()
    ]
    if op.params is not None:
        parameters += _query_parameters(op.params)
    if parameters:
        out["parameters"] = parameters
    if op.request_model is not None:
        out["requestBody"] = {
            "required": op.request_required,
            "content": {"application/json": {"schema": refs[(op.request_model, "validation")]}},
        }
    success: dict[str, Any] = {"description": _STATUS_TEXT.get(op.status, "OK")}
    if op.status != 204:
        if op.response_model is not None:
            schema = refs[(op.response_model, "serialization")]
        elif op.response_schema is not None:
            schema = op.response_schema
        elif op.response_media_type == "application/json":
            schema = {"type": "object"}
        else:
            schema = {"type": "string"}
        success["content"] = {op.response_media_type: {"schema": schema}}
    responses: dict[str, Any] = {str(op.status): success}
    if op.alternate_status is not None:
        responses[str(op.alternate_status)] = {**success, "description": "Unchanged"}
    errors = {401, 403, *op.errors}
    if op.request_model is not None or op.params is not None or op.path_params:
        errors.add(400)
    if op.request_model is not None:
        errors.add(413)
    if op.path_params:
        errors.add(404)
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": error_ref}},
        }
    out["responses"] = responses
    return out


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        param["schema"] = prop
        params.append(param)
    return params


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path.replace("{", "by_")) if w]
    return "_".join([method.lower(), *words[3:]] if len(words) > 3 else [method.lower(), *words])


class ApiRoutes:
    """Starlette routes under one prefix, each documented in an ``ApiDoc`` as it is added."""

    def __init__(self, doc: ApiDoc, prefix: str, *, tags: Sequence[str] = ()) -> None:
        self.doc = doc
        self.prefix = prefix.rstrip("/")
        self.tags = tuple(tags)
        self.routes: list[BaseRoute] = []

    def add(
        self,
        method: Method,
        path: str,
        endpoint: Endpoint,
        *,
        summary: str,
        tags: Iterable[str] | None = None,
        **documentation: Any,
    ) -> None:
        """Add ``endpoint`` at ``prefix + path``; ``documentation`` as for ``ApiDoc.add``."""
        full = self.prefix + path
        self.doc.add(
            method,
            full,
            summary=summary,
            tags=self.tags if tags is None else tags,
            operation_id=documentation.pop("operation_id", None)
            or getattr(endpoint, "__name__", None),
            **documentation,
        )
        self.routes.append(Route(full, endpoint, methods=[method]))
