"""Seeding the analytics benchmark's database through the real writer path.

``seed`` writes a ``World``'s timeline with ``store.insert_rows`` and the rollups hook, as the
gateway's BatchWriter calls them, a given number of batches in flight. ``Databases`` owns where
the data lives (a temp dir for SQLite, a throw-away ``PgCluster`` for PostgreSQL) and prepares
the database to time: it probes the seeding rate on a scratch database, seeds what fits the time
budget, runs ``VACUUM (ANALYZE)`` on PostgreSQL, or takes a database kept earlier (``--reuse``);
its ``cleanup`` removes everything or, with ``--keep``, says how to.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics_report import console
from analytics_world import INDEXED_TAGS, World
from pgcluster import PgCluster
from sqlalchemy import Connection

from llmops.observability.records import COLUMNS
from llmops.observability.rollups import write_request_rollups
from llmops.settings import Settings
from llmops.store import Store, open_store
from llmops.store import schema as s
from llmops.store.migrate import migrate
from llmops.testing import free_port

DAYS = 90  # the timeline ends when the run starts
PROBE_ROWS = 100_000
SAFETY = 0.8  # the seeding rate falls as the tables grow: plan with 80 % of the probe's rate


async def open_migrated(url: str, data_dir: Path) -> Store:
    store = open_store(Settings.load({}, database_url=url, data_dir=data_dir))
    await store.run(migrate)
    return store


async def insert_entities(store: Store, world: World) -> None:
    """Environments, configs and variants, so that labels resolve as in a real install."""
    now = world.start

    def write(conn: Connection) -> None:
        conn.execute(
            s.environments.insert(),
            [{"id": i, "slug": slug, "name": name, "created_at": now}
             for i, slug, name, _ in world.environments],
        )  # fmt: skip
        conn.execute(
            s.configs.insert(),
            [{"id": i, "slug": slug, "name": slug.replace("-", " ").title(), "created_at": now}
             for i, slug, _ in world.configs],
        )  # fmt: skip
        conn.execute(
            s.variants.insert(),
            [{"id": i, "config_id": c, "name": name, "created_at": now}
             for i, c, name in world.variants],
        )  # fmt: skip

    await store.run(write)


@dataclass
class SeedStats:
    rows: int
    seconds: float
    batches: int

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


async def seed(
    store: Store,
    world: World,
    rows: int,
    batch: int,
    writers: int,
    limit: int | None = None,
    progress: bool = True,
) -> SeedStats:
    """Write the world's timeline through ``store.insert_rows`` with the rollups hook (as the
    BatchWriter does), ``writers`` batches in flight at once."""
    hook = functools.partial(write_request_rollups, indexed_tags=INDEXED_TAGS)
    started = last_report = time.perf_counter()
    written = batches = 0
    target = rows if limit is None else min(rows, limit)
    in_flight: set[asyncio.Task[int]] = set()

    async def write(chunk: list[Any]) -> int:
        return await store.insert_rows(s.llm_requests, COLUMNS, chunk, after=hook)

    try:
        for chunk in world.batches(rows, batch, limit):
            while len(in_flight) >= writers:
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    in_flight.discard(task)
                    written += task.result()
            in_flight.add(asyncio.create_task(write(chunk)))
            batches += 1
            now = time.perf_counter()
            if progress and now - last_report >= 30:
                last_report = now
                rate = written / (now - started)
                eta = (target - written) / rate if rate else float("nan")
                console.print(
                    f"  {written:>11,} / {target:,} rows  {rate:>8,.0f} rows/s  "
                    f"ETA {eta / 60:.1f} min"
                )
        for finished in asyncio.as_completed(in_flight):
            written += await finished
    except BaseException:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    return SeedStats(written, time.perf_counter() - started, batches)


async def pg_admin(url: str, *statements: str) -> None:
    """Statements that cannot run in a transaction (VACUUM, DROP DATABASE), via asyncpg."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class Databases:
    """The benchmark's databases: where they live, the one to time, and their removal."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="llmops-analytics-"))
        self.pg: PgCluster | None = None
        self.keep_paths: list[str] = []

    # where the data lives

    def url(self, name: str) -> str:
        if self.args.backend == "postgres":
            assert self.pg is not None
            return self.pg.url(name)
        return f"sqlite:///{self.tmp / name / 'llmops.db'}"

    def new_database(self, name: str) -> str:
        if self.args.backend == "postgres":
            if self.pg is None:
                self.pg = PgCluster(free_port()).start()
            self.pg.create_database(name)
        else:
            (self.tmp / name).mkdir()
        return self.url(name)

    async def drop_database(self, name: str) -> None:
        if self.args.backend == "postgres":
            await pg_admin(self.url("postgres"), f"DROP DATABASE {name}")
        else:
            shutil.rmtree(self.tmp / name, ignore_errors=True)

    # phases

    async def probe(self, world_end: dt.datetime) -> float:
        """Seed the first rows of the same timeline into a scratch database: rows/s."""
        url = self.new_database("probe")
        store = await open_migrated(url, self.tmp)
        try:
            world = World(self.args.seed, world_end - dt.timedelta(days=DAYS), world_end)
            await insert_entities(store, world)
            stats = await seed(
                store, world, self.args.rows, self.args.batch, self.args.writers,
                limit=PROBE_ROWS, progress=False,
            )  # fmt: skip
        finally:
            await store.close()
        await self.drop_database("probe")
        return stats.rate

    async def prepare(self) -> tuple[str, dict[str, Any]]:
        """A seeded database (or the one to reuse): its URL and how it was seeded."""
        args = self.args
        if args.reuse:
            url = args.reuse
            if args.backend == "sqlite" and not url.startswith("sqlite:///"):
                url = f"sqlite:///{Path(url).resolve()}"
            console.print(f"reusing {url} (not seeded by this run)")
            return url, {"reused": args.reuse}
        end = dt.datetime.now(dt.UTC)
        rows = args.rows
        seeding: dict[str, Any] = {"requested_rows": rows, "batch": args.batch,
                                   "writers": args.writers, "seed": args.seed}  # fmt: skip
        if args.budget_minutes > 0 and rows > PROBE_ROWS:
            rate = await self.probe(end)
            projected = rows / rate / 60
            console.print(
                f"probe: {PROBE_ROWS:,} rows at {rate:,.0f} rows/s → {rows:,} rows would take "
                f"about {projected:.1f} min (budget {args.budget_minutes:g} min)"
            )
            seeding["probe_rows_per_s"] = rate
            if projected > args.budget_minutes:
                fits = int(rate * SAFETY * args.budget_minutes * 60) // PROBE_ROWS * PROBE_ROWS
                rows = max(PROBE_ROWS, fits)
                console.print(
                    f"[yellow]seeding {rows:,} rows instead of {args.rows:,}[/]: what fits the "
                    f"budget at {SAFETY:.0%} of the probe's rate"
                )
        url = self.new_database("analytics")
        store = await open_migrated(url, self.tmp)
        try:
            world = World(args.seed, end - dt.timedelta(days=DAYS), end)
            await insert_entities(store, world)
            console.print(
                f"seeding {rows:,} rows, {DAYS} days up to {end:%Y-%m-%d %H:%M} UTC, batches of "
                f"{args.batch:,}, {args.writers} in flight"
            )
            stats = await seed(store, world, rows, args.batch, args.writers)
        finally:
            await store.close()
        console.print(
            f"seeded {stats.rows:,} rows in {stats.seconds / 60:.1f} min "
            f"({stats.rate:,.0f} rows/s, {stats.batches:,} batches)"
        )
        seeding.update(rows=stats.rows, seconds=stats.seconds, rows_per_s=stats.rate)
        if args.backend == "postgres":
            started = time.perf_counter()
            # What autovacuum would have done by now on a table that grew over 90 days.
            await pg_admin(url, "VACUUM (ANALYZE)")
            seeding["vacuum_analyze_seconds"] = time.perf_counter() - started
            console.print(f"VACUUM (ANALYZE) in {seeding['vacuum_analyze_seconds']:.0f} s")
        if args.keep:
            self.keep_paths.append(url)
        return url, seeding

    def cleanup(self) -> None:
        if self.args.keep and self.keep_paths:
            console.print(f"[bold]kept[/]: {', '.join(self.keep_paths)}")
            if self.pg is not None:
                console.print(
                    f"  the PostgreSQL cluster keeps running (data in {self.pg.dir}); stop it with "
                    f"runuser -u postgres -- pg_ctl -D {self.pg.data} stop && rm -rf {self.pg.dir}"
                )
                shutil.rmtree(self.tmp, ignore_errors=True)  # nothing in it on PostgreSQL
            else:
                console.print(f"  remove it with rm -rf {self.tmp}")
            return
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
