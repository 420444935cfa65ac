"""Shared fixtures: real SQLite files and a real PostgreSQL, the fake provider on 127.0.0.1, and
the gateway served by uvicorn in a thread, called with the official openai client."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from cryptography.fernet import Fernet
from sqlalchemy import Connection

from llmops.admin.apply import apply_document
from llmops.admin.auth import Passwords, create_api_token, create_user, find_user
from llmops.admin.document import parse_document
from llmops.app import GATEWAY_PREFIX, Services, create_app
from llmops.cli import run_in_store
from llmops.keys import Keyring
from llmops.settings import Settings
from llmops.store import PostgresStore
from llmops.store import schema as s
from llmops.store.migrate import migrate
from llmops.testing import FakeProviderServer, ServerThread, free_port
from tests.pg import TempPostgres

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str | None]:
    url = os.environ.get("LLMOPS_TEST_DATABASE_URL")
    if url:
        yield url
        return
    try:
        pg = TempPostgres(free_port()).start()
    except (FileNotFoundError, subprocess.CalledProcessError, KeyError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and could not start: {e}")
        yield None
        return
    yield pg.url
    pg.stop()


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _admin(url: str, *sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for stmt in sql:
            await conn.execute(stmt)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template(pg_server_url: str | None) -> str | None:
    """A migrated template database; each test clones it (CREATE DATABASE … TEMPLATE)."""
    if pg_server_url is None:
        return None
    asyncio.run(
        _admin(
            pg_server_url,
            "DROP DATABASE IF EXISTS llmops_template",
            "CREATE DATABASE llmops_template",
        )
    )

    async def go() -> None:
        store = PostgresStore(_with_db(pg_server_url, "llmops_template"))
        await store.run(migrate)
        await store.close()

    asyncio.run(go())
    return pg_server_url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'llmops.db'}"
        return
    server = request.getfixturevalue("pg_template")
    if server is None:
        pytest.skip("PostgreSQL is not installed here (CI installs it)")
    name = "t_" + uuid.uuid4().hex[:16]
    asyncio.run(_admin(server, f"CREATE DATABASE {name} TEMPLATE llmops_template"))
    yield _with_db(server, name)
    asyncio.run(_admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProviderServer]:
    fake = FakeProviderServer().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_server: FakeProviderServer) -> FakeProviderServer:
    fake_server.reset()
    return fake_server


def gateway_document(fake_base_url: str, dead_url: str) -> dict[str, Any]:
    """Environments `test` and `other`, providers on the fake, and one config per behaviour."""
    return {
        "environments": [{"slug": "test"}, {"slug": "other"}],
        "providers": [
            {
                "slug": "oai",
                "type": "openai-compatible",
                "base_url": fake_base_url,
                "api_key": "sk-test-provider-key-123",
            },
            {
                "slug": "claude",
                "type": "anthropic",
                "base_url": fake_base_url,
                "api_key": "sk-ant-test-key-456",
            },
            {"slug": "down", "type": "openai-compatible", "base_url": dead_url},
        ],
        "configs": [
            {
                "slug": "chat",
                "variants": [
                    {
                        "name": "default",
                        "provider": "oai",
                        "model": "gpt-4o-mini",
                        "parameters": {"temperature": 0.5},
                    }
                ],
                "targeting": {"test": {"variant": "default"}},
            },
            {
                "slug": "claude-chat",
                "variants": [
                    {"name": "default", "provider": "claude", "model": "claude-3-5-haiku-latest"}
                ],
                "targeting": {"test": {"variant": "default"}},
            },
            {
                "slug": "ab",
                "variants": [
                    {"name": "a", "provider": "oai", "model": "model-a"},
                    {"name": "b", "provider": "oai", "model": "model-b"},
                ],
                "targeting": {
                    "test": {
                        "sticky_key": "userId",
                        "variants": [
                            {"variant": "a", "weight": 50},
                            {"variant": "b", "weight": 50},
                        ],
                    }
                },
            },
            {
                "slug": "prompted",
                "variants": [
                    {
                        "name": "default",
                        "provider": "oai",
                        "model": "gpt-4o-mini",
                        "prompt": {
                            "system": "You help customers of {{product}}.",
                            "messages": [{"role": "user", "content": "My plan is {{plan}}."}],
                        },
                    }
                ],
                "targeting": {"test": {"variant": "default"}},
            },
            {
                "slug": "broken",
                "variants": [{"name": "default", "provider": "down", "model": "gpt-4o-mini"}],
                "targeting": {"test": {"variant": "default"}},
            },
            {
                "slug": "other-only",
                "variants": [{"name": "default", "provider": "oai", "model": "gpt-4o-mini"}],
                "targeting": {"other": {"variant": "default"}},
            },
        ],
    }


TEST_ADMIN = "tester"
TEST_ADMIN_PASSWORD = "correct horse battery staple"


def cheap_passwords() -> Passwords:
    """Fast argon2 parameters, for tests only (the app always hashes at argon2-cffi's defaults)."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@dataclass
class Gateway:
    settings: Settings
    server: ServerThread
    services: Services
    secret: str
    other_secret: str
    clients: list[openai.OpenAI]

    @property
    def base_url(self) -> str:
        return self.server.url + GATEWAY_PREFIX

    def client(self, config: str | None = "chat", **kwargs: Any) -> openai.OpenAI:
        headers = {"x-llmops-config": config} if config else {}
        client = openai.OpenAI(
            base_url=self.base_url,
            api_key=kwargs.pop("api_key", self.secret),
            default_headers=headers,
            max_retries=0,
            **kwargs,
        )
        self.clients.append(client)
        return client

    def query(self, fn: Callable[[Connection], Any]) -> Any:
        return run_in_store(self.settings, fn)

    @functools.cached_property
    def admin_token(self) -> str:
        """An admin API token; user ``tester`` (TEST_ADMIN_PASSWORD) is created on first use."""

        def make(conn: Connection) -> str:
            user = find_user(conn, TEST_ADMIN) or create_user(
                conn, TEST_ADMIN, TEST_ADMIN_PASSWORD, passwords=cheap_passwords()
            )
            return create_api_token(conn, user.id, "tests").token

        token: str = self.query(make)
        return token

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def rows(self, count: int | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The request rows, waiting until at least ``count`` have been written."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query(
                lambda c: [
                    dict(r._mapping)
                    for r in c.execute(sa.select(s.llm_requests).order_by(s.llm_requests.c.id))
                ]
            )
            if count is None or len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def row(self, request_id: str) -> dict[str, Any]:
        for r in self.rows():
            if str(r["id"]) == request_id:
                return r
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.05)
            for r in self.rows():
                if str(r["id"]) == request_id:
                    return r
        raise AssertionError(f"no row {request_id}")


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def gateway_factory(
    database_url: str, tmp_path: Path, fake: FakeProviderServer
) -> Iterator[GatewayFactory]:
    started: list[Gateway] = []
    secrets: dict[str, str] = {}
    # Gateways of one test share the database, so they share the key its provider keys use.
    secret_key = Fernet.generate_key().decode()

    def make(**overrides: Any) -> Gateway:
        settings = Settings.load(
            {},
            data_dir=tmp_path / f"data{len(started)}",
            database_url=database_url,
            flush_interval_ms=50,
            **{"secret_key": secret_key, **overrides},
        )
        keyring = Keyring.load(settings.secret_key, settings.data_dir)
        doc = parse_document(gateway_document(fake.base_url, f"http://127.0.0.1:{free_port()}/v1"))
        result = run_in_store(settings, lambda c: apply_document(c, doc, keyring))
        secrets.update(result.secrets)
        app = create_app(settings, environ={})
        server = ServerThread(app).start()
        gw = Gateway(settings, server, app.state.services, secrets["test"], secrets["other"], [])
        started.append(gw)
        return gw

    yield make
    for gw in started:
        for client in gw.clients:
            client.close()
        gw.server.stop()


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return gateway_factory()


@dataclass
class HttpResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.content)


def http(
    method: str,
    url: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> HttpResponse:
    """A plain HTTP call (stdlib), for requests the openai client would not send."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request(
            method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body=data,
            headers=headers or {},
        )
        resp = conn.getresponse()
        return HttpResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@pytest.fixture
def own_postgres() -> Iterator[TempPostgres]:
    """A PostgreSQL server of the test's own, to stop and start."""
    try:
        pg = TempPostgres(free_port()).start()
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip("PostgreSQL is not installed here (CI installs it)")
    yield pg
    pg.stop()
