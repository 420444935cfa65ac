"""A fake LLM provider served over real HTTP, for our tests, the demo, and users' own tests.

It speaks OpenAI's API (chat completions, completions, embeddings, responses, models — streamed
and not) and Anthropic's Messages API, with real-looking usage numbers: one token per four
characters, rounded up. Tests script it like llm's ``MockModel.enqueue``::

    fake = FakeProviderServer().start()
    fake.enqueue(status=500, json={"error": {"message": "boom"}})
    fake.enqueue(stream=["Hel", "lo"], reset_after=1)   # cut the connection after one chunk
    fake.enqueue(delay=2.0)                             # answer late
    ...
    fake.requests[-1].json                              # what the gateway sent
    fake.stop()
"""

from __future__ import annotations

import asyncio
import collections
import math
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn

DEFAULT_ANSWER = "Hello from the LLMOps fake provider. Your gateway works."


def count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


@dataclass
class Scripted:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    text: str | None = None  # the answer text of a default-shaped response
    stream: list[Any] | None = None  # text pieces, dict events, or raw bytes
    delay: float = 0.0
    chunk_delay: float = 0.0
    reset_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, Any] | None = None


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    query: str = ""


class ResetConnection(Exception):
    """Raised inside the fake's handler to drop the connection mid-response."""


class FakeProvider:
    """The ASGI app. ``enqueue`` scripts the next responses; unscripted requests get a default."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.sent_events = 0  # stream events written so far (to observe backpressure)
        self.cancelled_streams = 0  # streams whose caller hung up before the end
        self._script: collections.deque[Scripted] = collections.deque()
        self._lock = threading.Lock()

    def enqueue(self, **kwargs: Any) -> None:
        with self._lock:
            self._script.append(Scripted(**kwargs))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.sent_events = 0
            self.cancelled_streams = 0

    def _next(self) -> Scripted:
        with self._lock:
            return self._script.popleft() if self._script else Scripted()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        body = orjson.loads(raw) if raw else None
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode()
        self.requests.append(Received(scope["method"], path, headers, body, query))
        script = self._next()
        if script.delay:
            await asyncio.sleep(script.delay)
        kind = _kind(path)
        if script.status >= 400 or script.json is not None or script.body is not None:
            payload = script.body if script.body is not None else orjson.dumps(script.json or {})
            await _respond(send, script.status, payload, script.headers)
            return
        body = body if isinstance(body, dict) else {}
        if kind == "models":
            await _respond(
                send,
                200,
                orjson.dumps(
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": "fake-model",
                                "object": "model",
                                "created": 0,
                                "owned_by": "fake",
                            }
                        ],
                    }
                ),
                {},
            )
            return
        if kind is None:
            await _respond(send, 404, orjson.dumps({"error": {"message": f"no route {path}"}}), {})
            return
        answer = script.text if script.text is not None else DEFAULT_ANSWER
        if body.get("stream"):
            pieces = script.stream if script.stream is not None else _split(answer)
            events = _stream_events(kind, body, pieces, script.usage)
            await _respond_stream(self, send, receive, events, script)
            return
        await _respond(
            send, 200, orjson.dumps(_answer(kind, body, answer, script.usage)), script.headers
        )


def _kind(path: str) -> str | None:
    for suffix, kind in (
        ("/chat/completions", "chat"),
        ("/completions", "completions"),
        ("/embeddings", "embeddings"),
        ("/responses", "responses"),
        ("/messages", "anthropic"),
        ("/models", "models"),
    ):
        if path.endswith(suffix):
            return kind
    return None


def _split(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _prompt_text(kind: str, body: dict[str, Any]) -> str:
    if kind in ("chat", "anthropic"):
        parts = [
            _text_of(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict)
        ]
        if kind == "anthropic" and body.get("system"):
            parts.insert(0, _text_of(body["system"]))
        return " ".join(parts)
    value = body.get("prompt" if kind == "completions" else "input", "")
    if isinstance(value, list):
        return " ".join(
            _text_of(v.get("content")) if isinstance(v, dict) else str(v) for v in value
        )
    return str(value)


def _usage(kind: str, body: dict[str, Any], answer: str) -> dict[str, Any]:
    prompt = count_tokens(_prompt_text(kind, body))
    completion = 0 if kind == "embeddings" else count_tokens(answer)
    if kind == "anthropic":
        return {"input_tokens": prompt, "output_tokens": completion}
    if kind == "responses":
        return {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
    if kind == "embeddings":
        return {"prompt_tokens": prompt, "total_tokens": prompt}
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _answer(kind: str, body: dict[str, Any], answer: str, usage: dict[str, Any] | None) -> Any:
    model = body.get("model", "fake-model")
    usage = usage or _usage(kind, body, answer)
    now = int(time.time())
    if kind == "chat":
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": now,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    if kind == "completions":
        return {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": now,
            "model": model,
            "choices": [{"index": 0, "text": answer, "finish_reason": "stop"}],
            "usage": usage,
        }
    if kind == "embeddings":
        inputs = body.get("input")
        n = len(inputs) if isinstance(inputs, list) else 1
        return {
            "object": "list",
            "model": model,
            "usage": usage,
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1)] * 8}
                for i in range(n)
            ],
        }
    if kind == "responses":
        return {
            "id": "resp_fake",
            "object": "response",
            "created_at": now,
            "model": model,
            "status": "completed",
            "output": [_responses_message(answer)],
            "usage": usage,
        }
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": answer}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def _responses_message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_fake",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"


def _stream_events(
    kind: str, body: dict[str, Any], pieces: list[Any], usage: dict[str, Any] | None
) -> list[bytes]:
    if any(isinstance(p, bytes | dict) for p in pieces):  # raw events, as scripted
        return [
            p
            if isinstance(p, bytes)
            else _sse(p, p.get("type") if kind in ("responses", "anthropic") else None)
            for p in pieces
        ]
    answer = "".join(pieces)
    usage = usage or _usage(kind, body, answer)
    model = body.get("model", "fake-model")
    now = int(time.time())
    out: list[bytes] = []
    if kind in ("chat", "completions"):
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        wants_usage = (body.get("stream_options") or {}).get("include_usage") is True
        for i, piece in enumerate(pieces):
            choice: dict[str, Any] = {"index": 0, "finish_reason": None}
            if kind == "chat":
                choice["delta"] = (
                    {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                )
            else:
                choice["text"] = piece
            chunk = {
                "id": "chatcmpl-fake",
                "object": obj,
                "created": now,
                "model": model,
                "choices": [choice],
            }
            if wants_usage:
                chunk["usage"] = None
            out.append(_sse(chunk))
        last: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        last["delta" if kind == "chat" else "text"] = {} if kind == "chat" else ""
        out.append(
            _sse(
                {
                    "id": "chatcmpl-fake",
                    "object": obj,
                    "created": now,
                    "model": model,
                    "choices": [last],
                }
            )
        )
        if wants_usage:
            out.append(
                _sse(
                    {
                        "id": "chatcmpl-fake",
                        "object": obj,
                        "created": now,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        out.append(b"data: [DONE]\n\n")
    elif kind == "responses":
        resp = {
            "id": "resp_fake",
            "object": "response",
            "created_at": now,
            "model": model,
            "status": "in_progress",
            "output": [],
        }
        out.append(_sse({"type": "response.created", "response": resp}, "response.created"))
        for piece in pieces:
            out.append(
                _sse(
                    {
                        "type": "response.output_text.delta",
                        "item_id": "msg_fake",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": piece,
                    },
                    "response.output_text.delta",
                )
            )
        done = {
            **resp,
            "status": "completed",
            "output": [_responses_message(answer)],
            "usage": usage,
        }
        out.append(_sse({"type": "response.completed", "response": done}, "response.completed"))
    else:
        msg = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        out.append(_sse({"type": "message_start", "message": msg}, "message_start"))
        out.append(
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            )
        )
        for piece in pieces:
            out.append(
                _sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                    "content_block_delta",
                )
            )
        out.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        out.append(
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
                "message_delta",
            )
        )
        out.append(_sse({"type": "message_stop"}, "message_stop"))
    return out


async def _respond(send: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def _respond_stream(
    fake: FakeProvider, send: Any, receive: Any, events: list[bytes], script: Scripted
) -> None:
    hdrs = [(b"content-type", b"text/event-stream")]
    hdrs += [(k.encode(), v.encode()) for k, v in script.headers.items()]
    await send({"type": "http.response.start", "status": 200, "headers": hdrs})
    gone = asyncio.ensure_future(receive())  # the caller closing the connection
    try:
        await _send_events(fake, send, events, script, gone)
    finally:
        gone.cancel()


async def _send_events(
    fake: FakeProvider, send: Any, events: list[bytes], script: Scripted, gone: Any
) -> None:
    for i, event in enumerate(events):
        if gone.done():
            fake.cancelled_streams += 1
            return
        fake.sent_events += 1
        if script.reset_after is not None and i >= script.reset_after:
            raise ResetConnection("scripted reset")
        if script.chunk_delay and i:
            await asyncio.sleep(script.chunk_delay)
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """Runs an ASGI app under uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int | None = None):
        self.port = port or free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            loop="asyncio",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)


class FakeProviderServer(FakeProvider):
    """The fake provider, listening on 127.0.0.1. ``base_url`` ends in ``/v1``."""

    def __init__(self, port: int | None = None):
        super().__init__()
        self._server = ServerThread(self, port)

    @property
    def base_url(self) -> str:
        return self._server.url + "/v1"

    def start(self) -> FakeProviderServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
