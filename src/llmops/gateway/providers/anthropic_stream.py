"""Anthropic Messages streams, translated event by event into OpenAI ``chat.completion.chunk``s.

Also home to the pieces the non-streamed translation shares: the stop-reason map and the
OpenAI-shaped usage object.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from llmops.errors import envelope
from llmops.gateway.providers.sse import EventSplitter, event_data
from llmops.observability import usage as u
from llmops.observability.usage import Usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}

_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_DONE = b"data: [DONE]\n\n"


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason`` (unknown ones read as "stop")."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: Usage) -> dict[str, Any]:
    """The chat completions ``usage`` object; prompt tokens include cache reads and writes."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


class AnthropicStream:
    """Turns Anthropic SSE events into OpenAI chunk events as each whole event arrives.

    Usage is kept current after every event that carries it, so a stream cut off midway still
    records what was reported so far. ``data: [DONE]`` is sent only on ``message_stop``: a stream
    that breaks or ends with an ``error`` event must not look complete to the client.
    """

    __slots__ = (
        "_splitter",
        "_wants_usage",
        "_raw_usage",
        "_tools",
        "_head",
        "_stopped",
        "usage",
        "error_type",
        "chunks",
    )

    def __init__(self, client_wants_usage: bool) -> None:
        self._splitter = EventSplitter()
        self._wants_usage = client_wants_usage
        self._raw_usage: dict[str, int] = {}
        self._tools: dict[int, int] = {}  # Anthropic content block index → OpenAI tool call index
        self._head: dict[str, Any] = {
            "id": "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "",
        }
        self._stopped = False
        self.usage: Usage | None = None
        self.error_type: str | None = None
        self.chunks = 0

    def feed(self, chunk: bytes) -> bytes:
        events = self._splitter.feed(chunk)
        self.chunks += len(events)
        return b"".join(self._translate(event) for event in events)

    def finish(self) -> bytes:
        rest = self._splitter.rest()
        out = self._translate(rest) if rest.strip() else b""
        if self._stopped or self.error_type is not None:
            return out
        # The upstream ended cleanly but before message_stop: without an error event the OpenAI
        # SDKs would take the cut-off answer as complete, and the row would record a success.
        self.error_type = "upstream_incomplete"
        message = "the provider ended the stream before it was complete"
        return out + b"data: " + envelope(message, "upstream_error", code=self.error_type) + b"\n\n"

    def _translate(self, event: bytes) -> bytes:
        data = event_data(event)
        try:
            obj = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(obj, dict):
            return b""
        kind = obj.get("type")
        if kind == "message_start":
            return self._message_start(obj.get("message"))
        if kind == "content_block_start":
            return self._block_start(obj.get("index"), obj.get("content_block"))
        if kind == "content_block_delta":
            return self._block_delta(obj.get("index"), obj.get("delta"))
        if kind == "message_delta":
            self._merge_usage(obj.get("usage"), start=False)
            delta = obj.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            return self._chunk({}, finish_reason(stop))
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            return self._error(obj.get("error"))
        return b""  # ping, content_block_stop and event types added later

    def _message_start(self, message: Any) -> bytes:
        if isinstance(message, dict):
            self._head["id"] = str(message.get("id") or "")
            self._head["model"] = str(message.get("model") or "")
            self._merge_usage(message.get("usage"), start=True)
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, index: Any, block: Any) -> bytes:
        if not isinstance(block, dict):
            return b""
        if block.get("type") == "text" and block.get("text"):
            return self._chunk({"content": str(block["text"])})
        if block.get("type") != "tool_use" or not isinstance(index, int):
            return b""  # thinking and server-tool blocks have no chat completions equivalent
        position = self._tools[index] = len(self._tools)
        tool_input = block.get("input")
        arguments = orjson.dumps(tool_input).decode() if tool_input else ""
        call = {
            "index": position,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments},
        }
        return self._chunk({"tool_calls": [call]})

    def _block_delta(self, index: Any, delta: Any) -> bytes:
        if not isinstance(delta, dict):
            return b""
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk({"content": str(delta["text"])})
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tools:
            call = {"index": self._tools[index], "function": {"arguments": delta["partial_json"]}}
            return self._chunk({"tool_calls": [call]})
        return b""  # thinking, signature and citation deltas

    def _message_stop(self) -> bytes:
        self._stopped = True
        if self._wants_usage and self.usage is not None:
            chunk = {**self._head, "choices": [], "usage": openai_usage(self.usage)}
            return b"data: " + orjson.dumps(chunk) + b"\n\n" + _DONE
        return _DONE

    def _error(self, error: Any) -> bytes:
        error = error if isinstance(error, dict) else {}
        self.error_type = str(error.get("type") or "api_error")
        message = str(error.get("message") or "upstream stream error")
        return b"data: " + envelope(message, self.error_type) + b"\n\n"

    def _merge_usage(self, usage: Any, *, start: bool) -> None:
        """``message_start`` sets the counts; ``message_delta`` carries cumulative ones, so its
        output count replaces ours, and input counts (newer API versions repeat them) can only
        grow."""
        if not isinstance(usage, dict):
            return
        raw = self._raw_usage
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                keep = start or key == "output_tokens"
                raw[key] = value if keep else max(value, raw.get(key, 0))
        self.usage = u.from_anthropic(raw)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**self._head, "choices": [choice]}) + b"\n\n"
