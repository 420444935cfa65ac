"""The ``llmops`` command: serve, migrate, apply, demo, admin."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from sqlalchemy import Connection

from llmops import demo, export_cli, prices_cli, secrets_cli
from llmops.admin import auth
from llmops.admin.apply import ApplyResult, apply_document
from llmops.admin.audit import CLI_ACTOR, record_audit
from llmops.admin.document import DocumentError, parse_document
from llmops.keys import Keyring
from llmops.settings import Settings, describe
from llmops.store import SQLiteStore, open_store
from llmops.store.migrate import migrate

T = TypeVar("T")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.load(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        database_url=getattr(args, "database_url", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
    )


def run_in_store(settings: Settings, fn: Callable[[Connection], T]) -> T:
    """Run ``fn`` in one transaction on the configured database, migrating SQLite first."""

    async def go() -> T:
        store = open_store(settings)
        try:
            if isinstance(store, SQLiteStore):
                await store.run(migrate)
            return await store.run(fn)
        finally:
            await store.close()

    return asyncio.run(go())


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = run_in_store(settings_from_args(args), migrate)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def apply_file(settings: Settings, path: Path) -> ApplyResult:
    doc = parse_document(yaml.safe_load(path.read_text()))
    keyring = Keyring.load(settings.secret_key, settings.data_dir)
    return run_in_store(settings, lambda conn: apply_document(conn, doc, keyring))


def cmd_apply(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        result = apply_file(settings, Path(args.file))
    except (DocumentError, yaml.YAMLError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for change in result.changes:
        print(change)
    if not result.changes:
        print("no changes")
    for env, token in result.secrets.items():
        print(f"secret for environment {env} (shown once, store it now): {token}")
    return 0


def cmd_export_config(args: argparse.Namespace) -> int:
    import datetime as dt

    from llmops.admin.export import export_document

    now = dt.datetime.now(dt.UTC)
    text = run_in_store(settings_from_args(args), lambda conn: export_document(conn, now))
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_from_args(args)
    if args.migrate or not settings.is_postgres:
        run_in_store(settings, migrate)  # once, before any worker starts
    if args.workers > 1:
        # Each worker process builds its own app (own writer, own upstream pool) from the
        # environment, so the flags are handed down as LLMOPS_* variables.
        for flag in ("host", "port", "database_url", "data_dir"):
            value = getattr(settings, flag)
            os.environ[f"LLMOPS_{flag.upper()}"] = str(value)
        uvicorn.run(
            "llmops.app:app_from_env",
            factory=True,
            workers=args.workers,
            **uvicorn_options(settings),
        )
        return 0
    # Imported only here: with --workers N this process only supervises the workers, and the
    # app's modules (aiohttp, the price data, the dashboard …) would cost it ~15 MB for nothing.
    from llmops.app import create_app

    uvicorn.run(create_app(settings), **uvicorn_options(settings))
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": settings.log_level,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 30,
    }


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise ValueError("the passwords differ")
    return password


def cmd_admin_create(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        password = _read_password(args)
        auth.check_password_policy(password)
    except (ValueError, EOFError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def create(conn: Connection) -> auth.User:
        user = auth.create_user(conn, args.username, password)
        record_audit(conn, CLI_ACTOR, "admin_user.create", "admin_user", user.id)
        return user

    try:
        run_in_store(settings, create)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"created admin user {args.username}")
    return 0


def cmd_admin_token_create(args: argparse.Namespace) -> int:
    def create(conn: Connection) -> auth.NewApiToken | None:
        user = auth.find_user(conn, args.username)
        if user is None:
            return None
        new = auth.create_api_token(conn, user.id, args.name)
        details = {"name": args.name.strip(), "user": user.username}
        record_audit(conn, CLI_ACTOR, "admin_token.create", "admin_api_token", new.prefix, details)
        return new

    try:
        new = run_in_store(settings_from_args(args), create)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if new is None:
        print(f"error: no admin user {args.username!r}", file=sys.stderr)
        return 1
    print(f"admin API token {new.prefix} (shown once, store it now):", file=sys.stderr)
    print(new.token)
    return 0


def cmd_admin_token_revoke(args: argparse.Namespace) -> int:
    def revoke(conn: Connection) -> bool:
        done = auth.revoke_api_token(conn, args.prefix)
        if done:
            record_audit(conn, CLI_ACTOR, "admin_token.revoke", "admin_api_token", args.prefix)
        return done

    if not run_in_store(settings_from_args(args), revoke):
        print(f"error: no live admin API token {args.prefix!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.prefix}")
    return 0


def _admin_parser(sub: Any, common: Callable[[argparse.ArgumentParser, bool], None]) -> None:
    admin = sub.add_parser("admin", help="dashboard and admin-API users and tokens")
    commands = admin.add_subparsers(dest="admin_command", required=True)
    p = commands.add_parser("create", help="create an admin user")
    common(p, False)
    p.add_argument("username")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (else prompt for it)",
    )
    p.set_defaults(fn=cmd_admin_create)
    token = commands.add_parser("token", help="admin API tokens (Authorization: Bearer …)")
    tokens = token.add_subparsers(dest="token_command", required=True)
    p = tokens.add_parser("create", help="create a token acting as USERNAME; printed once")
    common(p, False)
    p.add_argument("username")
    p.add_argument("--name", required=True, help="what the token is for, e.g. 'grafana'")
    p.set_defaults(fn=cmd_admin_token_create)
    p = tokens.add_parser("revoke", help="revoke a token by its prefix (llmops_admin_…)")
    common(p, False)
    p.add_argument("prefix")
    p.set_defaults(fn=cmd_admin_token_revoke)


def _parser() -> argparse.ArgumentParser:
    settings_help = "\n".join(
        f"  {name} (default {default}): {text}" for name, default, text in describe()
    )
    parser = argparse.ArgumentParser(
        prog="llmops",
        description="OpenAI-compatible LLM gateway with exact cost and usage observability.",
        epilog="settings (environment variables; DATABASE_URL also works):\n" + settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, server: bool) -> None:
        p.add_argument("--data-dir", help="state directory (LLMOPS_DATA_DIR, default ./.llmops)")
        p.add_argument("--database-url", help="postgresql://… or sqlite:///path (DATABASE_URL)")
        if server:
            p.add_argument("--host", help="listen address (LLMOPS_HOST, default 127.0.0.1)")
            p.add_argument("--port", type=int, help="listen port (LLMOPS_PORT, default 3000)")

    p = sub.add_parser("serve", help="serve the gateway")
    common(p, server=True)
    p.add_argument("--migrate", action="store_true", help="apply pending migrations first")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("migrate", help="apply pending database migrations")
    common(p, server=False)
    p.set_defaults(fn=cmd_migrate)
    p = sub.add_parser(
        "apply", help="create or update environments, providers and configs from YAML"
    )
    common(p, server=False)
    p.add_argument("file", help="YAML file (see examples/llmops.yaml)")
    p.set_defaults(fn=cmd_apply)
    p = sub.add_parser(
        "export-config",
        help="print environments, providers and configs as an `llmops apply` YAML document "
        "(provider API keys are not exported)",
    )
    common(p, server=False)
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(fn=cmd_export_config)
    prices_cli.add_parser(sub, common)
    demo.add_parser(sub, common)
    export_cli.add_parser(sub, common)
    secrets_cli.add_parser(sub, common)
    _admin_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.fn(args)
    except ValueError as e:  # invalid settings
        print(f"error: {e}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
