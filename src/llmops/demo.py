"""``llmops demo``: a gateway a newcomer can try with no provider key and no other service.

It applies a demo environment with two configs routed to the built-in fake provider (served by
the same process under ``/_fake``, speaking OpenAI's and Anthropic's formats with real usage
numbers), prints a ready OpenAI SDK snippet with a fresh environment secret and a dashboard login,
and with ``--traffic N`` sends N tagged requests through the gateway so the dashboard has data.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import random
import secrets
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.admin import auth
from llmops.admin.apply import apply_document, create_secret
from llmops.admin.document import parse_document
from llmops.keys import Keyring
from llmops.settings import Settings
from llmops.store import schema

log = logging.getLogger("llmops.demo")

DEMO_CONFIG = "demo-chat"
DEMO_TEXT = """LLMOps demo: environment 'demo', configs '{config}' and 'demo-summarize',
routed to the built-in fake provider. Data: {data}

from openai import OpenAI
client = OpenAI(
    base_url="{base}",
    api_key="{secret}",
    default_headers={{"x-llmops-config": "{config}"}},
)
reply = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{{"role": "user", "content": "Hi"}}],
    metadata={{"tenantSlug": "acme-corp", "userId": "user_123"}},
)
print(reply.choices[0].message.content)

Dashboard: http://{host}:{port}/llmops/ {login}
"""


def demo_document(port: int) -> dict[str, Any]:
    fake = f"http://127.0.0.1:{port}/_fake/v1"
    return {
        "environments": [{"slug": "demo", "name": "Demo"}],
        "providers": [
            {
                "slug": "fake",
                "name": "Built-in fake provider (OpenAI format)",
                "type": "openai-compatible",
                "base_url": fake,
            },
            {
                "slug": "fake-anthropic",
                "name": "Built-in fake provider (Anthropic format)",
                "type": "anthropic",
                "base_url": fake,
            },
        ],
        "configs": [
            {
                "slug": DEMO_CONFIG,
                "name": "Demo chat",
                "variants": [
                    {
                        "name": "default",
                        "provider": "fake",
                        "model": "gpt-4o-mini",
                        "parameters": {"temperature": 0.2},
                    },
                    {"name": "mini", "provider": "fake", "model": "gpt-4.1-mini"},
                ],
                "targeting": {
                    "demo": {
                        "sticky_key": "userId",
                        "variants": [
                            {"variant": "default", "weight": 80},
                            {"variant": "mini", "weight": 20},
                        ],
                    }
                },
            },
            {
                "slug": "demo-summarize",
                "name": "Demo summarizer",
                "variants": [
                    {
                        "name": "claude",
                        "provider": "fake-anthropic",
                        "model": "claude-3-5-haiku-latest",
                    }
                ],
                "targeting": {"demo": {"variant": "claude"}},
            },
        ],
    }


def seed(settings: Settings) -> tuple[str, str]:
    """Apply the demo document; return a new environment secret and the dashboard login line."""
    from llmops.cli import run_in_store

    doc = parse_document(demo_document(settings.port))
    keyring = Keyring.load(settings.secret_key, settings.data_dir)

    def go(conn: Connection) -> tuple[str, str]:
        result = apply_document(conn, doc, keyring)
        token = result.secrets.get("demo")
        if token is None:  # the environment exists: a fresh secret, so the snippet always works
            env_id = conn.execute(
                sa.select(schema.environments.c.id).where(schema.environments.c.slug == "demo")
            ).scalar_one()
            token = create_secret(conn, env_id, dt.datetime.now(dt.UTC))
        password = secrets.token_urlsafe(12)
        if auth.ensure_bootstrap_admin(conn, password):
            login = f"(user {auth.BOOTSTRAP_USERNAME}, password {password})"
        else:
            login = "(log in with your admin user)"
        return token, login

    return run_in_store(settings, go)


TENANTS = ("acme-corp", "globex", "initech", "umbrella", "hooli")
FEATURES = ("chat", "search", "summarize")
QUESTIONS = (
    "How do I reset my password?",
    "Summarize this ticket: the export button does nothing on Safari.",
    "Write a friendly reply to a customer asking for a refund.",
    "What is our SLA for enterprise plans?",
)


async def send_traffic(base_url: str, secret: str, count: int) -> int:
    """Send ``count`` tagged chat requests through the gateway; return how many succeeded."""
    import aiohttp

    rng = random.Random(7)
    ok = 0
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            config = "demo-summarize" if rng.random() < 0.3 else DEMO_CONFIG
            tenant = rng.choices(TENANTS, weights=(8, 5, 3, 2, 1))[0]
            body = {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "user", "content": rng.choice(QUESTIONS) * rng.randint(1, 6)}
                ],
                "metadata": {
                    "tenantSlug": tenant,
                    "userId": f"user_{rng.randint(1, 25)}",
                    "feature": rng.choice(FEATURES),
                },
                "stream": i % 4 == 0,
            }
            headers = {"authorization": f"Bearer {secret}", "x-llmops-config": config}
            async with session.post(
                f"{base_url}/chat/completions", json=body, headers=headers
            ) as resp:
                await resp.read()
                ok += resp.status == 200
    return ok


def _traffic_thread(settings: Settings, base_url: str, secret: str, count: int) -> None:
    async def go() -> None:
        import aiohttp

        for _ in range(200):  # wait for the server (bounded: 20 s)
            try:
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(f"http://127.0.0.1:{settings.port}/healthz") as r,
                ):
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        ok = await send_traffic(base_url, secret, count)
        print(f"demo traffic: {ok}/{count} requests answered", flush=True)

    threading.Thread(target=lambda: asyncio.run(go()), daemon=True).start()


def cmd_demo(args: argparse.Namespace) -> int:
    import uvicorn
    from starlette.routing import Mount

    from llmops.app import GATEWAY_PREFIX, create_app
    from llmops.cli import settings_from_args, uvicorn_options
    from llmops.testing import FakeProvider

    settings = settings_from_args(args)
    secret, login = seed(settings)
    base = f"http://{settings.host}:{settings.port}{GATEWAY_PREFIX}"
    print(
        DEMO_TEXT.format(
            config=DEMO_CONFIG,
            data=settings.data_dir.resolve(),
            base=base,
            secret=secret,
            host=settings.host,
            port=settings.port,
            login=login,
        ),
        flush=True,
    )
    fake: Any = FakeProvider()
    app = create_app(settings, extra_routes=[Mount("/_fake", app=fake)])
    if args.traffic:
        _traffic_thread(
            settings, f"http://127.0.0.1:{settings.port}{GATEWAY_PREFIX}", secret, args.traffic
        )
    uvicorn.run(app, **uvicorn_options(settings))
    return 0


def add_parser(sub: Any, common: Any) -> None:
    p = sub.add_parser("demo", help="serve a demo environment routed to a built-in fake provider")
    common(p, server=True)
    p.add_argument(
        "--traffic",
        type=int,
        default=0,
        metavar="N",
        help="send N tagged demo requests once the server is up",
    )
    p.set_defaults(fn=cmd_demo)
