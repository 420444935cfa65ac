"""The database goes away under load and comes back: the gateway keeps serving, and every
request it answered is in the table exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import openai
import sqlalchemy as sa

from llmops.admin.apply import apply_document
from llmops.admin.document import parse_document
from llmops.app import GATEWAY_PREFIX, create_app
from llmops.cli import run_in_store
from llmops.keys import Keyring
from llmops.settings import Settings
from llmops.store import PostgresStore
from llmops.store import schema as s
from llmops.store.migrate import migrate
from llmops.testing import FakeProviderServer, ServerThread
from tests.conftest import gateway_document
from tests.pg import TempPostgres


def test_postgres_outage_under_load_loses_and_duplicates_nothing(
    own_postgres: TempPostgres, tmp_path: Path, fake: FakeProviderServer
) -> None:
    async def prepare() -> None:
        store = PostgresStore(own_postgres.url)
        await store.run(migrate)
        await store.close()

    asyncio.run(prepare())
    settings = Settings.load(
        {}, database_url=own_postgres.url, data_dir=tmp_path, flush_interval_ms=50, snapshot_ttl=0.2
    )
    keyring = Keyring.load(settings.secret_key, settings.data_dir)
    doc = parse_document(gateway_document(fake.base_url, "http://127.0.0.1:9/v1"))
    secret = run_in_store(settings, lambda c: apply_document(c, doc, keyring)).secrets["test"]
    app = create_app(settings, environ={})
    server = ServerThread(app).start()
    writer = app.state.services.gateway.writer
    answered: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        with openai.OpenAI(
            base_url=server.url + GATEWAY_PREFIX,
            api_key=secret,
            max_retries=0,
            default_headers={"x-llmops-config": "chat"},
        ) as client:
            while not stop.is_set():
                try:
                    r = client.chat.completions.with_raw_response.create(
                        model="m", messages=[{"role": "user", "content": "hi"}]
                    )
                    answered.append(r.headers["x-llmops-request-id"])
                except BaseException as e:
                    errors.append(e)
                    return

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        own_postgres.pause()
        before_outage = len(answered)
        time.sleep(3.0)
        during = len(answered) - before_outage
        own_postgres.resume()
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        assert during > 20  # the gateway kept answering while the database was down
        assert writer.stats.spilled > 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (writer.spill_files() or writer.depth):
            time.sleep(0.1)
    finally:
        server.stop()
    ids = run_in_store(
        settings, lambda c: [str(i) for i in c.execute(sa.select(s.llm_requests.c.id)).scalars()]
    )
    assert len(ids) == len(set(ids))
    assert set(ids) == set(answered)
    hourly = run_in_store(
        settings,
        lambda c: c.execute(sa.select(sa.func.sum(s.llm_rollup_hourly.c.requests))).scalar(),
    )
    assert hourly == len(answered)  # rollups counted each row once too
