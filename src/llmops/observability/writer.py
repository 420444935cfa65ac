"""The batch writer: request records go to an in-memory queue; one task writes them in batches.

``enqueue`` is the only thing the hot path calls: an append to a deque, never a wait. The writer
task flushes every ``flush_interval_ms`` or as soon as ``max_batch_size`` rows are queued, one
multi-row insert per flush (COPY on PostgreSQL). A failed flush is retried with exponential
backoff; ``stop`` flushes everything that is queued before it returns.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass

from llmops.observability.records import COLUMNS, RequestRecord
from llmops.store import Store

log = logging.getLogger("llmops.writer")


@dataclass
class WriterStats:
    queued: int = 0
    written: int = 0
    retried: int = 0
    dropped: int = 0
    flushes: int = 0


class BatchWriter:
    def __init__(
        self,
        store: Store,
        *,
        flush_interval_ms: int = 2000,
        max_batch_size: int = 100,
        max_queue_size: int = 100_000,
    ):
        self.store = store
        self.flush_interval = flush_interval_ms / 1000
        self.max_batch_size = max_batch_size
        self.max_queue_size = max_queue_size
        self.stats = WriterStats()
        self._queue: collections.deque[RequestRecord] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def depth(self) -> int:
        return len(self._queue)

    def enqueue(self, record: RequestRecord) -> None:
        if len(self._queue) >= self.max_queue_size:
            self.stats.dropped += 1
            log.error(
                "request log queue full (%d rows); dropping %s", self.max_queue_size, record.id
            )
            return
        self._queue.append(record)
        self.stats.queued += 1
        if len(self._queue) >= self.max_batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="llmops-writer")

    async def stop(self) -> None:
        """Write everything queued, then end the writer task."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def flush(self) -> None:
        """Write everything queued now (used by tests and at shutdown)."""
        while self._queue:
            batch = [
                self._queue.popleft() for _ in range(min(self.max_batch_size, len(self._queue)))
            ]
            await self._write(batch)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # never let the writer die; the batch was put back in _write
                log.exception("request log flush failed")
        await self.flush()

    async def _write(self, batch: list[RequestRecord]) -> None:
        delay = 0.1
        rows = [r.row() for r in batch]
        while True:
            try:
                await self.store.insert_rows("llm_requests", COLUMNS, rows)
                self.stats.written += len(rows)
                self.stats.flushes += 1
                return
            except Exception:
                self.stats.retried += 1
                log.warning(
                    "writing %d request rows failed; retrying in %.1fs",
                    len(rows),
                    delay,
                    exc_info=True,
                )
                if self._stopping and delay > 5:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
