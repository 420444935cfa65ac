"""``llmops secrets``: environment secrets from the shell (the same functions as the API)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from llmops.admin.audit import CLI_ACTOR
from llmops.errors import LLMOpsError


def add_parser(sub: Any, common: Any) -> None:
    p = sub.add_parser("secrets", help="list, create, rotate and revoke environment secrets")
    psub = p.add_subparsers(dest="secrets_command", required=True)
    q = psub.add_parser("list", help="an environment's secrets (prefixes only)")
    common(q, server=False)
    q.add_argument("environment")
    q.set_defaults(fn=cmd_list)
    q = psub.add_parser("create", help="a new secret (printed once)")
    common(q, server=False)
    q.add_argument("environment")
    q.set_defaults(fn=cmd_create)
    q = psub.add_parser("rotate", help="a new secret; the old one works for --overlap-hours")
    common(q, server=False)
    q.add_argument("environment")
    q.add_argument("prefix", help="the secret to replace, e.g. llmops_ab12cd34")
    q.add_argument("--overlap-hours", type=float, default=24.0)
    q.set_defaults(fn=cmd_rotate)
    q = psub.add_parser("revoke", help="stop a secret at once")
    common(q, server=False)
    q.add_argument("environment")
    q.add_argument("prefix")
    q.set_defaults(fn=cmd_revoke)


def _run(args: argparse.Namespace, fn: Any) -> Any:
    from llmops.cli import run_in_store, settings_from_args

    return run_in_store(settings_from_args(args), fn)


def _guard(args: argparse.Namespace, fn: Any) -> Any:
    try:
        return _run(args, fn)
    except LLMOpsError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return None


def cmd_list(args: argparse.Namespace) -> int:
    from llmops.admin import environments

    now = dt.datetime.now(dt.UTC)
    secrets = _guard(args, lambda c: environments.list_secrets(c, args.environment, now))
    if secrets is None:
        return 1
    for s in secrets.data:
        state = "active" if s.active else ("revoked" if s.revoked_at else "expired")
        expires = f", expires {s.expires_at:%Y-%m-%d %H:%M}" if s.expires_at else ""
        print(f"{s.prefix}  {state}  created {s.created_at:%Y-%m-%d %H:%M}{expires}")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    from llmops.admin import environments
    from llmops.admin import models as m

    now = dt.datetime.now(dt.UTC)
    new = _guard(
        args,
        lambda c: environments.create_secret(
            c, CLI_ACTOR, args.environment, m.SecretIn(expires_at=None), now
        ),
    )
    if new is None:
        return 1
    print(new.token)
    print("store it now: it is not shown again", file=sys.stderr)
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from llmops.admin import environments
    from llmops.admin import models as m

    now = dt.datetime.now(dt.UTC)
    body = m.SecretRotate(overlap_seconds=int(args.overlap_hours * 3600))
    rotated = _guard(
        args,
        lambda c: environments.rotate_secret(
            c, CLI_ACTOR, args.environment, args.prefix, body, now
        ),
    )
    if rotated is None:
        return 1
    print(rotated.secret.token)
    until = rotated.previous.expires_at
    print(f"{args.prefix} keeps working until {until:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from llmops.admin import environments

    now = dt.datetime.now(dt.UTC)
    done = _guard(
        args,
        lambda c: environments.revoke_secret(c, CLI_ACTOR, args.environment, args.prefix, now),
    )
    if done is None:
        return 1
    print(f"revoked {args.prefix}")
    return 0
