"""Bad input fuzzing of the gateway: whatever JSON (or non-JSON) a client sends, the answer is a
proper status with the OpenAI error envelope, never a 500 and never a stack trace."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.testing import FakeProviderServer
from tests.conftest import Gateway, GatewayFactory, http

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
fields = st.sampled_from(
    [
        "model",
        "messages",
        "stream",
        "metadata",
        "stream_options",
        "input_variables",
        "tools",
        "temperature",
        "n",
        "prompt",
        "input",
        "user",
        "max_tokens",
    ]
)
bodies = st.dictionaries(fields, values, max_size=6) | st.dictionaries(
    fields,
    st.just([{"role": "user", "content": "hi"}]) | values,
    max_size=6,
)


@pytest.fixture
def one_gateway(gateway_factory: GatewayFactory, request: pytest.FixtureRequest) -> Gateway:
    if "postgres" in request.node.name:
        pytest.skip("fuzzed on SQLite; the request path does not touch the database")
    return gateway_factory()


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=bodies,
    config=st.sampled_from(["chat", "claude-chat", "prompted", "nope", ""]),
    endpoint=st.sampled_from(["chat/completions", "completions", "embeddings", "responses"]),
)
def _fuzz(gw: Gateway, body: dict[str, object], config: str, endpoint: str) -> None:
    r = http(
        "POST",
        f"{gw.base_url}/{endpoint}",
        json.dumps(body),
        {
            "authorization": f"Bearer {gw.secret}",
            "x-llmops-config": config,
            "content-type": "application/json",
        },
        timeout=20,
    )
    assert r.status_code != 500, (body, r.text)
    assert r.headers.get("x-llmops-request-id")
    assert "Traceback" not in r.text
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        assert set(r.json()["error"]) >= {"message", "type"}


def test_fuzzed_bodies_never_get_a_500(
    one_gateway: Gateway, fake: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        _fuzz(one_gateway)
    for secret in (one_gateway.secret, "sk-test-provider-key-123", "sk-ant-test-key-456"):
        assert secret not in caplog.text  # no secret or provider key in the logs


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        b"{" * 5000,
        b'{"messages": [' * 300,
        b"null",
        b'"string"',
        b"1e999",
        b'{"model": "\\u0000"}',
    ],
)
def test_malformed_payloads(one_gateway: Gateway, raw: bytes) -> None:
    r = http(
        "POST",
        one_gateway.base_url + "/chat/completions",
        raw,
        {"authorization": f"Bearer {one_gateway.secret}", "x-llmops-config": "chat"},
    )
    assert 400 <= r.status_code < 500 and "Traceback" not in r.text, r.text
