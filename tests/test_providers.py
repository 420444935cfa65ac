"""Provider credentials as users configure them: Azure URLs and headers, keys from environment
variables, disabled credentials, OpenAI-compatible base URLs."""

from __future__ import annotations

import datetime as dt

import openai
import pytest
import sqlalchemy as sa

from llmops.admin.apply import apply_document, bump_routing_version
from llmops.admin.document import parse_document
from llmops.app import create_app
from llmops.cli import run_in_store
from llmops.keys import Keyring
from llmops.settings import Settings
from llmops.store import schema as s
from llmops.testing import DEFAULT_ANSWER, FakeProviderServer, ServerThread

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def served(database_url: str, tmp_path, fake: FakeProviderServer):  # type: ignore[no-untyped-def]
    settings = Settings.load(
        {}, database_url=database_url, data_dir=tmp_path, flush_interval_ms=50, snapshot_ttl=0.1
    )
    keyring = Keyring.load(settings.secret_key, settings.data_dir)
    root = fake.base_url.removesuffix("/v1")
    doc = parse_document(
        {
            "environments": ["prod"],
            "providers": [
                {
                    "slug": "azure-dep",
                    "type": "azure",
                    "base_url": root,
                    "api_key": "az-key-1",
                    "options": {
                        "api_version": "2024-10-21",
                        "deployments": {"gpt-4o-mini": "my-dep"},
                    },
                },
                {"slug": "azure-v1", "type": "azure", "base_url": root, "api_key": "az-key-2"},
                {
                    "slug": "from-env",
                    "type": "openai-compatible",
                    "base_url": fake.base_url,
                    "api_key_env": "MY_PROVIDER_KEY",
                },
            ],
        }
    )
    secret = run_in_store(settings, lambda c: apply_document(c, doc, keyring)).secrets["prod"]
    app = create_app(settings, environ={"MY_PROVIDER_KEY": "sk-from-environment"})
    server = ServerThread(app).start()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=secret, max_retries=0)
    yield settings, client
    client.close()
    server.stop()


def test_azure_deployment_urls_and_api_key_header(served, fake: FakeProviderServer) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    r = client.chat.completions.create(model="@azure-dep/gpt-4o-mini", messages=HELLO)
    assert r.choices[0].message.content == DEFAULT_ANSWER
    sent = fake.requests[-1]
    assert sent.path == "/openai/deployments/my-dep/chat/completions"
    assert sent.query == "api-version=2024-10-21"
    assert sent.headers["api-key"] == "az-key-1" and "authorization" not in sent.headers
    client.embeddings.create(model="@azure-v1/text-embedding-3-small", input="x")
    assert fake.requests[-1].path == "/openai/v1/embeddings"
    assert fake.requests[-1].headers["api-key"] == "az-key-2"


def test_api_key_from_a_named_environment_variable(served, fake: FakeProviderServer) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    client.chat.completions.create(model="@from-env/llama-3.1-8b", messages=HELLO)
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-from-environment"


def test_a_disabled_credential_stops_serving(served, fake: FakeProviderServer) -> None:  # type: ignore[no-untyped-def]
    settings, client = served

    def disable(conn: sa.Connection) -> None:
        t = s.provider_credentials
        conn.execute(
            sa.update(t).where(t.c.slug == "from-env").values(disabled_at=dt.datetime.now(dt.UTC))
        )
        bump_routing_version(conn)

    run_in_store(settings, disable)
    import time

    time.sleep(0.5)
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model="@from-env/llama-3.1-8b", messages=HELLO)
    assert e.value.body["code"] == "credential_disabled"  # type: ignore[index]
