"""The dashboard in a real browser: log in, read the totals, filter by tag, page through requests,
open one, hide a column, export — against the real server with traffic sent through the gateway."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from llmops.dashboard.format import money, number, tokens
from llmops.testing import FakeProviderServer
from tests.browser.conftest import off_loop
from tests.conftest import TEST_ADMIN, TEST_ADMIN_PASSWORD, Gateway

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture then skips these tests (or fails them in CI)
    expect = pytest.fail

# (config, tenantSlug, userId): 12 requests over three tenants, three configs and four models.
TRAFFIC = [
    ("chat", "acme", "u1"),
    ("chat", "acme", "u2"),
    ("claude-chat", "acme", "u1"),
    ("ab", "acme", "u3"),
    ("ab", "acme", "u4"),
    ("chat", "globex", "u5"),
    ("chat", "globex", "u6"),
    ("claude-chat", "globex", "u5"),
    ("ab", "globex", "u7"),
    ("chat", "initech", "u8"),
    ("claude-chat", "initech", "u8"),
    ("ab", "initech", "u9"),
]


def seed(gw: Gateway) -> list[dict[str, Any]]:
    for i, (config, tenant, user) in enumerate(TRAFFIC):
        gw.client(config).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "Hello dashboard " * (i + 1)}],
            metadata={"tenantSlug": tenant, "userId": user},
        )
    return off_loop(lambda: gw.rows(len(TRAFFIC)))


def login(page: Any, gw: Gateway, path: str = "/llmops/") -> None:
    """Open ``path``, get sent to the login form, sign in, and land back on ``path``."""
    assert off_loop(lambda: gw.admin_token)  # creates the admin user
    page.goto(gw.server.url + path)
    assert "/llmops/login" in page.url
    page.fill("#username", TEST_ADMIN)
    page.fill("#password", TEST_ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(gw.server.url + path.split("?")[0])))


def shown_ids(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "[data-requests-table] tbody tr", "rows => rows.map(r => r.dataset.requestId)"
    )
    return ids


def test_login_form_leads_to_an_overview_with_the_seeded_totals(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    rows = seed(gateway)
    login(page, gateway)
    assert page.inner_text("h1") == "Overview"
    card = "[data-card={}] .big"
    assert page.inner_text(card.format("requests")) == number(len(rows))
    assert page.inner_text(card.format("cost")) == money(sum(r["total_cost"] or 0 for r in rows))
    assert page.inner_text(card.format("tokens")) == tokens(sum(r["total_tokens"] for r in rows))
    assert page.locator(".chart canvas").count() == 3  # uPlot drew the three charts
    assert page.errors == []  # among others: nothing refused by the Content-Security-Policy
    page.click("nav.nav >> text=Costs")
    page.wait_for_url("**/llmops/costs**")
    assert page.locator("[data-breakdown=tag] tbody tr").count() == 3  # acme, globex, initech
    assert page.errors == []


def test_tag_filter_picked_by_key_and_value_search_shows_only_matching_rows(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    rows = seed(gateway)
    login(page, gateway, "/llmops/requests")
    assert len(shown_ids(page)) == len(rows)
    page.select_option("#tag-key", "tenantSlug")
    suggestions = page.locator("#tag-suggestions a.suggestion")
    expect(suggestions).to_have_count(3)  # picking the key lists its values, busiest first
    page.fill("#tag-search", "glo")
    expect(suggestions).to_have_count(1)  # typing narrows them
    expect(suggestions).to_contain_text("globex")
    suggestions.click()
    page.wait_for_url(re.compile(r"tag=tenantSlug%3Dglobex"))
    globex = {str(r["id"]) for r in rows if r["tags"].get("tenantSlug") == "globex"}
    assert set(shown_ids(page)) == globex and len(globex) == 4
    chip = page.locator(".chip", has_text="tenantSlug = globex")
    assert chip.count() == 1
    chip.locator("a").click()  # remove the filter again
    page.wait_for_url(lambda url: "tag=" not in url)
    assert len(shown_ids(page)) == len(rows)
    assert page.errors == []


def test_requests_page_forward_with_next_and_back_with_newer(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    rows = seed(gateway)
    login(page, gateway, "/llmops/requests?limit=5")
    pages = [shown_ids(page)]
    while page.locator("a[rel=next]").count():
        page.click("a[rel=next]")  # htmx swaps the table and pushes the new URL
        page.wait_for_function(
            "seen => document.querySelector('[data-requests-table] tbody tr')"
            ".dataset.requestId !== seen",
            arg=pages[-1][0],
        )
        pages.append(shown_ids(page))
        assert "cursor=" in page.url
    assert [len(p) for p in pages] == [5, 5, 2]
    assert sorted(sum(pages, [])) == sorted(str(r["id"]) for r in rows)
    page.click("a[rel=prev]")
    page.wait_for_function(
        "first => document.querySelector('[data-requests-table] tbody tr')"
        ".dataset.requestId === first",
        arg=pages[1][0],
    )
    assert shown_ids(page) == pages[1]
    page.reload()  # the URL alone brings the same page back
    assert shown_ids(page) == pages[1]


def test_request_detail_shows_its_tags_and_cost_breakdown(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    rows = seed(gateway)
    login(page, gateway, "/llmops/requests?tag=tenantSlug%3Dinitech&config=claude-chat")
    assert len(shown_ids(page)) == 1
    page.click("[data-requests-table] tbody tr td[data-col=model]")  # the whole row is a link
    page.wait_for_url(re.compile(r"/llmops/requests/[0-9a-f-]{36}"))
    row = next(r for r in rows if str(r["id"]) in page.url)
    assert row["tags"] == {"tenantSlug": "initech", "userId": "u8"}
    tags = page.inner_text("[data-section=tags]")
    assert "tenantSlug" in tags and "initech" in tags and "u8" in tags
    cost = page.inner_text("[data-section=cost]")
    for part in ("Input (uncached)", "Cached input", "Cache write", "Output", "Total"):
        assert part in cost
    assert money(row["total_cost"]) in cost and money(row["output_cost"]) in cost
    assert row["price_source"] in cost and "provider" in cost  # usage source
    page.click("text=Back to requests")
    page.wait_for_url(re.compile(r"/llmops/requests\?.*tag=tenantSlug%3Dinitech"))


def test_a_column_hidden_in_the_chooser_stays_hidden_after_reload(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    seed(gateway)
    login(page, gateway, "/llmops/requests")
    model_cells = page.locator("[data-requests-table] [data-col=model]")
    assert model_cells.first.is_visible()
    page.click("[data-column-chooser] summary")
    page.uncheck("[data-column-toggle][value=model]")
    assert not model_cells.first.is_visible()
    page.reload()
    assert model_cells.count() > 0 and not model_cells.first.is_visible()
    assert page.locator("[data-requests-table] [data-col=cost]").first.is_visible()
    page.click("[data-column-chooser] summary")
    assert not page.is_checked("[data-column-toggle][value=model]")
    page.check("[data-column-toggle][value=model]")
    assert model_cells.first.is_visible()


def test_export_csv_downloads_the_filtered_rows(
    gateway: Gateway, fake: FakeProviderServer, page: Any
) -> None:
    rows = seed(gateway)
    login(page, gateway, "/llmops/requests?tag=tenantSlug%3Dacme")
    with page.expect_download() as download:
        page.click("[data-export=csv]")
    path = download.value.path()
    with open(path, encoding="utf-8") as f:
        exported = list(csv.DictReader(io.StringIO(f.read())))
    acme = {str(r["id"]) for r in rows if r["tags"].get("tenantSlug") == "acme"}
    assert {e["id"] for e in exported} == acme and len(acme) == 5
    assert download.value.suggested_filename.endswith(".csv")
