"""The management pages in a real browser: create an environment and see its secret once (then call
a config with it through the openai client), create a variant version through the form, set a
sticky 50/50 A/B split and watch the gateway serve both models, test a provider's connection
inline, and confirm before revoking a secret. Set LLMOPS_SCREENSHOTS=<dir> to keep screenshots."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import openai
import pytest

from llmops.testing import FakeProviderServer
from tests.browser.test_dashboard import login
from tests.conftest import Gateway

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture then skips these tests (or fails them in CI)
    expect = pytest.fail

MESSAGES: Any = [{"role": "user", "content": "Hello"}]


def shot(page: Any, name: str) -> None:
    folder = os.environ.get("LLMOPS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def assert_no_errors(page: Any) -> None:
    """No console error (a CSP refusal among them) but the 400 of a refused form."""
    assert [e for e in page.errors if "status of 400 (Bad Request)" not in e] == []


def ask(gw: Gateway, config: str, api_key: str | None = None, user: str | None = None) -> Any:
    client = gw.client(config, **({} if api_key is None else {"api_key": api_key}))
    metadata = {"userId": user} if user else openai.NOT_GIVEN
    return client.chat.completions.create(model="x", messages=MESSAGES, metadata=metadata)


def test_a_new_environment_shows_its_secret_once_and_revoking_needs_confirmation(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    login(page, gateway, "/llmops/environments")
    shot(page, "environments")
    form = page.locator("#create-environment")
    form.locator("[name=slug]").fill("Staging!")
    form.locator("button[type=submit]").click()
    expect(page.locator("#create-environment [data-form-error]")).to_contain_text("slug")
    page.fill("#create-environment [name=slug]", "staging")
    page.click("#create-environment button[type=submit]")
    page.wait_for_url(re.compile(r"/llmops/environments/staging\?notice="))
    expect(page.locator(".notice")).to_contain_text("Environment staging created")
    page.click("#create-secret button[type=submit]")
    expect(page.locator("h2")).to_contain_text("shown only once")
    token = page.input_value("#new-secret")
    assert token.startswith("llmops_")
    shot(page, "secret")
    page.click("text=← Back to staging")
    assert token not in page.content()  # never shown again
    shot(page, "environment")

    # Serve config "chat" in staging from its page, then call it with the new secret.
    page.goto(gateway.server.url + "/llmops/configs/chat")
    target = page.locator("#targeting-staging")
    target.locator("[name=arm-0-variant]").select_option("default")
    target.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("Targeting in staging saved")
    assert ask(gateway, "chat", api_key=token).model == "gpt-4o-mini"

    # Revoke: a confirmation page first; Cancel changes nothing.
    page.goto(gateway.server.url + "/llmops/environments/staging")
    page.click("[data-secret] >> text=Revoke…")
    expect(page.locator("h1")).to_contain_text("Revoke secret")
    shot(page, "confirm")
    page.click("text=Cancel")
    expect(page.locator("[data-secret] .badge")).to_have_text("active")
    assert ask(gateway, "chat", api_key=token).model == "gpt-4o-mini"
    page.click("[data-secret] >> text=Revoke…")
    page.click("button.danger")
    expect(page.locator("[data-secret] .badge")).to_have_text("revoked")
    with pytest.raises(openai.AuthenticationError):
        ask(gateway, "chat", api_key=token)
    assert_no_errors(page)


def test_a_new_version_and_a_sticky_ab_split_from_the_config_page(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    login(page, gateway, "/llmops/configs/chat")
    versions = page.locator("[data-variant=default] [data-versions] tbody tr")
    expect(versions).to_have_count(1)
    form = page.locator("#version-default")
    form.locator("[name=parameters]").fill("{not json")
    form.locator("button[type=submit]").click()
    expect(page.locator("#version-default [data-form-error]")).to_contain_text("parameters")
    form.locator("[name=model]").fill("gpt-4.1-mini")
    form.locator("[name=parameters]").fill('{"temperature": 0.9}')
    form.locator("[name=system]").fill("Be brief.")
    form.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("Version 2 of default created")
    expect(versions).to_have_count(2)
    page.click("#diff-default button[type=submit]")
    diff = page.locator("[data-diff]")
    expect(diff).to_contain_text("gpt-4.1-mini")
    expect(diff).to_contain_text("prompt.system")
    assert ask(gateway, "chat").model == "gpt-4.1-mini"  # targeting follows the latest

    # A second variant, then a 50/50 split in `test` kept per userId.
    new = page.locator("#create-variant")
    new.locator("[name=name]").fill("b")
    new.locator("[name=provider]").select_option("oai")
    new.locator("[name=model]").fill("model-b")
    new.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("Variant b created")
    target = page.locator("#targeting-test")
    target.locator("[name=arm-0-weight]").fill("50")
    target.locator("[name=arm-1-variant]").select_option("b")
    target.locator("[name=arm-1-weight]").fill("50")
    target.locator("[name=sticky_key]").fill("userId")
    target.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("Targeting in test saved")
    summary = page.locator("[data-target-env=test] .panel-head")
    expect(summary).to_contain_text("default latest · 50 / b latest · 50")
    expect(summary).to_contain_text("sticky on userId")
    expect(page.locator("#targeting-test [name=sticky_key]")).to_have_value("userId")
    expect(page.locator("[data-section=snippets]")).to_contain_text('"userId": "user-123"')
    shot(page, "config")

    served = {user: ask(gateway, "chat", user=f"user-{user}").model for user in range(12)}
    assert set(served.values()) == {"gpt-4.1-mini", "model-b"}
    assert all(ask(gateway, "chat", user=f"user-{u}").model == served[u] for u in range(4))
    assert_no_errors(page)


def test_providers_test_connection_inline_and_the_audit_log(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    login(page, gateway, "/llmops/providers")
    page.click("[data-provider=oai] >> text=Test connection")
    expect(page.locator("#probe-oai")).to_contain_text("Connected")
    page.click("[data-provider=down] >> text=Test connection")
    expect(page.locator("#probe-down")).to_contain_text("Failed")
    assert "/llmops/providers" in page.url  # answered inline (htmx), no navigation
    shot(page, "providers")
    page.click("[data-provider=down] >> text=Disable")
    expect(page.locator("[data-provider=down] .badge.bad")).to_have_text("disabled")
    page.click("nav.nav >> text=Configs")
    shot(page, "configs")
    page.click("nav.nav >> text=Audit log")
    expect(page.locator("[data-audit] tbody tr").first).to_contain_text("provider.disable")
    expect(page.locator("[data-audit] tbody tr").first).to_contain_text("tester")
    shot(page, "audit")
    assert_no_errors(page)
