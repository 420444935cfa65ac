"""The server as a user runs it: `llmops demo`, routing changes picked up live, backpressure,
operations endpoints, settings documentation."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
import yaml

import llmops
from llmops.cli import apply_file
from llmops.settings import Settings, describe
from llmops.testing import DEFAULT_ANSWER, FakeProviderServer, free_port
from tests.conftest import Gateway, GatewayFactory, http

ROOT = Path(__file__).parent.parent


def test_demo_prints_a_working_snippet_and_sigterm_flushes_its_row(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LLMOPS_DATA_DIR": str(tmp_path / "state"),
        "LLMOPS_FLUSH_INTERVAL_MS": "600000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops.cli", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = ""
        assert proc.stdout is not None
        while "print(reply" not in out:
            line = proc.stdout.readline()
            assert line, out
            out += line
        base = re.search(r'base_url="([^"]+)"', out).group(1)  # type: ignore[union-attr]
        key = re.search(r'api_key="([^"]+)"', out).group(1)  # type: ignore[union-attr]
        config = re.search(r'"x-llmops-config": "([^"]+)"', out).group(1)  # type: ignore[union-attr]
        _wait_port(port)
        with openai.OpenAI(
            base_url=base, api_key=key, default_headers={"x-llmops-config": config}, max_retries=0
        ) as client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Hi"}],
                metadata={"tenantSlug": "acme-corp"},
            )
        assert reply.choices[0].message.content == DEFAULT_ANSWER
        assert reply.usage is not None and reply.usage.completion_tokens > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    # uvicorn re-raises SIGTERM after its graceful shutdown; the row below was written by the
    # shutdown flush (the flush interval is ten minutes).
    assert proc.returncode in (0, -15)
    settings = Settings.load({}, data_dir=tmp_path / "state")
    assert (tmp_path / "state" / "llmops.db").exists() and (
        tmp_path / "state" / "secret.key"
    ).exists()
    from llmops.cli import run_in_store

    rows = run_in_store(
        settings,
        lambda c: c.exec_driver_sql(
            "SELECT prompt_tokens, completion_tokens, tags FROM llm_requests"
        ).all(),
    )
    assert len(rows) == 1 and rows[0][1] > 0 and "acme-corp" in rows[0][2]


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not listen")


def test_apply_while_serving_reaches_the_gateway_within_the_ttl(
    gateway_factory: GatewayFactory, fake: FakeProviderServer, tmp_path: Path
) -> None:
    gw = gateway_factory(snapshot_ttl=0.2)
    client = gw.client("late-config")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    doc = tmp_path / "more.yaml"
    doc.write_text(
        yaml.safe_dump(
            {
                "configs": [
                    {
                        "slug": "late-config",
                        "variants": [{"name": "v", "provider": "oai", "model": "late-model"}],
                        "targeting": {"test": {"variant": "v"}},
                    }
                ]
            }
        )
    )
    apply_file(gw.settings, doc)
    time.sleep(0.6)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert fake.requests[-1].json["model"] == "late-model"


def test_a_client_that_stops_reading_does_not_make_the_gateway_buffer(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    piece = "x" * 8192
    fake.enqueue(stream=[piece] * 6000)  # ~50 MB of SSE if it were all read
    body = b'{"messages": [{"role": "user", "content": "hi"}], "stream": true}'
    req = (
        f"POST /llmops/api/genai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {gateway.secret}\r\nx-llmops-config: chat\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(req)
        sock.recv(1024)
        time.sleep(2.0)  # read nothing more
        sent_while_stalled = fake.sent_events
    assert sent_while_stalled < 3000, sent_while_stalled


def test_health_ready_and_metrics(gateway: Gateway) -> None:
    assert http("GET", gateway.server.url + "/healthz").status_code == 200
    ready = http("GET", gateway.server.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    gateway.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    gateway.rows(1)
    metrics = http("GET", gateway.server.url + "/metrics", headers=gateway.admin_headers).text
    assert "llmops_log_rows_written_total 1" in metrics


def test_every_setting_is_documented() -> None:
    from llmops.settings import markdown

    doc = (ROOT / "docs" / "settings.md").read_text()
    assert doc == markdown(), "regenerate: python -m llmops.settings > docs/settings.md"
    for name, _default, help_text in describe():
        assert name in doc and help_text, name
    assert Settings.load({"LLMOPS_PORT": "4100"}, port=None).port == 4100
    assert Settings.load({"LLMOPS_PORT": "4100"}, port=4200).port == 4200
    assert Settings.load({"DATABASE_URL": "postgresql://h/db"}).is_postgres
    with pytest.raises(ValueError, match="LLMOPS_PORT"):
        Settings.load({"LLMOPS_PORT": "abc"})


def test_public_surface() -> None:
    assert llmops.__all__ == ["Settings", "__version__"]


def test_serve_with_two_workers_lands_every_row_once(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    import sqlalchemy as sa

    from llmops.cli import run_in_store
    from llmops.store import schema as s
    from tests.conftest import gateway_document

    port = free_port()
    env = {
        **os.environ,
        "LLMOPS_DATA_DIR": str(tmp_path / "state"),
        "LLMOPS_FLUSH_INTERVAL_MS": "100",
    }
    doc = tmp_path / "doc.yaml"
    doc.write_text(yaml.safe_dump(gateway_document(fake.base_url, "http://127.0.0.1:9/v1")))
    out = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "apply", str(doc)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    secret = out.split("secret for environment test (shown once, store it now): ")[1].split()[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        ids = set()
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=secret,
            max_retries=0,
            default_headers={"x-llmops-config": "chat"},
        ) as client:
            for _ in range(40):
                raw = client.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": "x"}]
                )
                ids.add(raw.headers["x-llmops-request-id"])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    settings = Settings.load({}, data_dir=tmp_path / "state")
    stored = run_in_store(
        settings, lambda c: [str(i) for i in c.execute(sa.select(s.llm_requests.c.id)).scalars()]
    )
    assert sorted(stored) == sorted(ids)


def test_uuid7_ids_are_version_7_ordered_and_unique_across_fork() -> None:
    import uuid

    from llmops.ids import uuid7

    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)  # strictly increasing, also within one millisecond
    now_ms = time.time_ns() // 1_000_000
    assert abs(int.from_bytes(ids[-1].bytes[:6], "big") - now_ms) < 1_000
    assert uuid7(1_000).bytes[:6] == (1_000).to_bytes(6, "big")
    # A forked child must not repeat its parent's ids (run in a fresh interpreter: forking the
    # test process itself, with its threads, is not safe).
    script = (
        "import os\nfrom llmops.ids import uuid7\nuuid7()\nr, w = os.pipe()\npid = os.fork()\n"
        "if pid == 0:\n    os.write(w, b''.join(uuid7().bytes for _ in range(50)))\n"
        "    os._exit(0)\nos.waitpid(pid, 0)\nchild = os.read(r, 800)\n"
        "parent = b''.join(uuid7().bytes for _ in range(50))\n"
        "a = {child[i+6:i+16] for i in range(0, 800, 16)}\n"
        "b = {parent[i+6:i+16] for i in range(0, 800, 16)}\n"
        "print(len(a), len(b), len(a & b))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    assert out == ["50", "50", "0"]
