"""The Anthropic provider end to end: the official openai client talks to the running gateway, which
translates to the Messages API of the fake provider and back. Each test asserts on what the client
got, what the provider got, and the stored row, on both databases."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from llmops.testing import DEFAULT_ANSWER, FakeProviderServer, count_tokens
from tests.conftest import Gateway

CONFIG = "claude-chat"
MODEL = "claude-3-5-haiku-latest"
SYSTEM = "You are a terse assistant."
QUESTION = "Hello, Claude"
CHAT: list[Any] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUESTION},
]
# What the fake counts: the system prompt and the message texts, joined by spaces.
PROMPT_TOKENS = count_tokens(f"{SYSTEM} {QUESTION}")
ANSWER_TOKENS = count_tokens(DEFAULT_ANSWER)

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": WEATHER_PARAMETERS,
    },
}
WEATHER_QUESTION: Any = {"role": "user", "content": "What is the weather in Paris and London?"}
PARIS = {"city": "Paris", "unit": "celsius"}
LONDON = {"city": "London"}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def message(content: list[dict[str, Any]], stop_reason: str, **usage: int) -> dict[str, Any]:
    """A non-streamed Anthropic Messages response."""
    return {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def message_start(input_tokens: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_streamed",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        },
    }


def text_block(index: int, *pieces: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        },
        *(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": p},
            }
            for p in pieces
        ),
        {"type": "content_block_stop", "index": index},
    ]


def tool_block(index: int, tool_id: str, name: str, *partial_json: str) -> list[dict[str, Any]]:
    start = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            for p in partial_json
        ),
        {"type": "content_block_stop", "index": index},
    ]


def message_end(stop_reason: str, output_tokens: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


# --- plain chat ---------------------------------------------------------------------------------


def test_chat_is_sent_as_a_messages_request_and_answered_as_a_chat_completion(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    raw = gateway.client(CONFIG).chat.completions.with_raw_response.create(
        model="whatever", messages=CHAT, temperature=0.2, metadata={"tenantSlug": "acme"}
    )
    completion = raw.parse()
    rid = raw.headers["x-llmops-request-id"]

    sent = fake.requests[-1]
    assert sent.method == "POST" and sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test-key-456"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers  # the gateway secret stays with the gateway
    assert sent.json == {
        "model": MODEL,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        "max_tokens": 4096,
        "temperature": 0.2,
    }

    assert completion.object == "chat.completion"
    assert completion.id == "msg_fake" and completion.model == MODEL
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == DEFAULT_ANSWER
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.completion_tokens == ANSWER_TOKENS
    assert completion.usage.total_tokens == PROMPT_TOKENS + ANSWER_TOKENS

    row = gateway.row(rid)
    assert row["status_code"] == 200 and row["error_type"] is None
    assert row["endpoint"] == "chat.completions"
    assert row["provider"] == "anthropic" and row["credential_slug"] == "claude"
    assert row["model"] == MODEL and row["requested_model"] == "whatever"
    assert row["config_slug"] == CONFIG and row["variant_name"] == "default"
    assert row["prompt_tokens"] == PROMPT_TOKENS
    assert row["completion_tokens"] == ANSWER_TOKENS
    assert row["total_tokens"] == PROMPT_TOKENS + ANSWER_TOKENS
    assert row["cached_tokens"] == 0 and row["cache_write_tokens"] == 0
    assert row["usage_source"] == "provider"
    assert row["tags"] == {"tenantSlug": "acme"}
    assert row["is_streaming"] is False and row["ttft_ms"] is None


def test_max_tokens_and_stop_are_translated(gateway: Gateway, fake: FakeProviderServer) -> None:
    gateway.client(CONFIG).chat.completions.create(
        model="m", messages=CHAT, max_completion_tokens=64, stop="\n\n", user="u-42"
    )
    sent = fake.requests[-1].json
    assert sent["max_tokens"] == 64
    assert sent["stop_sequences"] == ["\n\n"]
    assert sent["metadata"] == {"user_id": "u-42"}


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
def test_stream_is_translated_to_chunks_and_usage_is_recorded_either_way(
    gateway: Gateway, fake: FakeProviderServer, include_usage: bool
) -> None:
    options: Any = {"include_usage": True} if include_usage else openai.omit
    chunks = list(
        gateway.client(CONFIG).chat.completions.create(
            model="m", messages=CHAT, stream=True, stream_options=options
        )
    )

    sent = fake.requests[-1].json
    assert sent["stream"] is True and "stream_options" not in sent
    assert sent["system"] == SYSTEM

    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.id for c in chunks} == {"msg_fake"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_ANSWER
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f is not None] == ["stop"]
    with_usage = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert with_usage == [chunks[-1]] and chunks[-1].choices == []
        usage = chunks[-1].usage
        assert usage is not None
        assert usage.prompt_tokens == PROMPT_TOKENS
        assert usage.completion_tokens == ANSWER_TOKENS
        assert usage.total_tokens == PROMPT_TOKENS + ANSWER_TOKENS
    else:
        assert with_usage == []
        assert all(c.choices for c in chunks)

    (row,) = gateway.rows(1)
    assert row["status_code"] == 200 and row["error_type"] is None
    assert row["provider"] == "anthropic" and row["is_streaming"] is True
    assert row["prompt_tokens"] == PROMPT_TOKENS
    assert row["completion_tokens"] == ANSWER_TOKENS
    assert row["usage_source"] == "provider"
    assert row["ttft_ms"] is not None and 0 <= row["ttft_ms"] <= row["latency_ms"]


# --- tools --------------------------------------------------------------------------------------


def test_tool_calls_round_trip(gateway: Gateway, fake: FakeProviderServer) -> None:
    client = gateway.client(CONFIG)
    fake.enqueue(
        json=message(
            [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": PARIS},
                {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": LONDON},
            ],
            "tool_use",
            input_tokens=50,
            output_tokens=20,
        )
    )
    first = client.chat.completions.create(
        model="m", messages=[WEATHER_QUESTION], tools=[WEATHER_TOOL], tool_choice="required"
    )

    sent = fake.requests[-1].json
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The current weather in a city",
            "input_schema": WEATHER_PARAMETERS,
        }
    ]
    assert sent["tool_choice"] == {"type": "any"}

    (choice,) = first.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert [c.id for c in calls] == ["toolu_01", "toolu_02"]
    assert {c.type for c in calls} == {"function"}
    functions = [c.function for c in calls]  # type: ignore[union-attr]
    assert [f.name for f in functions] == ["get_weather", "get_weather"]
    assert [json.loads(f.arguments) for f in functions] == [PARIS, LONDON]
    row = gateway.rows(1)[-1]
    assert row["prompt_tokens"] == 50 and row["completion_tokens"] == 20

    # The follow-up, as an OpenAI client sends it: the assistant turn with its tool calls, then
    # one `tool` message per call.
    assistant: Any = {
        "role": "assistant",
        "content": choice.message.content,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": f.name, "arguments": f.arguments},
            }
            for c, f in zip(calls, functions, strict=True)
        ],
    }
    follow_up = client.chat.completions.create(
        model="m",
        messages=[
            WEATHER_QUESTION,
            assistant,
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18°C and sunny"},
            {"role": "tool", "tool_call_id": "toolu_02", "content": "12°C and raining"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert follow_up.choices[0].message.content == DEFAULT_ANSWER
    assert follow_up.choices[0].finish_reason == "stop"

    sent = fake.requests[-1].json
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": WEATHER_QUESTION["content"]}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": PARIS},
                {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": LONDON},
            ],
        },
        {  # both results in one user turn: Anthropic requires the roles to alternate
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C and sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "12°C and raining"},
            ],
        },
    ]
    assert "tool_choice" not in sent  # left to Anthropic's default, as the client did
    assert len(gateway.rows(2)) == 2


def test_streamed_tool_calls_accumulate_in_the_openai_client(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    fake.enqueue(
        stream=[
            message_start(40),
            {"type": "ping"},
            *text_block(0, "Checking", " both."),
            *tool_block(
                1, "toolu_01", "get_weather", "", '{"city": "Pa', 'ris", "unit": "cel', 'sius"}'
            ),
            *tool_block(2, "toolu_02", "get_weather", '{"ci', 'ty": "London"}'),
            *message_end("tool_use", 25),
        ]
    )
    with gateway.client(CONFIG).chat.completions.stream(
        model="m", messages=[WEATHER_QUESTION], tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_completion()

    assert fake.requests[-1].json["tools"][0]["input_schema"] == WEATHER_PARAMETERS
    (choice,) = final.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking both."
    calls = choice.message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name) for c in calls] == [
        ("toolu_01", "get_weather"),
        ("toolu_02", "get_weather"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [PARIS, LONDON]

    (row,) = gateway.rows(1)
    assert row["status_code"] == 200 and row["error_type"] is None
    assert row["is_streaming"] is True
    assert row["prompt_tokens"] == 40 and row["completion_tokens"] == 25
    assert row["usage_source"] == "provider"


# --- usage --------------------------------------------------------------------------------------

CACHE_USAGE = {
    "input_tokens": 12,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
    "output_tokens": 30,
}


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
def test_cache_reads_and_writes_are_counted_into_the_prompt(
    gateway: Gateway, fake: FakeProviderServer, stream: bool
) -> None:
    fake.enqueue(usage=CACHE_USAGE)
    document = {
        "type": "text",
        "text": "A long document worth caching.",
        "cache_control": {"type": "ephemeral"},
    }
    messages: Any = [{"role": "user", "content": [document, {"type": "text", "text": "Summarise"}]}]
    client = gateway.client(CONFIG)
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="m", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(model="m", messages=messages).usage

    sent = fake.requests[-1].json
    assert sent["messages"][0]["content"][0] == document  # cache_control passes through

    assert usage is not None
    assert usage.prompt_tokens == 1212 and usage.completion_tokens == 30
    assert usage.total_tokens == 1242
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1000

    (row,) = gateway.rows(1)
    assert row["prompt_tokens"] == 12 + 1000 + 200
    assert row["cached_tokens"] == 1000
    assert row["cache_write_tokens"] == 200
    assert row["completion_tokens"] == 30 and row["total_tokens"] == 1242
    assert row["usage_source"] == "provider"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "message", "exception"),
    [
        (
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
            openai.RateLimitError,
        ),
        (529, "overloaded_error", "Overloaded", openai.InternalServerError),
        (400, "invalid_request_error", "max_tokens: must be at most 8192", openai.BadRequestError),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
def test_anthropic_errors_become_openai_errors(
    gateway: Gateway,
    fake: FakeProviderServer,
    status: int,
    error_type: str,
    message: str,
    exception: type[openai.APIStatusError],
    stream: bool,
) -> None:
    fake.enqueue(
        status=status,
        json={"type": "error", "error": {"type": error_type, "message": message}},
        headers={"retry-after": "3", "anthropic-ratelimit-requests-remaining": "0"},
    )
    with pytest.raises(openai.APIStatusError) as e:
        gateway.client(CONFIG).chat.completions.create(model="m", messages=CHAT, stream=stream)
    assert type(e.value) is exception
    assert e.value.status_code == status
    assert e.value.body == {"message": message, "type": error_type, "param": None, "code": None}
    headers = e.value.response.headers
    assert headers["retry-after"] == "3"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["x-llmops-request-id"]

    row = gateway.row(headers["x-llmops-request-id"])
    assert row["status_code"] == status
    assert row["error_type"] == f"upstream_{status}"
    assert row["provider"] == "anthropic" and row["is_streaming"] is stream
    assert row["usage_source"] == "missing" and row["prompt_tokens"] is None


def test_endpoints_anthropic_cannot_serve_are_refused_before_the_provider(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    client = gateway.client(CONFIG)
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="m", input=["a", "b"])
    assert e.value.body["param"] == "model"  # type: ignore[index]
    assert e.value.body["code"] == "unsupported_endpoint"  # type: ignore[index]
    assert "anthropic" in e.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="m", prompt="Say hi")
    assert e.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="m", input="Say hi")
    assert e.value.body["param"] == "model"  # type: ignore[index]
    assert fake.requests == []

    rows = gateway.rows(3)
    assert [r["endpoint"] for r in rows] == ["embeddings", "completions", "responses"]
    for row in rows:
        assert row["status_code"] == 400 and row["error_type"] == "unsupported_endpoint"
        assert row["provider"] == "anthropic" and row["config_slug"] == CONFIG


def test_an_error_event_mid_stream_raises_in_the_client_and_is_recorded(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    fake.enqueue(
        stream=[
            message_start(40),
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Part"},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "ial"},
            },
            OVERLOADED,
        ]
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as e:
        for chunk in gateway.client(CONFIG).chat.completions.create(
            model="m", messages=CHAT, stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Partial"
    assert e.value.message == "Overloaded"
    assert e.value.body == {
        "message": "Overloaded",
        "type": "overloaded_error",
        "param": None,
        "code": None,
    }

    (row,) = gateway.rows(1)
    assert row["error_type"] == "overloaded_error"
    assert row["is_streaming"] is True
    assert row["prompt_tokens"] == 40  # what message_start reported is kept
    assert row["usage_source"] == "provider"


def test_a_stream_cut_off_midway_raises_in_the_client_and_keeps_the_usage_so_far(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    fake.enqueue(
        stream=[
            message_start(40),
            *text_block(0, "one", " two", " three"),
            *message_end("end_turn", 9),
        ],
        reset_after=4,  # message_start, the block start and two deltas
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as e:
        for chunk in gateway.client(CONFIG).chat.completions.create(
            model="m", messages=CHAT, stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one two"
    assert "closed the stream" in str(e.value)

    (row,) = gateway.rows(1)
    assert row["status_code"] == 502 and row["error_type"] == "upstream_disconnected"
    assert row["prompt_tokens"] == 40 and row["completion_tokens"] == 1


def test_a_stream_that_ends_before_message_stop_is_not_taken_as_complete(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    # The connection closes cleanly, but the message never finished: no message_delta, no
    # message_stop. The OpenAI SDK would end such a stream silently without an error event.
    fake.enqueue(stream=[message_start(40), *text_block(0, "one", " two")])
    received: list[str] = []
    with pytest.raises(openai.APIError) as e:
        for chunk in gateway.client(CONFIG).chat.completions.create(
            model="m", messages=CHAT, stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one two"
    assert "before it was complete" in str(e.value)
    assert e.value.body["code"] == "upstream_incomplete"  # type: ignore[index]

    (row,) = gateway.rows(1)
    assert row["error_type"] == "upstream_incomplete"
    assert row["prompt_tokens"] == 40 and row["usage_source"] == "provider"
