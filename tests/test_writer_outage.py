"""A long database outage costs disk, not memory: once a write and a ping have failed, the writer
keeps about one batch in memory and spills the rest, and spill files are replayed a batch at a
time, in order, each row exactly once (bench/README.md, Soak: *Memory after a long SQLite lock*)."""

from __future__ import annotations

import asyncio
import sqlite3
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from llmops.observability.records import COLUMNS
from llmops.observability.writer import BatchWriter
from llmops.store import PostgresStore, Store
from llmops.store import schema as s
from llmops.store.migrate import migrate
from llmops.store.sqlite import SQLiteStore
from tests.pg import TempPostgres
from tests.test_writer import _ids, _until, record

BATCH = 20


async def _sqlite_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.run(migrate)
    # The store keeps its one connection, so this holds for every write and ping: a lock costs
    # 1 s per attempt instead of 10, which keeps the test short without changing what happens.
    await store.run(lambda c: c.exec_driver_sql("PRAGMA busy_timeout=1000"))
    return store


async def _sqlite_ids_in_insert_order(store: Store) -> list[uuid.UUID]:
    sql = sa.text("SELECT id FROM llm_requests ORDER BY rowid")
    return await store.run(lambda c: [uuid.UUID(i) for i in c.execute(sql).scalars()])


async def _log_through_outage(
    store: Store, data_dir: Path, go_down: Callable[[], None], come_back: Callable[[], None]
) -> list[uuid.UUID]:
    """Log rows before, during and after an outage; assert the queue stays bounded once the
    writer knows the database is down; return the ids sent, in order."""
    writer = BatchWriter(store, data_dir, flush_interval_ms=50, max_batch_size=BATCH)
    writer.start()
    before = [record(i) for i in range(2 * BATCH)]
    for r in before:
        writer.enqueue(r)
    await _until(lambda: writer.stats.written == len(before))
    await asyncio.to_thread(go_down)
    # Until a write and a ping have failed, rows wait in memory (on SQLite: 1 s + 1 s here).
    during = []
    while not writer.stats.database_down:
        during.append(record(1000 + len(during)))
        writer.enqueue(during[-1])
        await asyncio.sleep(0.005)
        assert len(during) < 2000, "the writer never noticed the outage"
    assert writer.stats.written == len(before)
    await _until(lambda: writer.depth <= BATCH)  # the backlog went to disk
    spilled_before = writer.stats.spilled
    deepest = 0
    for _ in range(400):  # ~2 s at ~200 rows/s, while the writer pings in the background
        during.append(record(1000 + len(during)))
        writer.enqueue(during[-1])
        deepest = max(deepest, writer.depth)
        await asyncio.sleep(0.005)
    assert writer.stats.database_down
    assert deepest <= 2 * BATCH, deepest
    assert writer.stats.spilled >= spilled_before + 400 - 2 * BATCH
    assert len(writer.spill_files()) > 1  # a file per batch, not one per outage
    assert writer.stats.written == len(before)
    await asyncio.to_thread(come_back)
    after = [record(5000 + i) for i in range(BATCH + 5)]
    for r in after:
        writer.enqueue(r)
    await _until(
        lambda: not writer.spill_files() and writer.depth == 0 and not writer.stats.database_down,
        timeout=15,
    )
    await writer.stop()
    sent = before + during + after
    assert writer.stats.replayed == writer.stats.spilled
    assert writer.stats.written == len(sent) and writer.stats.dead_lettered == 0
    assert not list((data_dir / "spill").glob("*.partial"))
    return [r.id for r in sent]


def test_a_locked_sqlite_database_keeps_one_batch_in_memory_and_loses_nothing(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        path = tmp_path / "llmops.db"
        store = await _sqlite_store(path)
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

        def lock() -> None:  # as a backup, a migration or a sqlite3 shell would
            other.execute("BEGIN EXCLUSIVE")

        def unlock() -> None:
            other.execute("ROLLBACK")
            other.close()

        sent = await _log_through_outage(store, tmp_path, lock, unlock)
        assert await _sqlite_ids_in_insert_order(store) == sent  # once each, in order
        await store.close()

    asyncio.run(go())


def test_a_stopped_postgres_keeps_one_batch_in_memory_and_loses_nothing(
    own_postgres: TempPostgres, tmp_path: Path
) -> None:
    async def go() -> None:
        store = PostgresStore(own_postgres.url)
        await store.run(migrate)
        sent = await _log_through_outage(store, tmp_path, own_postgres.pause, own_postgres.resume)
        ids = await _ids(store)
        assert len(ids) == len(set(ids)) and set(ids) == set(sent)
        await store.close()

    asyncio.run(go())


def test_a_large_spill_file_is_replayed_a_batch_at_a_time(tmp_path: Path) -> None:
    async def go() -> None:
        path = tmp_path / "llmops.db"
        store = await _sqlite_store(path)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        # One big batch, written at shutdown while the database is locked: one big spill file.
        first = BatchWriter(store, tmp_path, flush_interval_ms=60_000, max_batch_size=5000)
        first.start()
        sent = [record(i) for i in range(3000)]
        for r in sent:
            first.enqueue(r)
        await first.stop()
        other.execute("ROLLBACK")
        other.close()
        [spill] = first.spill_files()
        assert len(spill.read_bytes().splitlines()) == 3000
        spill_size = spill.stat().st_size
        # As if an earlier replay had written 250 rows and crashed before deleting the file.
        rows = [r.row() for r in sent[:250]]
        assert await store.insert_rows(s.llm_requests, COLUMNS, rows) == 250
        second = BatchWriter(store, tmp_path, flush_interval_ms=20, max_batch_size=100)
        tracemalloc.start()
        try:
            second.start()
            await _until(lambda: second.stats.replayed == 3000)
            await second.stop()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # Reading the whole file at once took about 2.4 times its size (5.2 of 2.2 MB); a batch
        # at a time, about a seventh.
        assert peak < spill_size / 2, (peak, spill_size)
        assert not second.spill_files()
        assert second.stats.flushes == 30  # 30 batches of 100, never the whole file at once
        assert second.stats.written == 2750  # the rows already stored were skipped
        assert await _sqlite_ids_in_insert_order(store) == [r.id for r in sent]
        await store.close()

    asyncio.run(go())
