"""Writer throughput: rows/s into SQLite or PostgreSQL at a given batch size.

Two numbers per (backend, batch size):

- ``writer``: ``BatchWriter`` wired as ``create_app`` wires it — pricing each record and adding
  the batch into the rollup tables in the same transaction — from enqueueing the first of N
  synthetic ``RequestRecord``s to the last row committed.
- ``insert``: ``store.insert_rows`` alone (the multi-row INSERT / COPY, no pricing or rollups).

And ``trickle``: the same BatchWriter fed at a steady rate (as a gateway under moderate load feeds
it), reporting how many rows each flush wrote on average and the process CPU per row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from pathlib import Path
from typing import Any

from llmops.ids import uuid7
from llmops.observability.pricer import RecordPricer
from llmops.observability.records import COLUMNS, RequestRecord
from llmops.observability.rollups import write_request_rollups
from llmops.observability.usage import Usage
from llmops.observability.writer import BatchWriter
from llmops.settings import Settings
from llmops.store import Store, open_store
from llmops.store import schema as s
from llmops.store.migrate import migrate

TIMEOUT = 300.0


def record(i: int) -> RequestRecord:
    """A typical gateway row: priced model, provider usage, two tags (20 tenants, 500 users)."""
    return RequestRecord(
        id=uuid7(),
        created_at=dt.datetime.now(dt.UTC),
        endpoint="chat.completions",
        environment_name="bench",
        config_slug="bench-chat",
        variant_name="default",
        variant_version=1,
        credential_slug="fake",
        status_code=200,
        latency_ms=5 + i % 50,
        model="gpt-4o-mini",
        requested_model="gpt-4o-mini",
        provider="openai",
        usage=Usage(prompt_tokens=20 + i % 7, completion_tokens=16, total_tokens=36 + i % 7),
        usage_source="provider",
        is_streaming=i % 2 == 0,
        tags={"tenantSlug": f"tenant-{i % 20}", "userId": f"user_{i % 500}"},
    )


async def _open(database_url: str, data_dir: Path) -> Store:
    store = open_store(Settings.load({}, database_url=database_url, data_dir=data_dir))
    await store.run(migrate)
    return store


def _writer(store: Store, data_dir: Path, batch: int, rows: int, interval_ms: int) -> BatchWriter:
    """A BatchWriter wired as ``create_app`` wires it (pricing, rollups of the default tags)."""
    return BatchWriter(
        store,
        data_dir,
        flush_interval_ms=interval_ms,
        max_batch_size=batch,
        max_queue_size=rows + batch,
        price=RecordPricer(),
        after=functools.partial(write_request_rollups, indexed_tags=Settings().indexed_tag_keys),
    )


async def writer_rows_per_second(
    database_url: str, data_dir: Path, batch: int, rows: int
) -> dict[str, Any]:
    store = await _open(database_url, data_dir)
    try:
        # A long interval: only full batches wake the writer.
        writer = _writer(store, data_dir, batch, rows, interval_ms=60_000)
        records = [record(i) for i in range(rows)]
        writer.start()
        started = time.perf_counter()
        for r in records:
            writer.enqueue(r)
        # stop() writes everything queued, in batches of `batch`.
        await asyncio.wait_for(writer.stop(), TIMEOUT)
        elapsed = time.perf_counter() - started
        stats = writer.stats
        if stats.written != rows:
            raise RuntimeError(f"writer wrote {stats.written} of {rows} rows ({stats})")
        return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed}
    finally:
        await store.close()


async def insert_rows_per_second(
    database_url: str, data_dir: Path, batch: int, rows: int
) -> dict[str, Any]:
    store = await _open(database_url, data_dir)
    try:
        tuples = [record(i).row() for i in range(rows)]
        started = time.perf_counter()
        written = 0
        for start in range(0, rows, batch):
            written += await store.insert_rows(
                s.llm_requests, COLUMNS, tuples[start : start + batch]
            )
            if time.perf_counter() - started > TIMEOUT:
                raise TimeoutError("insert benchmark took too long")
        elapsed = time.perf_counter() - started
        return {"rows": written, "seconds": elapsed, "rows_per_s": written / elapsed}
    finally:
        await store.close()


async def trickle(
    database_url: str, data_dir: Path, rate: float, rows: int, batch: int = 100
) -> dict[str, Any]:
    """Feed ``rows`` records at ``rate`` per second (default settings: 2 s interval, batch 100)."""
    store = await _open(database_url, data_dir)
    try:
        writer = _writer(store, data_dir, batch, rows, interval_ms=2000)
        records = [record(i) for i in range(rows)]
        writer.start()
        cpu = time.process_time()
        started = time.perf_counter()
        for i, r in enumerate(records):
            writer.enqueue(r)
            due = started + (i + 1) / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if time.perf_counter() - started > TIMEOUT:
                raise TimeoutError("trickle benchmark took too long")
        await asyncio.wait_for(writer.stop(), TIMEOUT)
        cpu = time.process_time() - cpu
        stats = writer.stats
        return {
            "rate": rate,
            "rows": stats.written,
            "flushes": stats.flushes,
            "rows_per_flush": stats.written / stats.flushes if stats.flushes else None,
            "cpu_ms_per_row": cpu * 1000 / rows,
        }
    finally:
        await store.close()
