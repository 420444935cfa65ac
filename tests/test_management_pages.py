"""The management pages over HTTP (no browser), on SQLite and PostgreSQL: every page renders, form
actions do what the management API does (audit entries included, and the gateway serves the
change at once), refusals are messages on the form naming the field, and a cookie session's POST
without the CSRF token is refused."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import openai
import pytest

from llmops.testing import FakeProviderServer
from tests.conftest import TEST_ADMIN, TEST_ADMIN_PASSWORD, Gateway, HttpResponse, http
from tests.test_dashboard_pages import Session

PAGES = (
    "/llmops/environments",
    "/llmops/environments/test",
    "/llmops/environments/test/delete",
    "/llmops/providers",
    "/llmops/configs",
    "/llmops/configs/ab",
    "/llmops/configs/ab/targeting/test/delete",
    "/llmops/providers/oai",
    "/llmops/providers/oai/delete",
    "/llmops/configs/ab/delete",
    "/llmops/configs/ab/variants/a/delete",
    "/llmops/prices",
    "/llmops/audit",
)
MESSAGES: Any = [{"role": "user", "content": "Hi"}]


def get(gw: Gateway, path: str) -> HttpResponse:
    return http("GET", gw.server.url + path, headers={**gw.admin_headers, "Accept": "text/html"})


def post(gw: Gateway, path: str, form: dict[str, str]) -> HttpResponse:
    headers = {**gw.admin_headers, "Content-Type": "application/x-www-form-urlencoded"}
    return http("POST", gw.server.url + path, urllib.parse.urlencode(form), headers)


def audit(gw: Gateway) -> list[dict[str, Any]]:
    r = http("GET", gw.server.url + "/llmops/api/v1/audit?limit=100", headers=gw.admin_headers)
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["data"]
    return entries


def form_error(page: HttpResponse) -> str:
    match = re.search(r"<p class=\"alert\" role=\"alert\" data-form-error>(.*?)</p>", page.text)
    assert match, page.text[:2000]
    return re.sub(r"<[^>]+>", "", match.group(1))


def test_every_management_page_renders_in_the_manage_section(gateway: Gateway) -> None:
    for path in PAGES:
        page = get(gateway, path)
        assert page.status_code == 200, (path, page.text[:500])
        assert ">Manage</p>" in page.text and "Content-Security-Policy" in _titled(page.headers)
        assert "<script>" not in page.text and " style=" not in page.text
    diff = get(gateway, "/llmops/configs/chat?diff_variant=default&a=1&b=1")
    assert diff.status_code == 200 and "The two versions have the same content." in diff.text
    config = get(gateway, "/llmops/configs/ab").text
    assert gateway.base_url + '"' in config and 'x-llmops-config": "ab"' in config
    assert "curl " + gateway.base_url + "/chat/completions" in config
    keys = get(gateway, "/llmops/providers").text
    assert "sk-test-provider-key-123" not in keys and "stored, encrypted" in keys
    assert get(gateway, "/llmops/configs/nope").status_code == 404
    assert get(gateway, "/llmops/environments/nope").status_code == 404
    assert get(gateway, "/llmops/audit?cursor=junk").status_code == 400


def _titled(headers: dict[str, str]) -> str:
    return " ".join(k.title() for k in headers)


def test_page_actions_serve_at_once_and_are_audited(gateway: Gateway) -> None:
    made = post(gateway, "/llmops/environments", {"slug": "staging", "name": "Staging"})
    assert made.status_code == 303 and made.headers["location"].startswith(
        "/llmops/environments/staging?notice="
    )
    target = {"arm-0-variant": "default", "arm-0-weight": "1", "sticky_key": ""}
    assert post(gateway, "/llmops/configs/chat/targeting/staging", target).status_code == 303
    shown = post(gateway, "/llmops/environments/staging/secrets", {})
    assert shown.status_code == 201
    token = re.search(r'id="new-secret" value="([^"]+)"', shown.text)
    assert token, shown.text
    reply = gateway.client("chat", api_key=token.group(1)).chat.completions.create(
        model="x", messages=MESSAGES
    )
    assert reply.choices[0].message.content
    version = {"provider": "oai", "model": "gpt-4.1-mini", "parameters": '{"temperature": 0.2}'}
    assert (
        post(gateway, "/llmops/configs/chat/variants/default/versions", version).status_code == 303
    )
    assert post(gateway, "/llmops/providers/down/disable", {}).status_code == 303
    actions = {e["action"] for e in audit(gateway)}
    wanted = {"environment.create", "targeting.set", "secret.create", "variant_version.create"}
    assert wanted | {"provider.disable"} <= actions
    assert all(e["actor"].startswith("token:") for e in audit(gateway)[:5])
    # Revoking is a confirmed POST; afterwards the secret no longer works.
    prefix = re.search(r'data-secret="([^"]+)"', get(gateway, "/llmops/environments/staging").text)
    assert prefix
    revoke = f"/llmops/environments/staging/secrets/{prefix.group(1)}/revoke"
    assert "Revoke secret" in get(gateway, revoke).text
    assert post(gateway, revoke, {}).status_code == 303
    with pytest.raises(openai.AuthenticationError):
        gateway.client("chat", api_key=token.group(1)).chat.completions.create(
            model="x", messages=MESSAGES
        )


def test_refusals_are_messages_on_the_form_naming_the_field(gateway: Gateway) -> None:
    bad_slug = post(gateway, "/llmops/environments", {"slug": "Not A Slug"})
    assert bad_slug.status_code == 400 and form_error(bad_slug).startswith("slug")
    assert 'value="Not A Slug"' in bad_slug.text  # what was typed is kept
    taken = post(gateway, "/llmops/environments", {"slug": "test"})
    assert taken.status_code == 409 and "already exists" in form_error(taken)
    version = {"provider": "oai", "model": "m", "parameters": "{not json"}
    bad_json = post(gateway, "/llmops/configs/chat/variants/default/versions", version)
    assert bad_json.status_code == 400 and form_error(bad_json).startswith("parameters")
    reserved = {**version, "parameters": '{"model": "x"}'}
    refused = post(gateway, "/llmops/configs/chat/variants/default/versions", reserved)
    assert refused.status_code == 400 and "parameters.model" in form_error(refused)
    arms = {"arm-0-variant": "a", "arm-0-weight": "1", "arm-1-variant": "b", "arm-1-weight": "x"}
    bad_weight = post(gateway, "/llmops/configs/ab/targeting/test", arms)
    assert bad_weight.status_code == 400 and form_error(bad_weight).startswith("arm-1")
    assert "arm 2" in form_error(bad_weight)
    bad_provider = post(gateway, "/llmops/providers", {"slug": "p1", "type": "azure"})
    assert bad_provider.status_code == 400 and "base_url" in form_error(bad_provider)
    nothing = post(gateway, "/llmops/configs/ab/targeting/test", {"sticky_key": "userId"})
    assert nothing.status_code == 400 and form_error(nothing).startswith("arms")
    assert post(gateway, "/llmops/environments/nope/rename", {"slug": "x"}).status_code == 404


def test_a_cookie_session_must_send_the_csrf_token(gateway: Gateway) -> None:
    assert gateway.admin_token  # creates the admin user
    browser = Session(gateway)
    browser.request("GET", "/llmops/login")
    login = {"csrf_token": browser.cookies["llmops_login_csrf"], "next": "/llmops/environments"}
    signed_in = browser.request(
        "POST", "/llmops/login", {**login, "username": TEST_ADMIN, "password": TEST_ADMIN_PASSWORD}
    )
    assert signed_in.status_code == 303
    page = browser.request("GET", "/llmops/environments")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and match
    assert browser.request("POST", "/llmops/environments", {"slug": "qa"}).status_code == 403
    forged = {"slug": "qa", "csrf_token": "not-the-token"}
    assert browser.request("POST", "/llmops/environments", forged).status_code == 403
    assert "environment.create" not in {e["action"] for e in audit(gateway)}
    made = browser.request("POST", "/llmops/environments", {"slug": "qa", "csrf_token": match[1]})
    assert made.status_code == 303
    created = [e for e in audit(gateway) if e["action"] == "environment.create"]
    assert [(e["actor"], e["details"]) for e in created] == [(TEST_ADMIN, {"slug": "qa"})]


def test_the_audit_log_pages_newest_first(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llmops.dashboard.manage.AUDIT_PAGE_SIZE", 2)
    for slug in ("e1", "e2", "e3"):
        assert post(gateway, "/llmops/environments", {"slug": slug}).status_code == 303

    def shown(page: HttpResponse) -> list[str]:
        return re.findall(r'<tr data-action="([^"]+)"', page.text)

    first = get(gateway, "/llmops/audit")
    assert shown(first) == ["environment.create", "environment.create"]
    assert '"slug": "e3"' in first.text and '"slug": "e1"' not in first.text
    nxt = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert nxt
    second = get(gateway, nxt.group(1).replace("&amp;", "&"))
    assert second.status_code == 200 and '"slug": "e1"' in second.text and "Page 2" in second.text
    newer = re.search(r'href="([^"]+)" rel="prev"', second.text)
    assert newer
    assert shown(get(gateway, newer.group(1).replace("&amp;", "&"))) == shown(first)


def test_rotate_rename_and_delete_an_environment(gateway: Gateway) -> None:
    page = get(gateway, "/llmops/environments/other").text
    prefix = re.search(r'data-secret="([^"]+)"', page)
    assert prefix
    rotate = f"/llmops/environments/other/secrets/{prefix.group(1)}/rotate"
    bad = post(gateway, rotate, {"overlap_hours": "-3"})
    assert bad.status_code == 400 and form_error(bad).startswith("overlap_hours")
    rotated = post(gateway, rotate, {"overlap_hours": "1"})
    assert rotated.status_code == 201 and f"{prefix.group(1)}…</code> keeps working" in rotated.text
    token = re.search(r'id="new-secret" value="([^"]+)"', rotated.text)
    assert token and gateway.client("other-only", api_key=token.group(1)).chat.completions.create(
        model="x", messages=MESSAGES
    )
    renamed = post(gateway, "/llmops/environments/other/rename", {"slug": "qa", "name": "QA"})
    assert renamed.status_code == 303 and renamed.headers["location"].startswith(
        "/llmops/environments/qa?"
    )
    assert "Delete environment qa?" in get(gateway, "/llmops/environments/qa/delete").text
    assert post(gateway, "/llmops/environments/qa/delete", {}).status_code == 303
    assert get(gateway, "/llmops/environments/qa").status_code == 404
    actions = [e["action"] for e in audit(gateway)[:3]]
    assert actions == ["environment.delete", "environment.update", "secret.rotate"]


def test_edit_a_provider_key_and_delete_a_provider(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    edit = {"name": "OpenAI main", "base_url": fake.base_url, "options": "{}", "api_key_env": ""}
    saved = post(gateway, "/llmops/providers/oai", {**edit, "api_key": "sk-page-key-321"})
    assert saved.status_code == 303 and saved.headers["location"].startswith(
        "/llmops/providers/oai?notice="
    )
    gateway.client("chat").chat.completions.create(model="x", messages=MESSAGES)
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-page-key-321"
    # A blank key field keeps the stored key.
    assert post(gateway, "/llmops/providers/oai", {**edit, "api_key": ""}).status_code == 303
    gateway.client("chat").chat.completions.create(model="x", messages=MESSAGES)
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-page-key-321"
    page = get(gateway, "/llmops/providers/oai").text
    assert "OpenAI main" in page and "sk-page-key" not in page and "stored, encrypted" in page
    bad = post(gateway, "/llmops/providers/oai", {**edit, "options": "[1]", "api_key": "sk-x"})
    assert bad.status_code == 400 and form_error(bad).startswith("options")
    assert "sk-x" not in bad.text
    # A provider still serving a config is not deleted: the page says where it serves.
    assert "Delete provider oai?" in get(gateway, "/llmops/providers/oai/delete").text
    refused = post(gateway, "/llmops/providers/oai/delete", {})
    assert refused.status_code == 409 and "still serves" in form_error(refused)
    assert "chat" in form_error(refused)
    made = {"slug": "spare", "type": "openai", "api_key": "sk-spare"}
    assert post(gateway, "/llmops/providers", made).status_code == 303
    removed = {"base_url": "", "options": "{}", "api_key_env": "", "remove_key": "1"}
    assert post(gateway, "/llmops/providers/spare", removed).status_code == 303
    assert "stored, encrypted" not in get(gateway, "/llmops/providers/spare").text
    assert "Delete provider spare?" in get(gateway, "/llmops/providers/spare/delete").text
    assert get(gateway, "/llmops/providers/spare").status_code == 200  # GET only asks
    assert post(gateway, "/llmops/providers/spare/delete", {}).status_code == 303
    assert get(gateway, "/llmops/providers/spare").status_code == 404
    entries = audit(gateway)
    assert [e["action"] for e in entries[:3]] == [
        "provider.delete",
        "provider.update",
        "provider.create",
    ]
    assert entries[1]["details"] == {"api_key": "changed"}
    updates = [e["details"] for e in entries if e["action"] == "provider.update"]
    assert {"name": "OpenAI main", "api_key": "changed"} in updates
    assert "provider.delete" not in {e["action"] for e in entries[1:]}


def test_edit_and_delete_a_config_and_a_variant(gateway: Gateway) -> None:
    edit = {"slug": "ab2", "name": "AB test", "description": "two models"}
    saved = post(gateway, "/llmops/configs/ab/edit", edit)
    assert saved.status_code == 303 and saved.headers["location"].startswith("/llmops/configs/ab2?")
    page = get(gateway, "/llmops/configs/ab2").text
    assert 'Config <span class="mono">ab2</span>' in page and "two models" in page
    assert 'data-config="ab2"' in get(gateway, "/llmops/configs").text
    assert gateway.client("ab2").chat.completions.create(model="x", messages=MESSAGES)
    bad = post(gateway, "/llmops/configs/ab2/edit", {**edit, "slug": "Not A Slug"})
    assert bad.status_code == 400 and form_error(bad).startswith("slug")
    # A targeted variant is not deleted; after retargeting it is.
    variant = "/llmops/configs/ab2/variants/a/delete"
    assert "Delete variant a of ab2?" in get(gateway, variant).text
    refused = post(gateway, variant, {})
    assert refused.status_code == 409 and "still serves in" in form_error(refused)
    target = {"arm-0-variant": "b", "arm-0-weight": "1", "sticky_key": ""}
    assert post(gateway, "/llmops/configs/ab2/targeting/test", target).status_code == 303
    assert post(gateway, variant, {}).status_code == 303
    page = get(gateway, "/llmops/configs/ab2").text
    assert 'data-variant="a"' not in page and 'data-variant="b"' in page
    assert "Delete config ab2?" in get(gateway, "/llmops/configs/ab2/delete").text
    assert gateway.client("ab2").chat.completions.create(model="x", messages=MESSAGES)
    deleted = post(gateway, "/llmops/configs/ab2/delete", {})
    assert deleted.status_code == 303 and deleted.headers["location"].startswith("/llmops/configs?")
    assert get(gateway, "/llmops/configs/ab2").status_code == 404
    with pytest.raises(openai.NotFoundError):
        gateway.client("ab2").chat.completions.create(model="x", messages=MESSAGES)
    actions = [e["action"] for e in audit(gateway)[:4]]
    assert actions == ["config.delete", "variant.delete", "targeting.set", "config.update"]


def test_create_and_delete_a_price_override(gateway: Gateway) -> None:
    assert "No overrides" in get(gateway, "/llmops/prices").text
    price = {
        "provider": "openai-compatible",
        "model_pattern": "gpt-4o-mini*",
        "input": "2",
        "output": "4.5",
        "cache_read": "",
        "effective_from": "",
        "note": "negotiated",
    }
    bad = post(gateway, "/llmops/prices", {**price, "input": "-1"})
    assert bad.status_code == 400 and form_error(bad).startswith("input")
    assert 'value="gpt-4o-mini*"' in bad.text
    made = post(gateway, "/llmops/prices", price)
    assert made.status_code == 303 and made.headers["location"].startswith("/llmops/prices?")
    page = get(gateway, "/llmops/prices").text
    override = re.search(r'data-price="([^"]+)"', page)
    assert override and ">4.5<" in page and "negotiated" in page
    raw = gateway.client("chat").chat.completions.with_raw_response.create(
        model="x", messages=MESSAGES
    )
    row = gateway.row(raw.headers["x-llmops-request-id"])
    assert row["input_cost"] == 2 * row["prompt_tokens"]
    delete = f"/llmops/prices/{override.group(1)}/delete"
    assert "Delete the price override" in get(gateway, delete).text
    assert override.group(1) in get(gateway, "/llmops/prices").text  # GET only asks
    assert post(gateway, delete, {}).status_code == 303
    assert 'data-price="' not in get(gateway, "/llmops/prices").text
    assert post(gateway, delete, {}).status_code == 404
    assert get(gateway, "/llmops/prices/junk/delete").status_code == 404
    actions = [e["action"] for e in audit(gateway)[:2]]
    assert actions == ["price_override.delete", "price_override.create"]
