"""``llmops prices``: show prices, manage overrides, reprice history."""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin.apply import bump_routing_version
from llmops.ids import uuid7
from llmops.observability.cost import PriceBook
from llmops.observability.pricer import RecordPricer, load_overrides
from llmops.observability.reprice import rebuild_rollups_and_keys, reprice
from llmops.settings import Settings
from llmops.store import schema as s

_RATES = ("input", "output", "cache_read", "cache_write", "reasoning")


def _date(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {value!r} (use YYYY-MM-DD)") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _rate(value: str) -> Decimal:
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a price: {value!r}") from None
    if rate < 0:
        raise argparse.ArgumentTypeError("prices cannot be negative")
    return rate


def _fmt(rate: Decimal | None) -> str:
    return "-" if rate is None else f"${rate.normalize():f}"


def add_parser(sub: Any, common: Any) -> None:
    p = sub.add_parser("prices", help="show prices, set overrides, reprice history")
    psub = p.add_subparsers(dest="prices_command", required=True)
    q = psub.add_parser("show", help="the price a model gets (USD per million tokens)")
    common(q, server=False)
    q.add_argument("model")
    q.add_argument("--provider", default="openai", help="provider type (default openai)")
    q.add_argument("--hint", help="genai-prices provider id, e.g. groq")
    q.add_argument("--at", type=_date, help="date (default now)")
    q.set_defaults(fn=cmd_show)
    q = psub.add_parser("list", help="list price overrides")
    common(q, server=False)
    q.set_defaults(fn=cmd_list)
    q = psub.add_parser("set", help="add a price override (USD per million tokens)")
    common(q, server=False)
    q.add_argument("model_pattern", help="model name or glob, e.g. 'gpt-4o*'")
    q.add_argument("--provider", help="provider type it applies to (default: any)")
    for rate in _RATES:
        q.add_argument(
            f"--{rate.replace('_', '-')}", type=_rate, required=rate in ("input", "output")
        )
    q.add_argument("--from", dest="effective_from", type=_date, help="effective from (default now)")
    q.add_argument("--note", default="")
    q.set_defaults(fn=cmd_set)
    q = psub.add_parser("delete", help="delete a price override")
    common(q, server=False)
    q.add_argument("id")
    q.set_defaults(fn=cmd_delete)
    q = psub.add_parser("reprice", help="recompute stored costs with current prices")
    common(q, server=False)
    q.add_argument("--since", type=_date, required=True)
    q.add_argument("--until", type=_date)
    q.add_argument("--dry-run", action="store_true", help="report the change, write nothing")
    q.set_defaults(fn=cmd_reprice)
    p = sub.add_parser("rollups", help="rebuild rollups from the stored requests")
    rsub = p.add_subparsers(dest="rollups_command", required=True)
    q = rsub.add_parser(
        "rebuild",
        help="recompute every rollup of the days from --since (e.g. after adding a tag key to "
        "LLMOPS_INDEXED_TAGS, so that its rollups cover the past too)",
    )
    common(q, server=False)
    q.add_argument("--since", type=_date, required=True)
    q.add_argument("--until", type=_date)
    q.set_defaults(fn=cmd_rebuild_rollups)


def _run(args: argparse.Namespace, fn: Any) -> Any:
    from llmops.cli import run_in_store, settings_from_args

    return run_in_store(settings_from_args(args), fn)


def cmd_show(args: argparse.Namespace) -> int:
    book = PriceBook(_run(args, load_overrides))
    at = args.at or dt.datetime.now(dt.UTC)
    price = book.lookup(args.provider, args.model, at, hint=args.hint)
    if price is None:
        print(f"{args.model}: unpriced (no price known; rows are stored with no cost)")
        return 1
    print(f"{args.model} ({price.source}), USD per million tokens:")
    for rate in _RATES:
        print(f"  {rate:<12} {_fmt(getattr(price, rate))}")
    for threshold, tier in price.tiers:
        print(
            f"  above {threshold} input tokens: input {_fmt(tier.input)}, "
            f"output {_fmt(tier.output)}"
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    overrides = _run(args, load_overrides)
    if not overrides:
        print("no price overrides")
    for o in overrides:
        p = o.price
        rates = ", ".join(f"{r} {_fmt(getattr(p, r))}" for r in _RATES if getattr(p, r) is not None)
        print(
            f"{o.id}  {o.provider or '*'}/{o.model_pattern}  from {o.effective_from:%Y-%m-%d %H:%M}"
            f"  {rates}"
        )
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.UTC)
    override_id = uuid7()

    def insert(conn: Connection) -> None:
        conn.execute(
            sa.insert(s.price_overrides).values(
                id=override_id,
                provider=args.provider,
                model_pattern=args.model_pattern,
                effective_from=args.effective_from or now,
                note=args.note,
                created_at=now,
                **{r: getattr(args, r) for r in _RATES},
            )
        )
        bump_routing_version(conn)  # running gateways reload their price book

    _run(args, insert)
    print(f"added price override {override_id}")
    print("stored rows keep their cost until you run: llmops prices reprice --since DATE")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    try:
        override_id = uuid.UUID(args.id)
    except ValueError:
        print(f"not an override id: {args.id!r}")
        return 2

    def delete(conn: Connection) -> int:
        t = s.price_overrides
        gone = conn.execute(sa.delete(t).where(t.c.id == override_id)).rowcount
        if gone:
            bump_routing_version(conn)
        return int(gone)

    if not _run(args, delete):
        print(f"no price override {args.id}")
        return 1
    print(f"deleted price override {args.id}")
    return 0


def cmd_reprice(args: argparse.Namespace) -> int:
    from llmops.cli import settings_from_args

    settings: Settings = settings_from_args(args)

    def go(conn: Connection) -> Any:
        pricer = RecordPricer(PriceBook(load_overrides(conn)))
        return reprice(
            conn,
            pricer,
            args.since,
            args.until,
            dry_run=args.dry_run,
            indexed_tags=settings.indexed_tag_keys,
        )

    r = _run(args, go)
    verb = "would change" if args.dry_run else "changed"
    print(f"{r.rows} priced rows since {args.since:%Y-%m-%d}; {verb} {r.changed}")
    print(
        f"total cost ${Decimal(r.cost_before) / 1_000_000:.6f} -> "
        f"${Decimal(r.cost_after) / 1_000_000:.6f}; unpriced {r.unpriced_before} -> "
        f"{r.unpriced_after}"
    )
    return 0


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    from llmops.cli import settings_from_args

    settings: Settings = settings_from_args(args)
    keys = settings.indexed_tag_keys
    since = _run(args, lambda c: rebuild_rollups_and_keys(c, args.since, args.until, keys))
    print(f"rebuilt the rollups of the days from {args.since:%Y-%m-%d}")
    for key, at in sorted(since.items()):
        print(f"  tag {key}: rollups count every request from {at:%Y-%m-%d %H:%M} UTC")
    return 0
