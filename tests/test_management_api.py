"""The management API under /llmops/api/v1: CRUD with validation errors naming the field, audit
entries, changes reaching the gateway within a second (in this process at once, in another through
NOTIFY on PostgreSQL), the YAML export round trip, and a schemathesis run against the served
OpenAPI document — on SQLite and PostgreSQL, over HTTP against the real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import time
import uuid
from collections.abc import Callable
from contextlib import redirect_stdout
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest
import sqlalchemy as sa
import yaml
from cryptography.fernet import Fernet

from llmops.admin.apply import apply_document
from llmops.admin.document import parse_document
from llmops.cli import main
from llmops.gateway.snapshot import SnapshotHolder
from llmops.keys import Keyring
from llmops.store import PostgresStore
from llmops.store import schema as s
from llmops.store.migrate import migrate
from llmops.testing import FakeProviderServer
from tests.conftest import Gateway, GatewayFactory, HttpResponse, http
from tests.pg import TempPostgres

API = "/llmops/api/v1"
EXAMPLE = Path(__file__).parent.parent / "examples" / "llmops.yaml"
MESSAGES: Any = [{"role": "user", "content": "Hi"}]


def call(gw: Gateway, method: str, path: str, body: Any = None, **kw: Any) -> HttpResponse:
    headers = {**gw.admin_headers, "content-type": "application/json", **kw.pop("headers", {})}
    data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    return http(method, gw.server.url + API + path, data, headers, **kw)


def ok(gw: Gateway, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    r = call(gw, method, path, body)
    assert r.status_code == status, (method, path, r.status_code, r.text)
    return r.json() if r.content else None


def refused(gw: Gateway, method: str, path: str, body: Any, status: int, param: str | None) -> str:
    """Assert an error response in the OpenAI envelope naming ``param``; return its message."""
    r = call(gw, method, path, body)
    assert r.status_code == status, (method, path, body, r.status_code, r.text)
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param, error
    return str(error["message"])


def within(seconds: float, check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` held (fails after ``seconds``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "not in time"
        time.sleep(0.02)
    return time.monotonic() - started


def chat(gw: Gateway, config: str, api_key: str | None = None) -> Any:
    kwargs = {} if api_key is None else {"api_key": api_key}
    return gw.client(config, **kwargs).chat.completions.create(model="x", messages=MESSAGES)


def audit_actions(gw: Gateway, **filters: str) -> list[tuple[str, str, str]]:
    query = "&".join(f"{k}={v}" for k, v in {"limit": "500", **filters}.items())
    entries = ok(gw, "GET", f"/audit?{query}")["data"]
    return [(e["action"], e["target_type"], e["actor"]) for e in entries]


def test_every_operation_refuses_anonymous_callers(gateway: Gateway) -> None:
    doc = ok(gateway, "GET", "/openapi.json")
    assert doc["openapi"] == "3.1.0"
    count = 0
    for path, ops in doc["paths"].items():
        for method in ops:
            url = gateway.server.url + path.replace("{version}", "1")
            for key in ("{environment}", "{provider}", "{config}", "{variant}", "{prefix}"):
                url = url.replace(key, "x")
            r = http(method.upper(), url.replace("{override}", str(uuid.uuid4())), "{}")
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["error"]["type"] == "authentication_error"
            count += 1
    assert count >= 40


def test_environments_crud_validation_and_audit(gateway: Gateway) -> None:
    gw = gateway
    created = ok(gw, "POST", "/environments", {"slug": "qa", "name": "QA"}, 201)
    assert created["slug"] == "qa" and created["name"] == "QA"
    assert ok(gw, "GET", "/environments/qa") == created
    assert ok(gw, "GET", f"/environments/{created['id']}") == created
    assert [e["slug"] for e in ok(gw, "GET", "/environments")["data"]] == ["other", "qa", "test"]
    refused(gw, "POST", "/environments", {"slug": "qa"}, 409, "slug")
    assert "slug" in refused(gw, "POST", "/environments", {"slug": "Not A Slug"}, 400, "slug")
    refused(gw, "POST", "/environments", {"name": "no slug"}, 400, "slug")
    refused(gw, "POST", "/environments", {"slug": "x", "colour": "red"}, 400, "colour")
    refused(gw, "POST", "/environments", {"slug": "x", "name": "a\x00b"}, 400, "name")
    refused(gw, "POST", "/environments", "{not json", 400, None)
    refused(gw, "POST", "/environments", [1], 400, None)
    renamed = ok(gw, "PATCH", "/environments/qa", {"name": "Quality"})
    assert renamed["name"] == "Quality" and renamed["id"] == created["id"]
    refused(gw, "PATCH", "/environments/qa", {"slug": "test"}, 409, "slug")
    refused(gw, "GET", "/environments/nope", None, 404, "environment")
    ok(gw, "DELETE", "/environments/qa", status=204)
    refused(gw, "GET", "/environments/qa", None, 404, "environment")
    # A deleted slug can be taken again: by a new environment.
    again = ok(gw, "POST", "/environments", {"slug": "qa"}, 201)
    assert again["id"] != created["id"]
    actor = next(a for _, _, a in audit_actions(gw))
    assert actor.startswith("token:llmops_admin_")
    mine = audit_actions(gw, target_type="environment", target_id=created["id"])
    assert mine == [
        ("environment.delete", "environment", actor),
        ("environment.update", "environment", actor),
        ("environment.create", "environment", actor),
    ]


def test_secrets_are_shown_once_and_rotate_and_revoke_reach_the_gateway_at_once(
    gateway: Gateway,
) -> None:
    gw = gateway
    new = ok(gw, "POST", "/environments/test/secrets", None, 201)
    token = new["token"]
    assert token.startswith(new["prefix"] + "_") and new["active"]
    assert chat(gw, "chat", token).choices[0].message.content  # usable at once
    listed = call(gw, "GET", "/environments/test/secrets")
    assert new["prefix"] in listed.text and token not in listed.text
    assert "hash" not in listed.text and "token" not in listed.text
    refused(
        gw, "POST", "/environments/test/secrets", {"expires_at": "2001-01-01"}, 400, "expires_at"
    )

    rotated = ok(
        gw,
        "POST",
        f"/environments/test/secrets/{new['prefix']}/rotate",
        {"overlap_seconds": 1},
        201,
    )
    fresh = rotated["secret"]["token"]
    expires = dt.datetime.fromisoformat(rotated["previous"]["expires_at"])
    assert 0 < (expires - dt.datetime.now(dt.UTC)).total_seconds() <= 1.0
    assert chat(gw, "chat", fresh).choices and chat(gw, "chat", token).choices  # both, for now
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    with pytest.raises(openai.AuthenticationError):
        chat(gw, "chat", token)
    assert chat(gw, "chat", fresh).choices
    refused(gw, "POST", f"/environments/test/secrets/{new['prefix']}/rotate", None, 409, "prefix")
    refused(
        gw,
        "POST",
        f"/environments/test/secrets/{rotated['secret']['prefix']}/rotate",
        {"overlap_seconds": -1},
        400,
        "overlap_seconds",
    )
    default = ok(
        gw, "POST", f"/environments/test/secrets/{rotated['secret']['prefix']}/rotate", status=201
    )
    day = dt.datetime.fromisoformat(default["previous"]["expires_at"]) - dt.datetime.now(dt.UTC)
    assert abs(day.total_seconds() - 86_400) < 60  # 24 h overlap by default

    revoked = ok(gw, "POST", f"/environments/test/secrets/{default['secret']['prefix']}/revoke")
    assert revoked["revoked_at"] and not revoked["active"]
    with pytest.raises(openai.AuthenticationError):
        chat(gw, "chat", default["secret"]["token"])  # at once
    refused(gw, "POST", "/environments/test/secrets/llmops_00000000/revoke", None, 404, "prefix")
    actions = [a for a, _, _ in audit_actions(gw, target_type="environment")]
    assert actions[:4] == ["secret.revoke", "secret.rotate", "secret.rotate", "secret.create"]


def test_provider_credentials_never_show_keys_and_disabling_stops_serving(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    gw = gateway
    listed = call(gw, "GET", "/providers")
    assert "sk-test-provider-key-123" not in listed.text and "encrypted" not in listed.text
    oai = next(p for p in listed.json()["data"] if p["slug"] == "oai")
    assert oai["has_api_key"] is True and oai["api_key_env"] is None and not oai["disabled"]
    body = {"slug": "groq", "type": "openai-compatible", "base_url": "https://api.groq.com/v1/"}
    created = ok(gw, "POST", "/providers", {**body, "api_key_env": "GROQ_KEY"}, 201)
    assert created["base_url"] == "https://api.groq.com/v1" and not created["has_api_key"]
    assert created["api_key_env"] == "GROQ_KEY"
    refused(gw, "POST", "/providers", {**body, "slug": "g2", "api_key": "k", "api_key_env": "K"},
            400, "api_key_env")  # fmt: skip
    refused(gw, "POST", "/providers", {"slug": "az", "type": "azure"}, 400, "base_url")
    refused(gw, "POST", "/providers", {"slug": "x", "type": "nope"}, 400, "type")
    refused(gw, "POST", "/providers", {**body, "base_url": "ftp://x"}, 400, "base_url")
    refused(gw, "POST", "/providers", body, 409, "slug")
    assert ok(gw, "POST", "/providers", {"slug": "oa", "type": "openai"}, 201)["base_url"] == (
        "https://api.openai.com/v1"
    )

    # A new key is encrypted with the app's keyring and used by the gateway at once.
    updated = ok(gw, "PATCH", "/providers/oai", {"api_key": "sk-rotated-key-789"})
    assert updated["has_api_key"] and "sk-rotated" not in json.dumps(updated)
    stored = gw.query(
        lambda c: c.execute(
            sa.select(s.provider_credentials.c.api_key_encrypted).where(
                s.provider_credentials.c.slug == "oai"
            )
        ).scalar_one()
    )
    assert "sk-rotated" not in stored
    assert Keyring(gw.settings.secret_key).decrypt(stored) == "sk-rotated-key-789"
    chat(gw, "chat")
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-rotated-key-789"

    tested = ok(gw, "POST", "/providers/oai/test")
    assert tested["ok"] and tested["status"] == 200 and tested["error"] is None
    assert (fake.requests[-1].method, fake.requests[-1].path) == ("GET", "/v1/models")
    assert ok(gw, "POST", "/providers/claude/test")["ok"]
    assert fake.requests[-1].path == "/v1/models"
    assert fake.requests[-1].headers["x-api-key"] == "sk-ant-test-key-456"
    assert "anthropic-version" in fake.requests[-1].headers
    down = ok(gw, "POST", "/providers/down/test")
    assert not down["ok"] and down["status"] is None and down["error"]
    fake.enqueue(status=401, json={"error": {"message": "Incorrect API key sk-rotated-key-789"}})
    bad = ok(gw, "POST", "/providers/oai/test")
    assert (bad["ok"], bad["status"]) == (False, 401) and "sk-rotated" not in bad["error"]

    assert ok(gw, "POST", "/providers/oai/disable")["disabled"]
    with pytest.raises(openai.PermissionDeniedError) as refusal:
        chat(gw, "chat")  # at once
    assert refusal.value.code == "credential_disabled"
    assert not ok(gw, "POST", "/providers/oai/enable")["disabled"]
    assert chat(gw, "chat").choices
    assert "chat" in refused(gw, "DELETE", "/providers/oai", None, 409, "provider")
    ok(gw, "DELETE", "/providers/groq", status=204)
    refused(gw, "GET", "/providers/groq", None, 404, "provider")
    actions = [a for a, _, _ in audit_actions(gw, target_type="provider_credential")]
    assert actions == [
        "provider.delete",
        "provider.enable",
        "provider.disable",
        "provider.update",
        "provider.create",
        "provider.create",
    ]
    details = ok(gw, "GET", "/audit?target_type=provider_credential")["data"]
    assert "sk-rotated" not in json.dumps(details)


def test_versions_and_targeting_move_the_gateway_at_once(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    gw = gateway
    config = ok(gw, "POST", "/configs", {"slug": "bot", "description": "A bot"}, 201)
    refused(gw, "POST", "/configs", {"slug": "bot"}, 409, "slug")
    variant = {"name": "main", "provider": "oai", "model": "model-v1"}
    created = ok(gw, "POST", "/configs/bot/variants", variant, 201)
    assert created["latest"]["version"] == 1 and created["latest"]["provider"] == "oai"
    refused(gw, "POST", "/configs/bot/variants", variant, 409, "name")
    refused(gw, "POST", "/configs/bot/variants", {**variant, "name": "v2", "provider": "nope"},
            400, "provider")  # fmt: skip
    streaming = {**variant, "name": "v2", "parameters": {"stream": True}}
    refused(gw, "POST", "/configs/bot/variants", streaming, 400, "parameters.stream")
    ok(gw, "PUT", "/configs/bot/targeting/test", {"arms": [{"variant": "main"}]})
    chat(gw, "bot")  # served at once
    assert fake.requests[-1].json["model"] == "model-v1"

    versions = "/configs/bot/variants/main/versions"
    v2 = {"provider": "oai", "model": "model-v2", "parameters": {"temperature": 0.1}}
    assert ok(gw, "POST", versions, v2, 201)["version"] == 2
    assert ok(gw, "POST", versions, v2, 200)["version"] == 2  # same content: nothing new
    chat(gw, "bot")  # targeting follows the latest version
    assert fake.requests[-1].json["model"] == "model-v2"
    assert [v["version"] for v in ok(gw, "GET", versions)["data"]] == [1, 2]
    assert ok(gw, "GET", versions + "/1")["model"] == "model-v1"
    refused(gw, "GET", versions + "/3", None, 404, "version")
    diff = ok(gw, "GET", versions + "/diff?a=1&b=2")
    assert diff["changes"] == [
        {"field": "model", "old": "model-v1", "new": "model-v2"},
        {"field": "parameters.temperature", "old": None, "new": 0.1},
    ]
    assert ok(gw, "GET", versions + "/diff?a=2&b=2")["changes"] == []
    refused(gw, "GET", versions + "/diff?a=1&b=9", None, 404, "b")
    refused(gw, "GET", versions + "/diff?a=0&b=1", None, 400, "a")
    refused(gw, "GET", versions + "/diff?a=1", None, 400, "b")

    pinned = ok(gw, "PUT", "/configs/bot/targeting/test",
                {"sticky_key": "userId", "arms": [{"variant": "main", "version": 1}]})  # fmt: skip
    assert pinned["arms"] == [
        {"variant_id": created["id"], "variant": "main", "version": 1, "weight": 1}
    ]
    chat(gw, "bot")
    assert fake.requests[-1].json["model"] == "model-v1"
    other = ok(gw, "GET", "/configs/chat")["variants"][0]["id"]
    for arms, param in [
        ([{"variant": "main", "weight": 0}], "arms"),
        ([{"variant": "main", "weight": -1}], "arms[0].weight"),
        ([{"variant": "main"}, {"variant": other}], "arms[1].variant"),
        ([{"variant": "main", "version": 9}], "arms[0].version"),
        ([], "arms"),
    ]:
        refused(gw, "PUT", "/configs/bot/targeting/test", {"arms": arms}, 400, param)
    refused(gw, "PUT", "/configs/bot/targeting/nope", {"arms": [{"variant": "main"}]}, 404,
            "environment")  # fmt: skip
    detail = ok(gw, "GET", "/configs/bot")
    assert detail["description"] == "A bot" and detail["targeting"][0]["environment"] == "test"
    assert "main" in refused(gw, "DELETE", "/configs/bot/variants/main", None, 409, "variant")
    ok(gw, "DELETE", "/configs/bot/targeting/test", status=204)
    with pytest.raises(openai.NotFoundError) as gone:
        chat(gw, "bot")
    assert gone.value.code == "no_targeting"
    ok(gw, "DELETE", "/configs/bot/variants/main", status=204)
    assert ok(gw, "GET", "/configs/bot/variants")["data"] == []
    assert ok(gw, "PATCH", "/configs/bot", {"name": "Bot"})["name"] == "Bot"
    ok(gw, "DELETE", f"/configs/{config['id']}", status=204)
    with pytest.raises(openai.NotFoundError) as unknown:
        chat(gw, "bot")
    assert unknown.value.code == "config_not_found"
    assert [a for a, _, _ in audit_actions(gw, target_type="config", target_id=config["id"])] == [
        "config.delete",
        "config.update",
        "targeting.delete",
        "targeting.set",
        "targeting.set",
        "config.create",
    ]
    assert [a for a, _, _ in audit_actions(gw, target_type="variant")] == [
        "variant.delete",
        "variant_version.create",
        "variant.create",
    ]


def test_price_overrides_reprice_new_requests(gateway: Gateway) -> None:
    gw = gateway
    body = {"provider": "openai-compatible", "model_pattern": "gpt-4o-mini*", "input": "2",
            "output": 4, "note": "negotiated"}  # fmt: skip
    created = ok(gw, "POST", "/prices/overrides", body, 201)
    assert (Decimal(created["input"]), Decimal(created["output"])) == (2, 4)
    assert created["cache_read"] is None and created["note"] == "negotiated"
    assert ok(gw, "GET", "/prices/overrides")["data"] == [created]
    raw = gw.client("chat").chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
    row = gw.row(raw.headers["x-llmops-request-id"])
    # USD per million tokens × tokens = micro-dollars.
    assert row["input_cost"] == 2 * row["prompt_tokens"]
    assert row["output_cost"] == 4 * row["completion_tokens"]
    refused(gw, "POST", "/prices/overrides", {**body, "input": -1}, 400, "input")
    refused(gw, "POST", "/prices/overrides", {**body, "output": "1.0000001"}, 400, "output")
    refused(gw, "POST", "/prices/overrides", {**body, "model_pattern": ""}, 400, "model_pattern")
    ok(gw, "DELETE", f"/prices/overrides/{created['id']}", status=204)
    refused(gw, "DELETE", f"/prices/overrides/{created['id']}", None, 404, "override")
    assert [a for a, _, _ in audit_actions(gw, target_type="price_override")] == [
        "price_override.delete",
        "price_override.create",
    ]


def test_audit_log_pages_newest_first(gateway: Gateway) -> None:
    gw = gateway
    for i in range(5):
        ok(gw, "POST", "/configs", {"slug": f"c{i}"}, 201)
    seen: list[str] = []
    cursor = None
    while True:
        page = ok(gw, "GET", "/audit?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [e["details"]["slug"] for e in page["data"]]
        prefix = gw.admin_token[: len("llmops_admin_") + 8]
        assert {e["actor"] for e in page["data"]} == {f"token:{prefix}"}
        assert all(e["action"] == "config.create" for e in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["c4", "c3", "c2", "c1", "c0"]
    refused(gw, "GET", "/audit?cursor=nonsense", None, 400, "cursor")
    refused(gw, "GET", "/audit?limit=0", None, 400, "limit")


def test_yaml_export_round_trips_through_apply(gateway: Gateway, tmp_path: Path) -> None:
    gw = gateway
    keyring = Keyring(gw.settings.secret_key)
    example = parse_document(yaml.safe_load(EXAMPLE.read_text()))
    gw.query(lambda c: apply_document(c, example, keyring))
    bot = ok(gw, "GET", "/configs/support-bot")
    assert [v["name"] for v in bot["variants"]] == ["baseline", "claude"]
    production = next(t for t in bot["targeting"] if t["environment"] == "production")
    assert production["sticky_key"] == "userId"
    assert [(a["variant"], a["weight"]) for a in production["arms"]] == [
        ("baseline", 90),
        ("claude", 10),
    ]
    azure = ok(gw, "GET", "/providers/azure-eu")
    assert azure["api_key_env"] == "AZURE_OPENAI_API_KEY" and not azure["has_api_key"]
    # An API-made change is part of the export too.
    v2 = {"provider": "groq", "model": "llama-3.3-70b", "parameters": {"top_p": 0.5}}
    ok(gw, "POST", "/configs/summarizer/variants/fast/versions", v2, 201)
    ok(gw, "PUT", "/configs/summarizer/targeting/staging",
       {"arms": [{"variant": "fast", "version": 1, "weight": 3}]})  # fmt: skip

    exported = call(gw, "GET", "/export.yaml")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    text = exported.text
    assert "sk-test-provider-key-123" not in text and "sk-ant-test-key-456" not in text
    assert text.count("api_key: stored encrypted and not exported") == 2  # oai and claude
    doc = yaml.safe_load(text)
    assert {"slug": "production", "name": "Production"} in doc["environments"]
    # The user supplies the keys the comments ask for, then applies the file.
    keys = {"oai": "sk-test-provider-key-123", "claude": "sk-ant-test-key-456"}
    for p in doc["providers"]:
        if p["slug"] in keys:
            p["api_key"] = keys[p["slug"]]
    result = gw.query(lambda c: apply_document(c, parse_document(doc), keyring))
    assert result.changes == [] and result.secrets == {}
    # The CLI prints the same document.
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["export-config", "--database-url", gw.settings.database_url,
                     "--data-dir", str(gw.settings.data_dir)]) == 0  # fmt: skip
    assert yaml.safe_load(out.getvalue()) == yaml.safe_load(text)


def test_changes_reach_another_process_at_once_through_notify(
    gateway_factory: GatewayFactory, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("NOTIFY is PostgreSQL's; SQLite processes poll every snapshot_ttl")
    first = gateway_factory()
    second = gateway_factory(snapshot_ttl=60)
    within(5, lambda: second.services.gateway.snapshots.listening)
    new = ok(first, "POST", "/environments/test/secrets", None, 201)
    elapsed = within(1.5, lambda: second.services.gateway.snapshots.current.authenticate(
        new["token"], dt.datetime.now(dt.UTC)) is not None)  # fmt: skip
    assert elapsed < 1.0
    assert chat(second, "chat", new["token"]).choices
    ok(first, "POST", "/providers/oai/disable")
    within(1.0, lambda: second.services.gateway.snapshots.current.credentials["oai"].disabled)
    with pytest.raises(openai.PermissionDeniedError):
        chat(second, "chat")


def test_the_listener_reconnects_after_the_database_restarts(
    own_postgres: TempPostgres, tmp_path: Path
) -> None:
    async def go() -> None:
        store = PostgresStore(own_postgres.url)
        await store.run(migrate)
        holder = SnapshotHolder(store, Keyring(Fernet.generate_key()), {}, ttl=60)
        await holder.reload()
        holder.start()
        try:
            await _until(lambda: holder.listening, 5)
            own_postgres.pause()
            await _until(lambda: not holder.listening, 5)
            own_postgres.resume()
            await _until(lambda: holder.listening, 15)
            conn = await asyncpg.connect(own_postgres.url)
            try:
                await conn.execute(
                    "INSERT INTO llmops_meta (key, value) VALUES ('routing_version', 41) "
                    "ON CONFLICT (key) DO UPDATE SET value = 41"
                )
                await conn.execute("NOTIFY llmops_routing")
            finally:
                await conn.close()
            await _until(lambda: holder.current.version == 41, 1.5)
        finally:
            await holder.stop()
            await store.close()

    asyncio.run(go())


async def _until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.02)


def test_served_openapi_schema_holds_under_schemathesis(gateway: Gateway) -> None:
    """Generated requests for every operation: never a 5xx, and every response (status, content
    type, body) conforms to the schema."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    gw = gateway
    ok(gw, "POST", "/environments", {"slug": "fuzz-env"}, 201)
    ok(gw, "POST", "/configs", {"slug": "fuzz"}, 201)
    ok(gw, "POST", "/configs/fuzz/variants", {"name": "main", "provider": "oai", "model": "m"}, 201)
    prefix = ok(gw, "POST", "/environments/fuzz-env/secrets", None, 201)["prefix"]
    price = ok(
        gw, "POST", "/prices/overrides", {"model_pattern": "m", "input": 1, "output": 1}, 201
    )
    real = {"environment": "fuzz-env", "config": "fuzz", "variant": "main", "provider": "down",
            "prefix": prefix, "version": 1, "override": price["id"]}  # fmt: skip
    schema = schemathesis.openapi.from_url(gw.server.url + API + "/openapi.json",
                                           headers=gw.admin_headers)  # fmt: skip
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures: list[str] = []
    operations = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy(), use_real=st.booleans())
        def check(case: Any, use_real: bool) -> None:
            # Half the cases name existing entities, so more than the 404 paths are exercised
            # (never for DELETE, which would remove them for the rest of the run).
            if use_real and case.path_parameters and case.method != "DELETE":
                case.path_parameters = {k: real[k] for k in case.path_parameters}
            case.call_and_validate(base_url=gw.server.url, headers=gw.admin_headers, checks=checks)

        try:
            check()
        except Exception as e:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(e)[:3000]}")
        except BaseExceptionGroup as group:
            failures.append(f"{operation.label}: {str(group)[:3000]}")
    assert operations >= 39  # all but openapi.json, which schemathesis leaves out
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 60
