"""Anthropic Messages API, translated to and from OpenAI's chat completions format.

Requests are rebuilt field by field: what has no Messages equivalent (``stream_options``,
``response_format``, ``metadata`` tags, ``logprobs``, ...) is dropped, and what cannot be expressed
(``n`` > 1, non-function tools, audio parts) is refused with ``InvalidRequest``. Responses and
streams come back as chat completions; see ``anthropic_stream`` for the streamed half.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from llmops.errors import InvalidRequest, envelope
from llmops.gateway.providers.anthropic_stream import AnthropicStream, finish_reason, openai_usage
from llmops.gateway.providers.base import UpstreamRequest
from llmops.gateway.snapshot import Credential
from llmops.observability import usage as u
from llmops.observability.usage import Usage

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often leave it out
_SAMPLING = ("temperature", "top_p", "top_k")

__all__ = ["AnthropicAdapter", "AnthropicStream", "translate_request", "translate_response"]


class AnthropicAdapter:
    provider_type = "anthropic"

    def supports(self, endpoint: str) -> bool:
        return endpoint == "chat.completions"

    def build(
        self, endpoint: str, body: dict[str, Any], credential: Credential, stream: bool
    ) -> UpstreamRequest:
        headers = {
            "content-type": "application/json",
            "anthropic-version": str(credential.options.get("anthropic_version", DEFAULT_VERSION)),
        }
        if credential.api_key:
            headers["x-api-key"] = credential.api_key
        extra = credential.options.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        url = credential.base_url.rstrip("/") + "/messages"
        return UpstreamRequest(url, headers, orjson.dumps(translate_request(body, stream)))

    def parse_response(self, endpoint: str, status: int, body: bytes) -> tuple[bytes, Usage | None]:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body, None
        if not isinstance(parsed, dict):
            return body, None
        if status >= 400:
            error = parsed.get("error")
            if not isinstance(error, dict):
                return body, None
            message = str(error.get("message") or "upstream error")
            return envelope(message, str(error.get("type") or "api_error")), None
        completion, usage = translate_response(parsed)
        return orjson.dumps(completion), usage

    def stream(self, endpoint: str, client_wants_usage: bool) -> AnthropicStream:
        return AnthropicStream(client_wants_usage)


# --- requests ---------------------------------------------------------------------------------


def translate_request(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat completions ``body``."""
    if body.get("n") not in (None, 1):
        raise InvalidRequest("Anthropic models return one choice; n must be 1", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list", param="messages")
    system, turns = _messages(messages)
    out: dict[str, Any] = {"model": body.get("model")}
    if system:
        out["system"] = system
    out["messages"] = turns
    limits = (body.get(k) for k in ("max_completion_tokens", "max_tokens"))
    out["max_tokens"] = next((v for v in limits if v is not None), DEFAULT_MAX_TOKENS)
    out.update({k: body[k] for k in _SAMPLING if body.get(k) is not None})
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            out["stop_sequences"] = stop
    elif stop is not None:
        raise InvalidRequest("stop must be a string or a list of strings", param="stop")
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if stream:
        out["stream"] = True
    return out


def _messages(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """The joined system prompt, and turns that alternate roles as Anthropic requires."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(_text(msg.get("content"), f"{where}.content"))
            continue
        if role == "user":
            blocks = _blocks(msg.get("content"), f"{where}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(msg, where)
        elif role == "tool":
            role, blocks = "user", [_tool_result(msg, where)]
        else:
            raise InvalidRequest(f"unsupported message role {role!r}", param=f"{where}.role")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(s for s in system if s), turns


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of parts", param=where)
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise InvalidRequest("only text parts are allowed here", param=f"{where}[{j}]")
        texts.append(str(part.get("text") or ""))
    return "\n".join(texts)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of parts", param=where)
    blocks = []
    for j, part in enumerate(content):
        block = _part(part, f"{where}[{j}]")
        if block is not None:
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
    return blocks


def _part(part: Any, where: str) -> dict[str, Any] | None:
    """One content block for an OpenAI content part (None for an empty text part, which
    Anthropic rejects)."""
    if not isinstance(part, dict):
        raise InvalidRequest("content parts must be objects", param=where)
    kind = part.get("type")
    if kind in ("text", "refusal"):
        text = part.get(kind)
        return {"type": "text", "text": str(text)} if text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str) and url.startswith("data:"):
            media_type, data = _data_url(url, f"{where}.image_url.url")
            return {"type": "image", "source": _base64(media_type, data)}
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        raise InvalidRequest("image_url must be a data: or http(s) URL", param=f"{where}.image_url")
    if kind == "file":
        file = part.get("file")
        data_url = file.get("file_data") if isinstance(file, dict) else None
        if not isinstance(data_url, str):
            raise InvalidRequest("files must be sent inline as file_data", param=f"{where}.file")
        media_type, data = _data_url(data_url, f"{where}.file.file_data")
        return {"type": "document", "source": _base64(media_type, data)}
    raise InvalidRequest(f"content part type {kind!r} is not supported", param=f"{where}.type")


def _data_url(url: str, where: str) -> tuple[str, str]:
    header, comma, data = url.removeprefix("data:").partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequest("data URLs must be base64-encoded", param=where)
    return header.split(";", 1)[0], data


def _base64(media_type: str, data: str) -> dict[str, str]:
    return {"type": "base64", "media_type": media_type, "data": data}


def _assistant_blocks(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks = _blocks(msg.get("content"), f"{where}.content")
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest("tool_calls must be a list", param=f"{where}.tool_calls")
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(
                "tool calls need a function name", param=f"{where}.tool_calls[{j}]"
            )
        arguments = _arguments(fn.get("arguments"), f"{where}.tool_calls[{j}].function.arguments")
        blocks.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn["name"], "input": arguments}
        )
    return blocks


def _arguments(arguments: Any, where: str) -> dict[str, Any]:
    """Tool call arguments, parsed: Anthropic takes the input object, not a JSON string."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            raise InvalidRequest("tool call arguments are not valid JSON", param=where) from None
    if not isinstance(arguments, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", param=where)
    return arguments


def _tool_result(msg: dict[str, Any], where: str) -> dict[str, Any]:
    tool_call_id = msg.get("tool_call_id")
    if not isinstance(tool_call_id, str):
        raise InvalidRequest("tool messages need a tool_call_id", param=f"{where}.tool_call_id")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    content = msg.get("content")
    if isinstance(content, list):
        result["content"] = _blocks(content, f"{where}.content")
    elif content:
        result["content"] = _text(content, f"{where}.content")
    return result


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    out = []
    for i, tool in enumerate(tools):
        fn = (
            tool.get("function")
            if isinstance(tool, dict) and tool.get("type") == "function"
            else None
        )
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest("only function tools are supported", param=f"tools[{i}]")
        spec: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            spec["description"] = fn["description"]
        spec["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        out.append(spec)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice == "none":
        return {"type": "none"}  # Anthropic's "none" takes no parallelism flag
    if choice is None or choice == "auto":
        result: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if not isinstance(name, str):
            raise InvalidRequest("tool_choice needs a function name", param="tool_choice")
        result = {"type": "tool", "name": name}
    else:
        raise InvalidRequest("unsupported tool_choice", param="tool_choice")
    if parallel is False:
        result["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return result


# --- responses --------------------------------------------------------------------------------


def translate_response(message: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
    """The chat completion for an Anthropic message, and its usage (cache writes kept)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        reply["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": finish_reason(message.get("stop_reason")),
    }
    completion: dict[str, Any] = {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [choice],
    }
    usage = u.from_anthropic(message.get("usage"))
    if usage is not None:
        completion["usage"] = openai_usage(usage)
    return completion, usage
