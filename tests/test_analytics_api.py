"""The analytics JSON API over real traffic: numbers match the stored rows exactly, filters and
errors behave, export streams every row, and nothing answers without an admin."""

from __future__ import annotations

import csv
import io
import json

from llmops.testing import FakeProviderServer, count_tokens
from tests.conftest import Gateway, http

API = "/llmops/api/v1/analytics"
HELLO = [{"role": "user", "content": "Hello analytics"}]


def _seed(gw: Gateway) -> list[dict[str, object]]:
    client = gw.client()
    for tenant, n in (("acme", 3), ("globex", 2)):
        for i in range(n):
            client.chat.completions.create(
                model="m", messages=HELLO, metadata={"tenantSlug": tenant, "userId": f"u{i}"}
            )
    gw.client("ab").chat.completions.create(model="m", messages=HELLO, metadata={"userId": "z"})
    return gw.rows(6)


def _get(gw: Gateway, path: str) -> object:
    r = http("GET", gw.server.url + API + path, headers=gw.admin_headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_summary_breakdown_and_costs_match_the_rows(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    rows = _seed(gateway)
    s = _get(gateway, "/summary?range=1d")
    assert s["requests"] == 6  # type: ignore[index]
    assert s["prompt_tokens"] == 6 * count_tokens("Hello analytics")  # type: ignore[index]
    priced = sum(r["total_cost"] or 0 for r in rows)  # type: ignore[misc]
    assert s["total_cost"] == priced and priced > 0  # type: ignore[index]
    b = _get(gateway, "/breakdown?range=1d&by=tag:tenantSlug&sort=requests")
    got = {r["key"]: r["requests"] for r in b["rows"]}  # type: ignore[index]
    assert got == {"acme": 3, "globex": 2, None: 1}
    acme = _get(gateway, "/summary?range=1d&tag=tenantSlug=acme")
    assert acme["requests"] == 3  # type: ignore[index]
    models = _get(gateway, "/costs/by-model?range=1d")
    by_model = {r["model"]: r for r in models["rows"]}  # type: ignore[index]
    assert by_model["gpt-4o-mini"]["requests"] == 5
    series = _get(gateway, "/timeseries?range=1d&bucket=hour")
    assert sum(p["requests"] for p in series["points"]) == 6  # type: ignore[index]


def test_request_list_pages_and_detail(gateway: Gateway, fake: FakeProviderServer) -> None:
    rows = _seed(gateway)
    seen: list[str] = []
    cursor = None
    while True:
        page = _get(gateway, "/requests?range=1d&limit=4" + (f"&cursor={cursor}" if cursor else ""))
        seen += [r["id"] for r in page["data"]]  # type: ignore[index]
        cursor = page["next_cursor"]  # type: ignore[index]
        if not cursor:
            break
    assert sorted(seen) == sorted(str(r["id"]) for r in rows)
    detail = _get(gateway, f"/requests/{seen[0]}")
    assert detail["id"] == seen[0] and "tags" in detail  # type: ignore[index]
    missing = http(
        "GET", gateway.server.url + API + "/requests/" + "0" * 32, headers=gateway.admin_headers
    )
    assert missing.status_code == 404


def test_tags_and_values(gateway: Gateway, fake: FakeProviderServer) -> None:
    _seed(gateway)
    assert set(_get(gateway, "/tags")["keys"]) == {"tenantSlug", "userId"}  # type: ignore[index]
    values = _get(gateway, "/tags/tenantSlug/values?prefix=ac")["values"]  # type: ignore[index]
    assert [(v["value"], v["requests"]) for v in values] == [("acme", 3)]


def test_export_streams_every_row_as_csv_and_jsonl(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    rows = _seed(gateway)
    r = http(
        "GET",
        gateway.server.url + API + "/export?range=1d&format=csv",
        headers=gateway.admin_headers,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(p["id"] for p in parsed) == sorted(str(x["id"]) for x in rows)
    r = http(
        "GET",
        gateway.server.url + API + "/export?range=1d&format=jsonl",
        headers=gateway.admin_headers,
    )
    assert len([json.loads(line) for line in r.text.splitlines() if line]) == 6


def test_bad_parameters_are_400_naming_them_and_anonymous_is_401(gateway: Gateway) -> None:
    for query, param in (
        ("/summary?range=banana", "range"),
        ("/breakdown?range=1d&by=colour", "by"),
        ("/breakdown?range=1d", "by"),
        ("/requests?limit=many", "limit"),
        ("/export?format=xml", "format"),
    ):
        r = http("GET", gateway.server.url + API + query, headers=gateway.admin_headers)
        assert r.status_code == 400, (query, r.text)
        assert r.json()["error"]["param"] == param
    for path in ("/summary", "/requests", "/export", "/tags"):
        assert http("GET", gateway.server.url + API + path).status_code == 401


def test_cli_export_writes_the_filtered_rows(gateway: Gateway, fake: FakeProviderServer) -> None:
    import subprocess
    import sys

    _seed(gateway)
    gateway.settings.data_dir.mkdir(parents=True, exist_ok=True)
    out = gateway.settings.data_dir / "acme.csv"
    env = {
        "LLMOPS_DATA_DIR": str(gateway.settings.data_dir),
        "PATH": "/usr/bin:/bin",
        "LLMOPS_SECRET_KEY": gateway.settings.secret_key,
        "LLMOPS_DATABASE_URL": gateway.settings.database_url,
    }
    cmd = [sys.executable, "-m", "llmops.cli", "export", "--range", "1d"]
    done = subprocess.run(
        [*cmd, "--tag", "tenantSlug=acme", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 3 requests" in done.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 3 and all("acme" in r["tags"] for r in rows)
    bad = subprocess.run([*cmd[:-1], "soon"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "range" in bad.stderr
