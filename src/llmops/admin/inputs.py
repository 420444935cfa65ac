"""Reading API input: JSON bodies, query strings and path parameters, validated by pydantic models.

Every refusal is an ``InvalidRequest`` (400) in the OpenAI envelope whose ``param`` names the field
the way a user writes it (``arms[0].weight``). Values the databases cannot store are refused here
too, so that they never reach SQL as a 500: NUL characters (PostgreSQL rejects them in text and
JSONB) anywhere in a body, query or path.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from llmops.errors import InvalidRequest, NotFound, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

_MAX_DEPTH = 32
_MAX_INT = 2**31 - 1


async def parse_body(request: Request, model: type[M], limit: int) -> M:
    """The request's JSON body as ``model``; an empty body counts as ``{}``."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise InvalidRequest(f"the body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json")
    _check_storable(data, "")
    return validate(model, data)


def parse_query(request: Request, model: type[M]) -> M:
    """The query string as ``model`` (the first value of a repeated parameter wins)."""
    data: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if "\x00" in key or "\x00" in value:
            raise InvalidRequest("NUL characters are not allowed", param=key.replace("\x00", ""))
        data.setdefault(key, value)
    return validate(model, data)


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        error = e.errors(include_url=False)[0]
        param = field_path(error["loc"])
        message = error["msg"]
        raise InvalidRequest(
            f"{param}: {message}" if param else message,
            param=param or None,
            code="missing_field" if error["type"] == "missing" else "invalid_value",
        ) from None


def path_ref(request: Request, name: str) -> str:
    """A path parameter naming an entity (id, slug or name); one that can name nothing is 404."""
    value = str(request.path_params[name])
    if not value or "\x00" in value or len(value) > 200:
        raise NotFound(f"no {name} {value[:200]!r}", param=name, code=f"{name}_not_found")
    return value


def path_int(request: Request, name: str) -> int:
    value = int(request.path_params[name])
    if not 1 <= value <= _MAX_INT:
        raise NotFound(f"no {name} {value}", param=name, code=f"{name}_not_found")
    return value


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("arms", 0, "weight")`` → ``arms[0].weight``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _check_storable(value: Any, path: str, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidRequest(f"{path}: nested too deeply", param=path or None)
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRequest(f"{path}: NUL characters are not allowed", param=path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                raise InvalidRequest(f"{path}: NUL characters are not allowed", param=path or None)
            _check_storable(item, sub, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_storable(item, f"{path}[{i}]", depth + 1)
