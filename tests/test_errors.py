"""Bad input and failing providers: each a clear OpenAI-envelope error with the right status and a
request id, never a 500 with a stack trace, never a hung connection — and each one logged."""

from __future__ import annotations

import socket
import time

import openai
import pytest

from llmops.testing import FakeProviderServer
from tests.conftest import Gateway, GatewayFactory, HttpResponse, http

HELLO = [{"role": "user", "content": "Hello"}]


def _post(
    gw: Gateway,
    body: bytes | str,
    *,
    config: str = "chat",
    auth: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    hdrs = {
        "authorization": auth or f"Bearer {gw.secret}",
        "x-llmops-config": config,
        "content-type": "application/json",
        **(headers or {}),
    }
    return http("POST", gw.base_url + "/chat/completions", body, hdrs)


def _assert_envelope(r: HttpResponse, status: int, param: str | None = None) -> dict[str, str]:
    assert r.status_code == status, r.text
    assert r.headers["x-llmops-request-id"]
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text
    if param is not None:
        assert err["param"] == param
    return err


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        (b'{"model": "m"}', "messages"),
        (b'{"messages": "hi"}', "messages"),
        (b'{"messages": [{"content": "no role"}]}', "messages[0]"),
        (b'{"messages": [], "model": 5}', "model"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"messages": [{"role": "user", "content": "x"}], "metadata": {"k": 1}}', "metadata.k"),
        (b'{"messages": [{"role": "user", "content": "x"}], "metadata": "tags"}', "metadata"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(
    gateway: Gateway, body: bytes, param: str | None
) -> None:
    _assert_envelope(_post(gateway, body), 400, param)


def test_metadata_limits_are_enforced(gateway: Gateway) -> None:
    too_many = {f"k{i}": "v" for i in range(17)}
    with pytest.raises(openai.BadRequestError) as e:
        gateway.client().chat.completions.create(model="m", messages=HELLO, metadata=too_many)
    assert e.value.body["param"] == "metadata"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as e:
        gateway.client().chat.completions.create(
            model="m", messages=HELLO, metadata={"note": "x" * 513}
        )
    assert e.value.body["param"] == "metadata.note"  # type: ignore[index]
    r = _post(
        gateway,
        b'{"messages": [{"role": "user", "content": "x"}]}',
        headers={"x-llmops-tags": "not json"},
    )
    _assert_envelope(r, 400, "x-llmops-tags")


def test_tags_header_is_merged_with_metadata(gateway: Gateway) -> None:
    r = _post(
        gateway,
        b'{"messages": [{"role": "user", "content": "x"}], "metadata": {"a": "1"}}',
        headers={"x-llmops-tags": '{"a": "0", "feature": "search"}'},
    )
    assert r.status_code == 200
    row = gateway.row(r.headers["x-llmops-request-id"])
    assert row["tags"] == {"a": "1", "feature": "search"}


def test_bad_or_missing_secret_is_401(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        gateway.client(api_key="llmops_deadbeef_wrong").chat.completions.create(
            model="m", messages=HELLO
        )
    with pytest.raises(openai.AuthenticationError):
        gateway.client(api_key="sk-not-ours").chat.completions.create(model="m", messages=HELLO)
    r = http("POST", gateway.base_url + "/chat/completions", '{"messages": []}')
    _assert_envelope(r, 401)


def test_unknown_config_is_404(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        gateway.client("no-such-config").chat.completions.create(model="m", messages=HELLO)
    assert e.value.body["param"] == "x-llmops-config"  # type: ignore[index]
    assert e.value.response.headers["x-llmops-request-id"]
    rows = gateway.rows(1)
    assert rows[-1]["status_code"] == 404 and rows[-1]["error_type"] == "config_not_found"


def test_no_route_and_unknown_provider(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        gateway.client(config=None).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert e.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        gateway.client(config=None).chat.completions.create(model="@nope/gpt-4o", messages=HELLO)


def test_oversized_body_is_413(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(max_body_bytes=1000)
    big = '{"messages": [{"role": "user", "content": "' + "x" * 2000 + '"}]}'
    _assert_envelope(_post(gw, big), 413)
    with pytest.raises(openai.APIStatusError) as e:
        gw.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x" * 2000}]
        )
    assert e.value.status_code == 413


def test_unknown_path_and_wrong_method(gateway: Gateway) -> None:
    r = http("GET", gateway.base_url + "/nope")
    _assert_envelope(r, 404)
    r = http(
        "GET",
        gateway.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {gateway.secret}"},
    )
    _assert_envelope(r, 400)


def test_upstream_down_is_502(gateway: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        gateway.client("broken").chat.completions.create(model="m", messages=HELLO)
    assert e.value.status_code == 502
    (row,) = gateway.rows(1)
    assert row["status_code"] == 502 and row["error_type"] == "upstream_unreachable"
    assert row["usage_source"] == "missing" and row["total_cost"] is None


def test_upstream_errors_pass_through_with_their_body(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    fake.enqueue(status=500, json={"error": {"message": "model exploded", "type": "server_error"}})
    with pytest.raises(openai.InternalServerError) as e:
        gateway.client().chat.completions.create(model="m", messages=HELLO)
    assert e.value.body["message"] == "model exploded"  # type: ignore[index]
    fake.enqueue(
        status=429,
        json={"error": {"message": "slow down"}},
        headers={"retry-after": "7", "x-ratelimit-remaining-requests": "0"},
    )
    with pytest.raises(openai.RateLimitError) as e2:
        gateway.client().chat.completions.create(model="m", messages=HELLO)
    assert e2.value.response.headers["retry-after"] == "7"
    rows = gateway.rows(2)
    assert [r["status_code"] for r in rows] == [500, 429]
    assert rows[0]["error_type"] == "upstream_500"


def test_upstream_timeout_is_504(gateway_factory: GatewayFactory, fake: FakeProviderServer) -> None:
    gw = gateway_factory(upstream_timeout=0.3)
    fake.enqueue(delay=1.5)
    with pytest.raises(openai.APIStatusError) as e:
        gw.client().chat.completions.create(model="m", messages=HELLO)
    assert e.value.status_code == 504
    (row,) = gw.rows(1)
    assert row["status_code"] == 504 and row["error_type"] == "upstream_timeout"


def test_upstream_reset_mid_stream_terminates_the_client_stream_and_is_logged(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    fake.enqueue(stream=["one", " two", " three", " four"], reset_after=2)
    received = []
    with pytest.raises(openai.APIError) as e:
        for chunk in gateway.client().chat.completions.create(
            model="m", messages=HELLO, stream=True
        ):
            received.append(chunk.choices[0].delta.content)
    assert received == ["one", " two"]
    assert "closed the stream" in str(e.value)
    (row,) = gateway.rows(1)
    assert row["status_code"] == 502 and row["error_type"] == "upstream_disconnected"
    assert row["is_streaming"] is True
    # No usage chunk arrived: the row says its usage is an estimate, not a silent 0.
    assert row["usage_source"] == "estimated"
    assert row["completion_tokens"] == 1 and row["prompt_tokens"] == 2  # 2 events; "Hello"


def test_client_disconnect_mid_stream_is_logged_as_cancelled(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    fake.enqueue(stream=[f" w{i}" for i in range(40)], chunk_delay=0.05)
    body = b'{"messages": [{"role": "user", "content": "hi"}], "stream": true}'
    req = (
        f"POST /llmops/api/genai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {gateway.secret}\r\nx-llmops-config: chat\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=10) as sock:
        sock.sendall(req)
        received = b""
        while b"data:" not in received:  # leave after the first event
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
    (row,) = gateway.rows(1)
    assert row["status_code"] == 499 and row["error_type"] == "client_disconnected"
    # The gateway hung up on the provider too, instead of reading the rest of the answer.
    deadline = time.monotonic() + 5
    while fake.cancelled_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.cancelled_streams == 1 and fake.sent_events < 40
    assert row["usage_source"] == "estimated" and row["completion_tokens"] >= 0
