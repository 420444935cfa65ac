"""SIGTERM under load: the server stops accepting, finishes in-flight requests and streams, and
writes every row before it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import sqlalchemy as sa
import yaml

from llmops.cli import run_in_store
from llmops.settings import Settings
from llmops.store import schema as s
from llmops.testing import FakeProviderServer, free_port
from tests.conftest import gateway_document
from tests.test_server import _wait_port


def test_sigterm_under_load_loses_nothing(
    database_url: str, tmp_path: Path, fake: FakeProviderServer
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LLMOPS_DATA_DIR": str(tmp_path / "state"),
        "LLMOPS_DATABASE_URL": database_url,
        "LLMOPS_PORT": str(port),
        "LLMOPS_FLUSH_INTERVAL_MS": "600000",  # only the shutdown flush writes rows
        "LLMOPS_MAX_BATCH_SIZE": "1000000",
    }
    doc = tmp_path / "doc.yaml"
    doc.write_text(yaml.safe_dump(gateway_document(fake.base_url, "http://127.0.0.1:9/v1")))
    applied = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "apply", str(doc)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    secret = applied.stdout.split("secret for environment test (shown once, store it now): ")[1]
    secret = secret.split()[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "llmops.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port)
    for _ in range(40):  # some slow streams will be open when SIGTERM arrives
        fake.enqueue(stream=[f" w{i}" for i in range(10)], chunk_delay=0.08)
    done: list[str] = []
    failed: list[BaseException] = []
    stop = threading.Event()

    def worker(streaming: bool) -> None:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/llmops/api/genai/v1",
            api_key=secret,
            default_headers={"x-llmops-config": "chat"},
            max_retries=0,
            timeout=30,
        )
        with client:
            while not stop.is_set():
                try:
                    if streaming:
                        with client.chat.completions.with_streaming_response.create(
                            model="m", messages=[{"role": "user", "content": "x"}], stream=True
                        ) as resp:
                            rid = resp.headers["x-llmops-request-id"]
                            text = "".join(resp.iter_lines())
                        assert "[DONE]" in text
                    else:
                        raw = client.chat.completions.with_raw_response.create(
                            model="m", messages=[{"role": "user", "content": "x"}]
                        )
                        rid = raw.headers["x-llmops-request-id"]
                    done.append(rid)
                except openai.APIConnectionError:
                    return  # the server stopped accepting: expected after SIGTERM
                except BaseException as e:  # anything else is a lost or broken request
                    failed.append(e)
                    return

    threads = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.send_signal(signal.SIGTERM)
    in_flight_at_term = len(done)
    server.wait(timeout=60)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not failed, failed
    assert len(done) > in_flight_at_term > 20  # requests finished after SIGTERM
    settings = Settings.load({}, database_url=database_url, data_dir=tmp_path / "state")
    stored = run_in_store(
        settings, lambda c: {str(i) for i in c.execute(sa.select(s.llm_requests.c.id)).scalars()}
    )
    assert set(done) <= stored
    assert len(stored) == len(done)
