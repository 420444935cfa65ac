"""Reading and checking what a client sent: body, JSON, fields, tags.

Every failure is an ``InvalidRequest`` naming the offending field, rendered as a 400 (413 for size).
"""

from __future__ import annotations

from typing import Any

import orjson

from llmops.errors import InvalidRequest, PayloadTooLarge

MAX_TAGS = 16
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 512


class ClientDisconnected(Exception):
    """The client went away before its request body arrived."""


async def read_body(receive: Any, limit: int, content_length: int | None) -> bytes:
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"request body is {content_length} bytes; the limit is {limit}")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"the request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


_REQUIRED = {
    "chat.completions": "messages",
    "completions": "prompt",
    "embeddings": "input",
    "responses": "input",
}


def check_fields(endpoint: str, body: dict[str, Any], has_prompt: bool) -> None:
    """Check the fields the gateway itself relies on; the provider checks the rest."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("model must be a string", param="model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("stream must be true or false", param="stream")
    required = _REQUIRED[endpoint]
    value = body.get(required)
    if value is None:
        if not (has_prompt and endpoint in ("chat.completions", "responses")):
            raise InvalidRequest(f"{required} is required", param=required)
        return
    if endpoint == "chat.completions":
        if not isinstance(value, list) or not value and not has_prompt:
            raise InvalidRequest("messages must be a non-empty array", param="messages")
        for i, msg in enumerate(value):
            if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
                raise InvalidRequest(
                    "each message must be an object with a role", param=f"messages[{i}]"
                )
    elif not isinstance(value, str | list):
        raise InvalidRequest(f"{required} must be a string or an array", param=required)


def parse_tags(body: dict[str, Any], header: bytes | None) -> dict[str, str]:
    """Tags from the ``x-llmops-tags`` header (a JSON object) and the body's ``metadata``, which
    wins on a clash. OpenAI's limits apply: ≤16 pairs, key ≤64 chars, value ≤512 chars, strings."""
    tags: dict[str, str] = {}
    if header:
        try:
            parsed = orjson.loads(header)
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                "x-llmops-tags must be a JSON object of strings", param="x-llmops-tags"
            ) from None
        tags.update(_check_tags(parsed, "x-llmops-tags"))
    metadata = body.get("metadata")
    if metadata is not None:
        tags.update(_check_tags(metadata, "metadata"))
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"at most {MAX_TAGS} tags are allowed", param="metadata")
    return tags


def _check_tags(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object of string values", param=where)
    if len(value) > MAX_TAGS:
        raise InvalidRequest(f"{where} has {len(value)} pairs; at most {MAX_TAGS}", param=where)
    for key, item in value.items():
        if len(key) > MAX_TAG_KEY:
            raise InvalidRequest(
                f"{where} key {key[:20]!r}… is longer than {MAX_TAG_KEY} characters",
                param=f"{where}.{key[:64]}",
            )
        if not isinstance(item, str):
            raise InvalidRequest(f"{where}.{key} must be a string", param=f"{where}.{key}")
        if len(item) > MAX_TAG_VALUE:
            raise InvalidRequest(
                f"{where}.{key} is longer than {MAX_TAG_VALUE} characters", param=f"{where}.{key}"
            )
    return value


def client_wants_usage(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


__all__ = [
    "ClientDisconnected",
    "check_fields",
    "client_wants_usage",
    "parse_json",
    "parse_tags",
    "read_body",
]
