"""The gateway through the official openai client: every endpoint, streamed and not, on both
databases, asserting on what the client gets, what the provider got, and the stored row."""

from __future__ import annotations

import uuid

import pytest

from llmops.testing import DEFAULT_ANSWER, FakeProviderServer, count_tokens
from tests.conftest import Gateway, GatewayFactory

HELLO = [{"role": "user", "content": "Hello, gateway"}]


def test_chat_completion_is_proxied_and_logged_with_the_request_id(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="whatever", messages=HELLO, metadata={"tenantSlug": "acme-corp", "userId": "u1"}
    )
    completion = raw.parse()
    rid = raw.headers["x-llmops-request-id"]
    assert uuid.UUID(rid).version == 7
    assert completion.choices[0].message.content == DEFAULT_ANSWER
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "gpt-4o-mini"  # the variant's model wins
    assert sent.json["temperature"] == 0.5  # the variant's parameter is merged in
    assert "metadata" not in sent.json  # tags are not forwarded
    assert sent.headers["authorization"] == "Bearer sk-test-provider-key-123"
    row = gateway.row(rid)
    assert row["status_code"] == 200
    assert row["endpoint"] == "chat.completions"
    assert row["model"] == "gpt-4o-mini" and row["requested_model"] == "whatever"
    assert row["config_slug"] == "chat" and row["variant_name"] == "default"
    assert row["variant_version"] == 1
    assert row["environment_name"] == "test"
    assert row["provider"] == "openai-compatible" and row["credential_slug"] == "oai"
    assert row["prompt_tokens"] == count_tokens("Hello, gateway")
    assert row["completion_tokens"] == count_tokens(DEFAULT_ANSWER)
    assert row["usage_source"] == "provider"
    assert row["tags"] == {"tenantSlug": "acme-corp", "userId": "u1"}
    assert row["is_streaming"] is False
    assert row["latency_ms"] >= 0


def test_stream_passes_chunks_and_keeps_usage_when_the_client_asks(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    stream = gateway.client().chat.completions.create(
        model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_ANSWER
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == count_tokens(DEFAULT_ANSWER)
    (row,) = gateway.rows(1)
    assert row["is_streaming"] is True
    assert row["completion_tokens"] == count_tokens(DEFAULT_ANSWER)
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["latency_ms"]


def test_stream_asks_upstream_for_usage_and_strips_it_when_the_client_did_not(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    chunks = list(gateway.client().chat.completions.create(model="m", messages=HELLO, stream=True))
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # the usage-only chunk was removed
    (row,) = gateway.rows(1)
    assert row["prompt_tokens"] == count_tokens("Hello, gateway")
    assert row["usage_source"] == "provider"


def test_completions_embeddings_and_models(gateway: Gateway, fake: FakeProviderServer) -> None:
    client = gateway.client()
    text = client.completions.create(model="m", prompt="Say hi")
    assert text.choices[0].text == DEFAULT_ANSWER
    emb = client.embeddings.create(model="m", input=["a", "b"])
    assert len(emb.data) == 2 and emb.usage.prompt_tokens == 1
    models = [m.id for m in gateway.client(config=None).models.list()]
    assert "gpt-4o-mini" in models and "model-a" in models
    rows = gateway.rows(2)
    assert sorted(r["endpoint"] for r in rows) == ["completions", "embeddings"]
    assert all(r["usage_source"] == "provider" for r in rows)


def test_responses_api_streamed_and_not(gateway: Gateway, fake: FakeProviderServer) -> None:
    client = gateway.client()
    resp = client.responses.create(model="m", input="Tell me something")
    assert resp.output_text == DEFAULT_ANSWER
    events = list(client.responses.create(model="m", input="Tell me something", stream=True))
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == DEFAULT_ANSWER
    rows = gateway.rows(2)
    assert [r["endpoint"] for r in rows] == ["responses", "responses"]
    for r in rows:
        assert r["prompt_tokens"] == count_tokens("Tell me something")
        assert r["completion_tokens"] == count_tokens(DEFAULT_ANSWER)
    assert [r["is_streaming"] for r in rows] == [False, True]


def test_ab_split_is_sticky_per_user_and_uses_both_arms(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    client = gateway.client("ab")
    seen: dict[str, set[str]] = {}
    for user in [f"user{i}" for i in range(12)]:
        for _ in range(2):
            client.chat.completions.create(model="m", messages=HELLO, metadata={"userId": user})
            seen.setdefault(user, set()).add(fake.requests[-1].json["model"])
    assert all(len(models) == 1 for models in seen.values())
    assert set().union(*seen.values()) == {"model-a", "model-b"}


def test_variant_prompt_is_rendered_with_input_variables(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    gateway.client("prompted").chat.completions.create(
        model="m",
        messages=HELLO,
        extra_body={"input_variables": {"product": "Acme", "plan": "pro"}},
    )
    sent = fake.requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "You help customers of Acme."},
        {"role": "user", "content": "My plan is pro."},
        *HELLO,
    ]
    assert "input_variables" not in sent


def test_missing_input_variable_is_a_400_naming_it(gateway: Gateway) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        gateway.client("prompted").chat.completions.create(
            model="m", messages=HELLO, extra_body={"input_variables": {"product": "Acme"}}
        )
    assert e.value.body["param"] == "input_variables.plan"  # type: ignore[index]


def test_direct_provider_routing_without_a_config(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    r = gateway.client(config=None).chat.completions.create(
        model="@oai/gpt-4.1-nano", messages=HELLO
    )
    assert r.choices[0].message.content == DEFAULT_ANSWER
    assert fake.requests[-1].json["model"] == "gpt-4.1-nano"
    (row,) = gateway.rows(1)
    assert row["config_id"] is None and row["model"] == "gpt-4.1-nano"
    assert row["credential_slug"] == "oai"


def test_a_secret_of_one_environment_cannot_use_configs_of_another(gateway: Gateway) -> None:
    import openai

    with pytest.raises(openai.NotFoundError):
        gateway.client("other-only").chat.completions.create(model="m", messages=HELLO)
    r = gateway.client("other-only", api_key=gateway.other_secret).chat.completions.create(
        model="m", messages=HELLO
    )
    assert r.choices[0].message.content == DEFAULT_ANSWER


def test_bodies_are_stored_only_when_enabled_capped_and_redacted(
    gateway_factory: GatewayFactory, fake: FakeProviderServer
) -> None:
    import sqlalchemy as sa

    from llmops.store import schema as s

    off = gateway_factory()
    off.client().chat.completions.create(model="m", messages=HELLO)
    off.rows(1)
    assert off.query(lambda c: c.execute(sa.select(s.llm_request_bodies)).all()) == []
    on = gateway_factory(log_bodies=True, max_logged_body_bytes=300)
    r = on.client().chat.completions.with_raw_response.create(
        model="m", messages=HELLO, extra_body={"user_api_key": "sk-should-not-be-stored"}
    )
    list(on.client().chat.completions.create(model="m", messages=HELLO, stream=True))
    on.rows(3)
    bodies = on.query(
        lambda c: [
            dict(x._mapping)
            for x in c.execute(
                sa.select(s.llm_request_bodies).order_by(s.llm_request_bodies.c.request_id)
            )
        ]
    )
    assert len(bodies) == 2
    first = next(b for b in bodies if str(b["request_id"]) == r.headers["x-llmops-request-id"])
    assert "Hello, gateway" in first["request_body"]
    assert "sk-should-not-be-stored" not in first["request_body"]
    assert "[REDACTED]" in first["request_body"]
    assert first["truncated"] is True  # the answer is longer than 300 bytes
    assert len(first["response_body"]) <= 300
    stream_body = next(b for b in bodies if b is not first)
    assert stream_body["response_body"].startswith("data: {")
