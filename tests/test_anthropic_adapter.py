"""The Anthropic adapter: OpenAI chat completions ↔ Anthropic Messages, both ways."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from llmops.errors import InvalidRequest
from llmops.gateway.providers.anthropic import AnthropicAdapter, translate_request
from llmops.gateway.providers.anthropic_stream import AnthropicStream
from llmops.gateway.snapshot import Credential
from llmops.observability.usage import Usage

ADAPTER = AnthropicAdapter()


def credential(**options: Any) -> Credential:
    return Credential(
        id=uuid.uuid4(),
        slug="claude",
        provider_type="anthropic",
        base_url="https://api.anthropic.com/v1",
        api_key="sk-ant-test",
        options=options,
        disabled=False,
    )


def build(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    request = ADAPTER.build("chat.completions", body, credential(), stream)
    result: dict[str, Any] = orjson.loads(request.body)
    return result


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": list(messages), **extra}


USER = {"role": "user", "content": "Hi"}


# --- requests ---------------------------------------------------------------------------------


def test_supports_only_chat_completions() -> None:
    assert ADAPTER.supports("chat.completions")
    assert not ADAPTER.supports("embeddings")
    assert not ADAPTER.supports("responses")


def test_build_sets_url_and_anthropic_headers() -> None:
    cred = credential(anthropic_version="2024-01-01", headers={"anthropic-beta": "x"})
    request = ADAPTER.build("chat.completions", chat(USER), cred, False)
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2024-01-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["anthropic-beta"] == "x"
    assert "authorization" not in request.headers


def test_default_anthropic_version_and_max_tokens() -> None:
    request = ADAPTER.build("chat.completions", chat(USER), credential(), False)
    assert request.headers["anthropic-version"] == "2023-06-01"
    body = orjson.loads(request.body)
    assert body == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 4096,
    }


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert build(chat(USER, max_tokens=10))["max_tokens"] == 10
    assert build(chat(USER, max_tokens=10, max_completion_tokens=20))["max_tokens"] == 20


def test_system_and_developer_messages_become_top_level_system() -> None:
    body = build(
        chat(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            USER,
        )
    )
    assert body["system"] == "Be brief.\n\nUse French."
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_multi_part_user_content_with_images() -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    body = build(chat({"role": "user", "content": content}))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_non_base64_data_url_is_refused_with_param() -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]
    with pytest.raises(InvalidRequest) as exc:
        build(chat({"role": "user", "content": content}))
    assert exc.value.param == "messages[0].content[0].image_url.url"


def test_tool_calls_and_results_round_trip() -> None:
    body = build(
        chat(
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "toolu_2",
                "content": [{"type": "text", "text": "24C"}],
            },
        )
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "24C"}],
                },
            ],
        },
    ]


def test_consecutive_same_role_messages_are_merged() -> None:
    body = build(
        chat(
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": "four"},
            {"role": "tool", "tool_call_id": "t1", "content": "five"},
            {"role": "user", "content": "six"},
        )
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "five"},
                {"type": "text", "text": "six"},
            ],
        },
    ]


def test_invalid_tool_call_arguments_name_the_field() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    with pytest.raises(InvalidRequest) as exc:
        build(chat(USER, {"role": "assistant", "tool_calls": [call]}))
    assert exc.value.param == "messages[1].tool_calls[0].function.arguments"


def test_stop_becomes_stop_sequences() -> None:
    assert build(chat(USER, stop="END"))["stop_sequences"] == ["END"]
    assert build(chat(USER, stop=["a", "b"]))["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in build(chat(USER, stop=None))


def test_sampling_parameters_pass_and_openai_only_fields_are_dropped() -> None:
    body = build(
        chat(
            USER,
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            n=1,
            stream_options={"include_usage": True},
            metadata={"team": "search"},
            user="user-42",
            logprobs=False,
        ),
        stream=True,
    )
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["top_k"] == 5
    assert body["stream"] is True
    assert body["metadata"] == {"user_id": "user-42"}
    for dropped in ("n", "stream_options", "logprobs", "user"):
        assert dropped not in body


def test_openai_metadata_is_not_forwarded() -> None:
    assert "metadata" not in build(chat(USER, metadata={"user": "x"}))


def test_n_greater_than_one_is_refused() -> None:
    with pytest.raises(InvalidRequest) as exc:
        build(chat(USER, n=2))
    assert exc.value.param == "n"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_tools_become_input_schemas() -> None:
    assert build(chat(USER, tools=TOOLS))["tools"] == [
        {
            "name": "weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            None,
            {"type": "tool", "name": "weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice_variants(tool_choice: Any, parallel: Any, expected: Any) -> None:
    extra: dict[str, Any] = {"tools": TOOLS}
    if tool_choice is not None:
        extra["tool_choice"] = tool_choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    assert build(chat(USER, **extra)).get("tool_choice") == expected


def test_translate_request_does_not_mutate_the_body() -> None:
    body = chat({"role": "system", "content": "s"}, USER, stop="x")
    snapshot = orjson.dumps(body)
    translate_request(body, stream=True)
    assert orjson.dumps(body) == snapshot


# --- responses --------------------------------------------------------------------------------


def parse(message: dict[str, Any], status: int = 200) -> tuple[dict[str, Any], Usage | None]:
    raw, usage = ADAPTER.parse_response("chat.completions", status, orjson.dumps(message))
    result: dict[str, Any] = orjson.loads(raw)
    return result, usage


def test_text_response_with_cache_usage() -> None:
    completion, usage = parse(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 25,
                "output_tokens": 12,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 50,
            },
        }
    )
    assert completion["id"] == "msg_01"
    assert completion["object"] == "chat.completion"
    assert isinstance(completion["created"], int)
    assert completion["model"] == "claude-sonnet-4-5"
    choice = completion["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello there"}
    assert choice["finish_reason"] == "stop"
    assert completion["usage"] == {
        "prompt_tokens": 175,
        "completion_tokens": 12,
        "total_tokens": 187,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    assert usage == Usage(
        prompt_tokens=175,
        completion_tokens=12,
        total_tokens=187,
        cached_tokens=100,
        cache_write_tokens=50,
    )


def test_tool_use_response() -> None:
    completion, _ = parse(
        {
            "id": "msg_02",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_9",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
        }
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_stop_reason_mapping(stop_reason: str, finish_reason: str) -> None:
    completion, _ = parse({"id": "m", "content": [], "stop_reason": stop_reason})
    assert completion["choices"][0]["finish_reason"] == finish_reason
    assert completion["choices"][0]["message"]["content"] is None


def test_error_body_becomes_openai_envelope() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    body, usage = parse(error, status=529)
    assert body == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}
    }
    assert usage is None


def test_non_json_error_body_passes_through() -> None:
    raw = b"<html>Bad gateway</html>"
    assert ADAPTER.parse_response("chat.completions", 502, raw) == (raw, None)


# --- streams ----------------------------------------------------------------------------------


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


STREAM = b"".join(
    [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_stream",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": "claude-sonnet-4-5",
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 25,
                        "output_tokens": 1,
                        "cache_read_input_tokens": 10,
                        "cache_creation_input_tokens": 5,
                    },
                },
            },
        ),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        sse("ping", {"type": "ping"}),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Let me "},
            },
        ),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "check."},
            },
        ),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_7",
                    "name": "weather",
                    "input": {},
                },
            },
        ),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
            },
        ),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": 'ris"}'},
            },
        ),
        sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 40},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
)

FINAL_USAGE = Usage(
    prompt_tokens=40, completion_tokens=40, total_tokens=80, cached_tokens=10, cache_write_tokens=5
)


def run(translator: AnthropicStream, pieces: list[bytes]) -> bytes:
    out = b"".join(translator.feed(piece) for piece in pieces)
    return out + translator.finish()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def chunks(out: bytes) -> list[Any]:
    assert out.endswith(b"\n\n")
    events = out[:-2].split(b"\n\n")
    assert all(e.startswith(b"data: ") for e in events)
    return [e[6:] if e == b"data: [DONE]" else orjson.loads(e[6:]) for e in events]


@pytest.mark.parametrize("piece_size", [7, 1, len(STREAM)])
@pytest.mark.parametrize("wants_usage", [True, False])
def test_stream_translation(piece_size: int, wants_usage: bool) -> None:
    translator = ADAPTER.stream("chat.completions", client_wants_usage=wants_usage)
    assert isinstance(translator, AnthropicStream)
    events = chunks(run(translator, split(STREAM, piece_size)))

    assert events[-1] == b"[DONE]"
    objs = events[:-1]
    assert {(c["id"], c["object"], c["model"]) for c in objs} == {
        ("msg_stream", "chat.completion.chunk", "claude-sonnet-4-5")
    }
    assert len({c["created"] for c in objs}) == 1
    assert objs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}

    deltas = [c["choices"][0]["delta"] for c in objs if c["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == "Let me check."
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_7",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert {call["index"] for call in calls} == {0}
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert orjson.loads(arguments) == {"city": "Paris"}

    finishes = [c["choices"][0]["finish_reason"] for c in objs if c["choices"]]
    assert [f for f in finishes if f is not None] == ["tool_calls"]

    usage_chunks = [c for c in objs if "usage" in c]
    if wants_usage:
        assert usage_chunks == [
            {
                "id": "msg_stream",
                "object": "chat.completion.chunk",
                "created": objs[0]["created"],
                "model": "claude-sonnet-4-5",
                "choices": [],
                "usage": {
                    "prompt_tokens": 40,
                    "completion_tokens": 40,
                    "total_tokens": 80,
                    "prompt_tokens_details": {"cached_tokens": 10},
                },
            }
        ]
        assert objs[-1] is usage_chunks[0]
    else:
        assert usage_chunks == []
    assert translator.usage == FINAL_USAGE
    assert translator.error_type is None


def test_stream_emits_nothing_for_partial_events() -> None:
    translator = AnthropicStream(client_wants_usage=False)
    first_event_end = STREAM.index(b"\n\n") + 2
    assert translator.feed(STREAM[: first_event_end - 1]) == b""
    assert translator.feed(STREAM[first_event_end - 1 : first_event_end]).startswith(b"data: ")


def test_stream_cut_midway_keeps_partial_usage() -> None:
    cut = STREAM.index(b"event: content_block_delta")
    cut = STREAM.index(b"event: content_block_delta", cut + 1)  # after the first text delta
    translator = AnthropicStream(client_wants_usage=True)
    out = run(translator, [STREAM[:cut]])
    assert b"[DONE]" not in out
    assert b"Let me " in out
    assert translator.usage == Usage(
        prompt_tokens=40,
        completion_tokens=1,
        total_tokens=41,
        cached_tokens=10,
        cache_write_tokens=5,
    )


def test_stream_error_event() -> None:
    start = STREAM[: STREAM.index(b"event: content_block_start")]
    error = sse(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    translator = AnthropicStream(client_wants_usage=False)
    events = chunks(run(translator, [start, error]))
    assert events[-1] == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}
    }
    assert b"[DONE]" not in events
    assert translator.error_type == "overloaded_error"
    assert translator.usage is not None and translator.usage.prompt_tokens == 40


def test_stream_unterminated_last_event_is_flushed_by_finish() -> None:
    translator = AnthropicStream(client_wants_usage=False)
    out = translator.feed(STREAM.removesuffix(b"\n\n"))
    assert b"[DONE]" not in out
    assert translator.finish() == b"data: [DONE]\n\n"


def test_stream_ignores_unknown_events_and_thinking() -> None:
    translator = AnthropicStream(client_wants_usage=False)
    extra = sse("mystery", {"type": "mystery"}) + sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "x"},
        },
    )
    assert translator.feed(extra) == b""
