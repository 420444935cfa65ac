"""The batch writer loses nothing: size/interval flushes, a bad row isolated, the database going
away and coming back (rows spilled and replayed exactly once), spill files surviving a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import sqlalchemy as sa

from llmops.ids import uuid7
from llmops.observability.records import RequestRecord
from llmops.observability.usage import Usage
from llmops.observability.writer import BatchWriter
from llmops.settings import Settings
from llmops.store import PostgresStore, Store, open_store
from llmops.store import schema as s
from llmops.store.migrate import migrate
from tests.pg import TempPostgres


def record(i: int = 0, **kw: object) -> RequestRecord:
    rec = RequestRecord(
        id=uuid7(),
        created_at=dt.datetime.now(dt.UTC),
        endpoint="chat.completions",
        status_code=200,
        latency_ms=10 + i,
        model="gpt-4o-mini",
        provider="openai",
        usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        usage_source="provider",
        tags={"i": str(i)},
    )
    for k, v in kw.items():
        setattr(rec, k, v)
    return rec


async def _ids(store: Store) -> list[uuid.UUID]:
    return await store.run(lambda c: list(c.execute(sa.select(s.llm_requests.c.id)).scalars()))


async def _until(cond: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_flushes_by_size_and_by_interval(database_url: str, tmp_path: Path) -> None:
    async def go() -> None:
        store = open_store(Settings.load({}, database_url=database_url, data_dir=tmp_path))
        await store.run(migrate)
        writer = BatchWriter(store, tmp_path, flush_interval_ms=60_000, max_batch_size=50)
        writer.start()
        sent = [record(i) for i in range(120)]
        for r in sent:
            writer.enqueue(r)
        # Full batches are written at once, long before the 60 s interval; the partial rest
        # waits for the interval (here: for shutdown) instead of going out as a tiny batch.
        await _until(lambda: writer.stats.written == 100, timeout=5)
        await asyncio.sleep(0.2)
        assert writer.depth == 20 and writer.stats.flushes == 2
        await writer.stop()
        assert writer.stats.written == 120 and writer.stats.flushes == 3
        timed = BatchWriter(store, tmp_path, flush_interval_ms=100, max_batch_size=50)
        timed.start()
        few = [record(i) for i in range(3)]
        for r in few:
            timed.enqueue(r)
        await asyncio.sleep(0.02)
        assert timed.stats.written == 0  # below the batch size: waits for the interval
        await _until(lambda: timed.stats.written == 3, timeout=2)
        await timed.stop()
        assert sorted(await _ids(store)) == sorted(r.id for r in sent + few)
        await store.close()

    asyncio.run(go())


def test_a_row_that_can_never_be_written_is_isolated(database_url: str, tmp_path: Path) -> None:
    async def go() -> None:
        store = open_store(Settings.load({}, database_url=database_url, data_dir=tmp_path))
        await store.run(migrate)
        writer = BatchWriter(store, tmp_path, flush_interval_ms=20, max_batch_size=16)
        writer.start()
        good = [record(i) for i in range(15)]
        bad = record(99, endpoint=None)  # NOT NULL column
        for r in good[:7] + [bad] + good[7:]:
            writer.enqueue(r)
        await _until(lambda: writer.stats.dead_lettered == 1 and writer.depth == 0)
        later = record(100)
        writer.enqueue(later)  # the queue is not jammed
        await _until(lambda: writer.stats.written == 16)
        await writer.stop()
        assert sorted(await _ids(store)) == sorted(r.id for r in [*good, later])
        lines = (tmp_path / "dead-letter.jsonl").read_bytes().splitlines()
        assert len(lines) == 1 and str(bad.id).encode() in lines[0]
        await store.close()

    asyncio.run(go())


def test_database_outage_spills_and_replays_every_row_exactly_once(
    own_postgres: TempPostgres, tmp_path: Path
) -> None:
    async def go() -> None:
        store = PostgresStore(own_postgres.url)
        await store.run(migrate)
        writer = BatchWriter(store, tmp_path, flush_interval_ms=20, max_batch_size=10)
        writer.start()
        sent = [record(i) for i in range(30)]
        for r in sent:
            writer.enqueue(r)
        await _until(lambda: writer.stats.written == 30)
        await asyncio.to_thread(own_postgres.pause)
        during = [record(100 + i) for i in range(45)]
        for r in during:
            writer.enqueue(r)
            await asyncio.sleep(0.005)
        await _until(lambda: writer.stats.spilled >= 45, timeout=30)
        assert writer.stats.database_down
        assert writer.spill_files()
        await asyncio.to_thread(own_postgres.resume)
        after = [record(200 + i) for i in range(5)]
        for r in after:
            writer.enqueue(r)
        await _until(lambda: not writer.spill_files() and writer.depth == 0, timeout=30)
        await writer.stop()
        ids = await _ids(store)
        assert len(ids) == len(set(ids)) == 80
        assert set(ids) == {r.id for r in sent + during + after}
        await store.close()

    asyncio.run(go())


def test_rows_spilled_at_shutdown_are_replayed_by_the_next_process(
    own_postgres: TempPostgres, tmp_path: Path
) -> None:
    async def go() -> None:
        store = PostgresStore(own_postgres.url)
        await store.run(migrate)
        await asyncio.to_thread(own_postgres.pause)
        writer = BatchWriter(store, tmp_path, flush_interval_ms=60_000)
        writer.start()
        sent = [record(i) for i in range(12)]
        for r in sent:
            writer.enqueue(r)
        await writer.stop()  # the database is down: everything goes to disk
        assert writer.stats.spilled == 12 and writer.spill_files()
        await store.close()
        await asyncio.to_thread(own_postgres.resume)
        store = PostgresStore(own_postgres.url)
        writer = BatchWriter(store, tmp_path, flush_interval_ms=20)
        writer.start()
        await _until(lambda: writer.stats.replayed == 12)
        await writer.stop()
        assert sorted(await _ids(store)) == sorted(r.id for r in sent)
        assert not writer.spill_files()
        await store.close()

    asyncio.run(go())


def test_retrying_a_batch_never_duplicates(database_url: str, tmp_path: Path) -> None:
    async def go() -> None:
        store = open_store(Settings.load({}, database_url=database_url, data_dir=tmp_path))
        await store.run(migrate)
        rows = [record(i).row() for i in range(5)]
        from llmops.observability.records import COLUMNS

        assert await store.insert_rows(s.llm_requests, COLUMNS, rows[:3]) == 3
        assert await store.insert_rows(s.llm_requests, COLUMNS, rows, dedupe=True) == 2
        assert len(await _ids(store)) == 5
        await store.close()

    asyncio.run(go())
