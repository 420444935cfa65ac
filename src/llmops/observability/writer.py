"""The batch writer: request records go to an in-memory queue; one task writes them in batches.

``enqueue`` is the only thing the hot path calls: an append to a deque, never a wait. The writer
task flushes every ``flush_interval_ms`` or as soon as ``max_batch_size`` rows are queued, one
multi-row insert per flush (COPY on PostgreSQL), with the rollups (``after``) in the same
transaction. Nothing is lost and nothing blocks the queue:

- A failed flush is retried with exponential backoff. Retries skip rows already stored, so a batch
  whose commit was lost in transit is not written twice.
- If the database answers but the batch still fails, some row is bad: the batch is bisected until
  the bad row is alone, and that row goes to ``dead-letter.jsonl`` while the rest are written.
- While the database is unreachable, batches go to append-only spill files in ``spill/``, replayed
  in order (oldest first, before newer rows) when it answers again — also after a restart.
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
from typing import Any

from sqlalchemy import Connection

from llmops.observability.bodies import body_rows, write_bodies
from llmops.observability.records import COLUMNS, RequestRecord, row_from_json, row_to_json
from llmops.store import Store
from llmops.store import schema as s
from llmops.store.base import After

log = logging.getLogger("llmops.writer")

Row = tuple[Any, ...]
_RETRIES_BEFORE_SPILL = 3


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

    @property
    def depth(self) -> int:
        return len(self._queue)

    def enqueue(self, record: RequestRecord) -> None:
        self.stats.queued += 1
        if len(self._queue) >= self.max_queue_size:
            # The writer is far behind (the database is slow or down): keep memory bounded by
            # putting the oldest rows on disk. Rare, so a small synchronous append is acceptable.
            self._spill([self._to_row(self._queue.popleft()) for _ in range(self.max_batch_size)])
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
            self._spill_queue()
            return
        self.stats.database_down = False
        if not await self._replay_spill():
            self._spill_queue()
            return
        least = self.max_batch_size if full_batches_only else 1
        while len(self._queue) >= least:
            n = min(self.max_batch_size, len(self._queue))
            records = [self._queue.popleft() for _ in range(n)]
            batch = [self._to_row(r) for r in records]
            if any(r.capture_bytes for r in records):
                self._bodies = body_rows(records, self.body_cap)
            ok = await self._write(batch)
            self._bodies = {}
            if not ok:
                self._spill(batch)
                self._spill_queue()
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.flush_interval
        while not self._stopping:
            down = self.stats.database_down
            timeout = self._backoff if down else max(due - loop.time(), 0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            interval_over = loop.time() >= due
            if interval_over:
                due = loop.time() + self.flush_interval
            try:
                await self.flush(full_batches_only=not (interval_over or down or self._stopping))
            except Exception:  # never let the writer die; log and keep going
                log.exception("request log flush failed unexpectedly")
            if self.stats.database_down:
                self._backoff = min(self._backoff * 2, 5.0)
            else:
                self._backoff = 0.1
        try:
            await self.flush()
        except Exception:
            log.exception("final flush failed; spilling")
        self._spill_queue()

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
        """Write ``rows``; False if the database is unreachable (the caller spills them)."""
        delay = 0.05
        for attempt in range(_RETRIES_BEFORE_SPILL + 1):
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
                if await self._alive():
                    if attempt == 0:
                        continue  # maybe transient (a dropped connection); retry once at once
                    return await self._bisect(rows, e)
                log.warning(
                    "database unreachable writing %d rows (%s)", len(rows), type(e).__name__
                )
                if attempt == _RETRIES_BEFORE_SPILL or self._stopping:
                    break
                await asyncio.sleep(delay)
                delay *= 2
        self.stats.database_down = True
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

    def _spill_queue(self) -> None:
        if self._queue:
            self._spill([self._to_row(r) for r in self._queue])
            self._queue.clear()

    def _spill(self, rows: Sequence[Row]) -> None:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        self._spill_seq += 1
        # Names sort in write order: nanosecond time, then a sequence number for ties.
        path = self.spill_dir / f"{time.time_ns():020d}-{self._spill_seq:06d}.jsonl"
        with open(path, "ab") as f:
            f.write(b"".join(row_to_json(r) + b"\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        self.stats.spilled += len(rows)
        log.warning("database unavailable: %d request rows spilled to %s", len(rows), path)

    def spill_files(self) -> list[Path]:
        return sorted(self.spill_dir.glob("*.jsonl")) if self.spill_dir.exists() else []

    async def _replay_spill(self) -> bool:
        """Write spilled rows back, oldest file first; False if the database went away again."""
        for path in self.spill_files():
            rows = [row_from_json(line) for line in path.read_bytes().splitlines() if line]
            for start in range(0, len(rows), self.max_batch_size):
                if not await self._write(rows[start : start + self.max_batch_size], dedupe=True):
                    return False
            self.stats.replayed += len(rows)
            path.unlink()
        return True
