"""The soak's database outage (``--outage N``): the database goes away for N s under load.

``OutageThread`` waits until the middle of the load, takes the database away, brings it back N s
later, and then polls ``/metrics`` until the writer has written every row queued by then. It
records the timeline (``time.monotonic()``, shared with the load generator) and the writer's
counters at each step. How the database goes away:

- PostgreSQL: ``pg_ctl stop -m fast`` (the server ends every connection and exits), then
  ``pg_ctl start`` on the same port and data directory, as tests/test_outage.py does.
- SQLite: another process takes the write lock (``BEGIN EXCLUSIVE``, ``python bench/soak.py
  holdlock``) and holds it for N s. The gateway keeps its connection open, so removing or
  chmod-ing the file would change nothing for it (and root ignores file modes); the lock is what
  a backup, a migration or a sqlite3 shell does to it in real life. In WAL mode readers still get
  through, so routing snapshots and the writer's ping keep working; only writes wait.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pgcluster import PgCluster
from run import Processes
from soak_stack import BENCH, Stack, read_metrics

POLL = 0.25  # seconds between /metrics polls during the outage and the catch-up
CATCHUP_TIMEOUT = 180.0  # stop watching the catch-up this long after the database is back
LOCK_WAIT = 60.0  # the lock holder must have the lock within this


def hold_lock_main(argv: list[str]) -> int:
    """Hold SQLite's write lock on ``--db`` until SIGTERM or ``--max-seconds``, whichever first."""
    p = argparse.ArgumentParser(prog="soak.py holdlock", description=hold_lock_main.__doc__)
    p.add_argument("--db", required=True)
    p.add_argument("--ready-file", required=True, help="written once the lock is held")
    p.add_argument("--max-seconds", type=float, required=True)
    args = p.parse_args(argv)

    def release(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, release)
    conn = sqlite3.connect(args.db, timeout=LOCK_WAIT, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")  # waits (busy timeout) for a write in progress
        Path(args.ready_file).write_text(f"{time.monotonic():.3f}\n")
        time.sleep(args.max_seconds)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return 0


class PostgresDown:
    method = "pg_ctl stop -m fast, then pg_ctl start on the same port"

    def __init__(self, pg: PgCluster) -> None:
        self.pg = pg

    def take_down(self) -> None:
        self.pg.pause()

    def bring_back(self) -> None:
        self.pg.resume()


class SqliteLocked:
    method = "another process holds BEGIN EXCLUSIVE on the database file"

    def __init__(self, stack: Stack, procs: Processes, seconds: float) -> None:
        self.db, self.env, self.tmp = stack.sqlite_path, stack.base_env(), stack.tmp
        self.procs, self.seconds = procs, seconds
        self.proc: Any = None

    def take_down(self) -> None:
        ready = self.tmp / "holdlock.ready"
        cmd = [
            sys.executable, str(BENCH / "soak.py"), "holdlock", "--db", str(self.db),
            "--ready-file", str(ready), "--max-seconds", str(self.seconds + 60),
        ]  # fmt: skip
        self.proc = self.procs.spawn("holdlock", cmd, self.env)
        deadline = time.monotonic() + LOCK_WAIT + 5
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no write lock:\n{self.procs.tail('holdlock')}")
            time.sleep(0.02)

    def bring_back(self) -> None:
        self.procs.stop(self.proc)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the lock holder failed:\n{self.procs.tail('holdlock')}")


class OutageThread(threading.Thread):
    """Takes the database away at ``start_at`` (time.monotonic()) for ``seconds``; see the module
    docstring. ``timeline`` holds what it saw; ``error`` what went wrong, if anything."""

    def __init__(self, stack: Stack, procs: Processes, start_at: float, seconds: float) -> None:
        super().__init__(name="soak-outage", daemon=True)
        self.port = stack.port
        self.seconds = seconds
        self.start_at = start_at
        self.db: PostgresDown | SqliteLocked
        if stack.pg is not None:
            self.db = PostgresDown(stack.pg)
        else:
            self.db = SqliteLocked(stack, procs, seconds)
        self.cancel = threading.Event()
        self.timeline: dict[str, Any] = {"method": self.db.method, "planned_s": seconds}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # handed to the main thread, which re-raises it
            self.error = e

    def metrics(self) -> dict[str, float]:
        try:
            return read_metrics(self.port)
        except (OSError, RuntimeError):
            return {}

    def _wait_until(self, when: float, watch: dict[str, float] | None = None) -> None:
        while not self.cancel.is_set() and time.monotonic() < when:
            if watch is not None:
                m = self.metrics()
                watch["down"] = max(watch["down"], m.get("llmops_log_database_down", 0))
            self.cancel.wait(min(POLL, max(0.0, when - time.monotonic())))

    def _run(self) -> None:
        tl = self.timeline
        self._wait_until(self.start_at)
        if self.cancel.is_set():
            return
        tl["down_begin"] = time.monotonic()
        self.db.take_down()
        tl["down"] = time.monotonic()
        at_down = self.metrics()
        watch = {"down": 0.0}
        self._wait_until(tl["down_begin"] + self.seconds, watch)
        at_up = self.metrics()
        tl["up_begin"] = time.monotonic()
        self.db.bring_back()
        tl["up"] = time.monotonic()
        tl["writer_saw_down"] = bool(watch["down"] or at_up.get("llmops_log_database_down"))
        tl["written_during"] = int(
            at_up.get("llmops_log_rows_written_total", 0)
            - at_down.get("llmops_log_rows_written_total", 0)
        )
        tl["metrics_at_down"], tl["metrics_at_up"] = at_down, at_up
        queued = at_up.get("llmops_log_rows_queued_total", 0)
        tl["queued_at_up"] = int(queued)
        tl["spilled_at_up"] = int(at_up.get("llmops_log_rows_spilled_total", 0))
        tl["queue_depth_at_up"] = int(at_up.get("llmops_log_queue_depth", 0))
        # Catch-up: the first poll at which each of these holds.
        deadline = tl["up"] + CATCHUP_TIMEOUT
        while not self.cancel.is_set() and time.monotonic() < deadline:
            m = self.metrics()
            now = time.monotonic()
            written = m.get("llmops_log_rows_written_total", 0)
            dead = m.get("llmops_log_rows_dead_lettered_total", 0)
            if m and not m.get("llmops_log_database_down"):
                tl.setdefault("writer_up", now)
            if m and m.get("llmops_log_rows_replayed_total", 0) >= tl["spilled_at_up"]:
                tl.setdefault("spill_replayed", now)
            if m and written + dead >= queued:
                tl.setdefault("backlog_written", now)
            if all(k in tl for k in ("writer_up", "spill_replayed", "backlog_written")):
                tl["metrics_at_catchup"] = m
                break
            self.cancel.wait(POLL)

    def summary(self, t0: float) -> dict[str, Any]:
        """The timeline relative to ``t0`` (the start of the load, time.monotonic())."""
        tl = dict(self.timeline)
        for key in ("down_begin", "down", "up_begin", "up"):
            if key in tl:
                tl[f"{key}_t"] = tl[key] - t0
        if "down" in tl and "up_begin" in tl:
            tl["down_s"] = tl["up_begin"] - tl["down"]
        for key in ("writer_up", "spill_replayed", "backlog_written"):
            if key in tl:
                tl[f"{key}_s"] = tl[key] - tl["up"]
                tl[f"{key}_t"] = tl[key] - t0
        # The writer has caught up when every row queued by the database's return is written and
        # every spilled row replayed.
        done = [tl.get("spill_replayed"), tl.get("backlog_written")]
        if all(v is not None for v in done):
            tl["caught_up_s"] = max(v for v in done if v is not None) - tl["up"]
            tl["caught_up_t"] = tl["caught_up_s"] + tl["up"] - t0
        return tl
