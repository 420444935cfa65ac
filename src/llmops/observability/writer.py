"""The batch writer: request records go to an in-memory queue; one task writes them in batches.

``enqueue`` is the only thing the hot path calls: an append to a deque, never a wait. The writer
task flushes every ``flush_interval_ms`` or as soon as ``max_batch_size`` rows are queued, one
multi-row insert per flush (COPY on PostgreSQL), with the rollups (``after``) in the same
transaction. Nothing is lost and nothing blocks the queue:

- A failed flush is retried with exponential backoff. Retries skip rows already stored, so a batch
  whose commit was lost in transit is not written twice.
- If the database answers but the batch still fails, some row is bad: the batch is bisected until
  the bad row is alone, and that row goes to ``dead-letter.jsonl`` while the rest are written.
- A failed write followed by a failed ping means the database is unreachable: the batch goes to a
  spill file in ``spill/`` at once, and so does every row that arrives while it stays away (a
  file per batch, written on a thread), so memory holds about one batch however long the outage.
  A background ping with backoff notices when it is back. Spill files are replayed in order
  (oldest first, before newer rows), a batch at a time, with ``dedupe`` — also after a restart.
  A file is deleted only once all of it is written, so a crash or a new outage in the middle of
  a replay costs nothing but rows that the next replay's dedupe skips.
- ``stop`` (graceful shutdown) writes everything queued, or spills it if the database is down.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection

from llmops.observability.bodies import body_rows, write_bodies
from llmops.observability.records import COLUMNS, RequestRecord, row_from_json, row_to_json
from llmops.store import Store
from llmops.store import schema as s
from llmops.store.base import After

log = logging.getLogger("llmops.writer")

Row = tuple[Any, ...]
# While spill files are replayed, the queue may hold this many batches; beyond that the newer rows
# go to disk behind the files being replayed. (While the database is down the queue is spilled
# every time it reaches one batch.)
_BATCHES_IN_MEMORY = 2
_MAX_BACKOFF = 5.0


@dataclass
class WriterStats:
    queued: int = 0
    written: int = 0
    retried: int = 0
    spilled: int = 0
    replayed: int = 0
    dead_lettered: int = 0
    flushes: int = 0
    unpriced: int = 0
    database_down: bool = False


class BatchWriter:
    def __init__(
        self,
        store: Store,
        data_dir: Path,
        *,
        flush_interval_ms: int = 2000,
        max_batch_size: int = 100,
        max_queue_size: int = 100_000,
        price: Callable[[RequestRecord], None] | None = None,
        after: After | None = None,
        body_cap: int = 32_768,
    ):
        self.store = store
        self.flush_interval = flush_interval_ms / 1000
        self.max_batch_size = max_batch_size
        self.max_queue_size = max_queue_size
        self.spill_dir = data_dir / "spill"
        self.dead_letter_path = data_dir / "dead-letter.jsonl"
        self.stats = WriterStats()
        self._price = price
        self._after = after
        self.body_cap = body_cap
        # Bodies of the batch being written (LLMOPS_LOG_BODIES); not spilled with their rows.
        self._bodies: dict[Any, dict[str, Any]] = {}
        self._queue: collections.deque[RequestRecord] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._spill_seq = 0
        self._backoff = 0.1
        # While the database is down: the ping in flight, or when the next one is due.
        self._probe: asyncio.Task[bool] | None = None
        self._next_probe = 0.0

    @property
    def depth(self) -> int:
        return len(self._queue)

    def enqueue(self, record: RequestRecord) -> None:
        self.stats.queued += 1
        if len(self._queue) >= self.max_queue_size:
            # The writer is far behind (a write is hanging and the database is not known to be
            # down yet): keep memory bounded by putting the oldest rows on disk. Rare, so a small
            # synchronous append is acceptable.
            rows = [self._to_row(self._queue.popleft()) for _ in range(self.max_batch_size)]
            path = self._spill_path()
            _write_spill_file(path, rows)
            self._spilled(path, rows)
        self._queue.append(record)
        if len(self._queue) >= self.max_batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="llmops-writer")

    async def stop(self) -> None:
        """Write (or spill) everything queued, then end the writer task."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def flush(self, full_batches_only: bool = False) -> None:
        """Write what is queued now: spilled rows first, in order, then the queue — all of it, or
        with ``full_batches_only`` just whole batches (the rest waits for the interval, so a
        steady trickle is written in full batches rather than as many tiny ones)."""
        if self.stats.database_down and not await self._alive():
            await self._spill_queue()
            return
        self.stats.database_down = False
        if not await self._replay_spill():
            await self._spill_queue()
            return
        least = self.max_batch_size if full_batches_only else 1
        while len(self._queue) >= least:
            n = min(self.max_batch_size, len(self._queue))
            records = [self._queue.popleft() for _ in range(n)]
            batch = [self._to_row(r) for r in records]
            # Named now, so that it sorts before any rows spilled while the write is pending.
            path = self._spill_path()
            if any(r.capture_bytes for r in records):
                self._bodies = body_rows(records, self.body_cap)
            ok = await self._write(batch)
            self._bodies = {}
            if not ok:
                try:
                    await self._spill(batch, path)
                except Exception:
                    self._queue.extendleft(reversed(records))  # kept for the next attempt
                    raise
                await self._spill_queue()
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.flush_interval
        while not self._stopping:
            if not self.stats.database_down:
                timeout = due - loop.time()
            elif self._probe is None:
                timeout = min(due, self._next_probe) - loop.time()
            else:  # woken by a full batch, by the probe's answer, or to spill a partial batch
                timeout = due - loop.time()
            try:
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0))
            except TimeoutError:
                pass
            self._wake.clear()
            interval_over = loop.time() >= due
            if interval_over:
                due = loop.time() + self.flush_interval
            try:
                if self.stats.database_down:
                    await self._while_down()
                else:
                    await self.flush(full_batches_only=not (interval_over or self._stopping))
            except Exception:  # never let the writer die; log and keep going
                log.exception("request log flush failed unexpectedly")
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        try:
            await self.flush()
        except Exception:
            log.exception("final flush failed; spilling")
        await self._spill_queue()

    async def _while_down(self) -> None:
        """One step of an outage: spill what arrived, and ping the database in the background
        (with backoff) so that the writer goes on spilling while a ping waits; on SQLite a ping
        under another process's lock waits ``busy_timeout``. Once it answers, replay and write."""
        await self._spill_queue()
        loop = asyncio.get_running_loop()
        probe = self._probe
        if probe is None:
            if loop.time() >= self._next_probe:
                self._probe = asyncio.create_task(self._alive(), name="llmops-writer-ping")
                self._probe.add_done_callback(lambda _: self._wake.set())
            return
        if not probe.done():
            return
        self._probe = None
        if not probe.result():
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
            self._next_probe = loop.time() + self._backoff
            return
        self.stats.database_down = False
        self._backoff = 0.1
        log.warning("database reachable again: replaying spilled request rows")
        await self.flush()

    def _to_row(self, record: RequestRecord) -> Row:
        if self._price is not None:
            try:
                self._price(record)
            except Exception:  # a pricing bug must not lose the row: store it unpriced
                log.exception("pricing request %s failed", record.id)
        if record.usage is not None and record.total_cost is None:
            self.stats.unpriced += 1
        return record.row()

    async def _alive(self) -> bool:
        try:
            await asyncio.wait_for(self.store.ping(), 5)
            return True
        except Exception:
            return False

    def _after_insert(self, conn: Connection, inserted: Sequence[Sequence[Any]]) -> None:
        if self._after is not None:
            self._after(conn, inserted)
        if self._bodies:
            write_bodies(conn, self._bodies, inserted)

    async def _write(self, rows: list[Row], dedupe: bool = False) -> bool:
        """Write ``rows``; False if the database is unreachable (the caller spills them).

        A failed write whose ping fails too marks the database down at once: further attempts
        would only hold more rows in memory (on SQLite each waits ``busy_timeout``), while the
        spill costs nothing but a replay, which dedupes a batch whose commit was lost in transit.
        """
        for attempt in range(2):
            try:
                self.stats.written += await self.store.insert_rows(
                    s.llm_requests,
                    COLUMNS,
                    rows,
                    dedupe=dedupe or attempt > 0,
                    after=self._after_insert,
                )
                self.stats.flushes += 1
                return True
            except Exception as e:
                self.stats.retried += 1
                if not await self._alive():
                    log.warning(
                        "database unreachable writing %d rows (%s): spilling until it answers",
                        len(rows),
                        type(e).__name__,
                    )
                    break
                if attempt == 1:
                    return await self._bisect(rows, e)
                # else: maybe transient (a dropped connection); retry once at once
        self.stats.database_down = True
        self._next_probe = asyncio.get_running_loop().time() + self._backoff
        return False

    async def _bisect(self, rows: list[Row], error: Exception) -> bool:
        if len(rows) == 1:
            self._dead_letter(rows[0], error)
            return True
        mid = len(rows) // 2
        return await self._write(rows[:mid], dedupe=True) and await self._write(
            rows[mid:], dedupe=True
        )

    def _dead_letter(self, row: Row, error: Exception) -> None:
        self.stats.dead_lettered += 1
        log.error(
            "request %s can never be written (%s); kept in %s", row[0], error, self.dead_letter_path
        )
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.dead_letter_path, "ab") as f:
            f.write(row_to_json(row) + b"\n")

    # -- spill files -------------------------------------------------------------------------

    async def _spill_queue(self) -> None:
        """Move the queue to spill files, a batch per file (never two copies of it in memory)."""
        while self._queue:
            n = min(self.max_batch_size, len(self._queue))
            records = [self._queue.popleft() for _ in range(n)]
            try:
                await self._spill([self._to_row(r) for r in records])
            except Exception:  # the disk is full, say: keep the rows for the next attempt
                self._queue.extendleft(reversed(records))
                raise

    async def _spill(self, rows: Sequence[Row], path: Path | None = None) -> None:
        # The name is taken before the thread runs, so files sort in the order rows were queued.
        path = path or self._spill_path()
        await asyncio.to_thread(_write_spill_file, path, rows)
        self._spilled(path, rows)

    def _spilled(self, path: Path, rows: Sequence[Row]) -> None:
        self.stats.spilled += len(rows)
        log.warning("database unavailable: %d request rows spilled to %s", len(rows), path)

    def _spill_path(self) -> Path:
        self._spill_seq += 1
        # Names sort in write order: nanosecond time, then a sequence number for ties.
        return self.spill_dir / f"{time.time_ns():020d}-{self._spill_seq:06d}.jsonl"

    def spill_files(self) -> list[Path]:
        return sorted(self.spill_dir.glob("*.jsonl")) if self.spill_dir.exists() else []

    async def _replay_spill(self) -> bool:
        """Write spilled rows back, oldest file first; False if the database went away again.
        Rows spilled meanwhile (the queue outgrowing its bound) are replayed in the same pass."""
        while files := self.spill_files():
            for path in files:
                if not await self._replay_file(path):
                    return False
        return True

    async def _replay_file(self, path: Path) -> bool:
        """Stream one spill file back a batch at a time; delete it once all of it is written."""
        count = 0
        with open(path, "rb") as f:
            while rows := await asyncio.to_thread(_read_rows, f, self.max_batch_size):
                if not await self._write(rows, dedupe=True):
                    return False
                count += len(rows)
                if len(self._queue) >= _BATCHES_IN_MEMORY * self.max_batch_size:
                    await self._spill_queue()  # sorts after this file: replayed in this pass
        await asyncio.to_thread(path.unlink)
        self.stats.replayed += count
        return True


def _write_spill_file(path: Path, rows: Sequence[Row]) -> None:
    """Write a spill file under another name and rename it once synced, so that a replay (also
    after a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(b"".join(row_to_json(r) + b"\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())
    partial.rename(path)


def _read_rows(f: IO[bytes], n: int) -> list[Row]:
    """Up to ``n`` rows from the spill file ``f`` (blank lines skipped)."""
    rows: list[Row] = []
    while len(rows) < n:
        line = f.readline()
        if not line:
            break
        if line.strip():
            rows.append(row_from_json(line))
    return rows
