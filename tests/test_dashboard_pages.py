"""Dashboard pages over HTTP (no browser): every page renders with data and with an empty database,
bad filters are explained rather than crashing, anonymous visitors go to the login page, pages are
locked down (CSP, no inline script, escaping, CSRF); and the number formatting people read."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from decimal import Decimal
from http.client import HTTPConnection
from http.cookies import SimpleCookie

import pytest

from llmops.dashboard import NAV, NavItem
from llmops.dashboard.format import (
    change,
    latency,
    money,
    number,
    percent,
    signed_money,
    tokens,
    when,
)
from llmops.dashboard.query import PageQuery
from llmops.testing import FakeProviderServer
from tests.conftest import TEST_ADMIN, TEST_ADMIN_PASSWORD, Gateway, HttpResponse, http

PAGES = ("/llmops/", "/llmops/requests", "/llmops/costs")
XSS = "<script>alert(1)</script>"


# --- number formatting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("micro", "shown"),
    [
        (None, "—"),
        (0, "$0.00"),
        (1, "$0.000001"),
        (42, "$0.000042"),
        (1234, "$0.00123"),
        (12_345, "$0.0123"),
        (500_000, "$0.50"),
        (1_000_000, "$1.00"),
        (1_234_560_000, "$1,234.56"),
        (1_234_565_000, "$1,234.57"),  # half up, in exact decimals
        (0.4, "<$0.000001"),  # an average below one micro-dollar is still not free
        (Decimal("0.5"), "<$0.000001"),
        (-1234, "-$0.00123"),
    ],
)
def test_money_keeps_small_costs_visible_and_large_ones_readable(
    micro: int | float | Decimal | None, shown: str
) -> None:
    assert money(micro) == shown


def test_tokens_latency_and_ratios_read_like_people_write_them() -> None:
    assert [tokens(n) for n in (None, 0, 850, 999, 1000, 1234, 34_000, 99_960, 999_960)] == [
        "—",
        "0",
        "850",
        "999",
        "1k",
        "1.2k",
        "34k",
        "100k",
        "1M",
    ]
    assert tokens(3_400_000) == "3.4M" and tokens(1_200_000_000) == "1.2B"
    assert [latency(ms) for ms in (None, 0.4, 4, 850, 999.6, 1234, 12_345, 75_000)] == [
        "—",
        "0.4 ms",
        "4 ms",
        "850 ms",
        "1.0 s",
        "1.2 s",
        "12 s",
        "1.2 min",
    ]
    assert [percent(r) for r in (None, 0, 1, 0.9912, 0.99999, 0.00001)] == [
        "—",
        "0%",
        "100%",
        "99.1%",
        ">99.9%",
        "<0.1%",
    ]
    assert number(1_234_567) == "1,234,567" and number(None) == "—"
    assert signed_money(1200) == "+$0.0012" and signed_money(-3_000_000) == "-$3.00"
    assert (change(10, 12), change(8, 4), change(0, 5), change(0, 0)) == (
        "+20%",
        "-50%",
        "new",
        "0%",
    )
    assert when("2026-03-01T12:00:05.123+00:00") == "2026-03-01 12:00:05"
    assert when(dt.datetime(2026, 3, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == (
        "2026-03-01 12:00:00"
    )


def test_page_query_links_change_some_parameters_and_keep_the_rest() -> None:
    q = PageQuery(
        [("range", "24h"), ("tag", "a=1"), ("tag", "b=2"), ("cursor", "c"), ("model", " ")],
        root="/root",
    )
    assert q.getlist("tag") == ["a=1", "b=2"] and q.get("model") is None  # empty values dropped
    assert q.link("/llmops/costs", drop=("cursor",), remove=[("tag", "a=1")]) == (
        "/root/llmops/costs?range=24h&tag=b%3D2"
    )
    assert q.link("/p", replace={"range": "7d", "tag": None}, keep=("range", "tag")) == (
        "/root/p?range=7d"
    )
    assert q.filter_query == "range=24h&tag=a%3D1&tag=b%3D2"
    # Typed dates win over the preset the form carried along.
    assert PageQuery([("range", "7d"), ("from", "2026-01-01")]).pairs == [("from", "2026-01-01")]


def test_the_nav_is_one_list_that_management_pages_extend() -> None:
    assert [item.label for item in NAV] == ["Overview", "Requests", "Costs"]
    item = NavItem("Providers", "/llmops/providers", "Manage", keep_filters=False)
    assert item.is_active("/llmops/providers/abc") and not NAV[0].is_active("/llmops/costs")


# --- pages over HTTP ---------------------------------------------------------------------------


def _get(gw: Gateway, path: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return http(
        "GET",
        gw.server.url + path,
        headers={"Accept": "text/html", **gw.admin_headers, **(headers or {})},
    )


def _seed(gw: Gateway) -> list[dict[str, object]]:
    for config, tenant, user in (
        ("chat", "acme", "u1"),
        ("chat", "acme", XSS),
        ("chat", "globex", "u2"),
        ("claude-chat", "globex", "u3"),
        ("ab", "initech", "u4"),
    ):
        gw.client(config).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "Hello pages"}],
            metadata={"tenantSlug": tenant, "userId": user},
        )
    return gw.rows(5)


def _card(html: str, name: str) -> str:
    match = re.search(rf'data-card="{name}">\s*<h2>[^<]*</h2>\s*<p class="big">([^<]*)<', html)
    assert match, f"no {name} card"
    return match.group(1)


def test_every_page_renders_the_seeded_traffic(gateway: Gateway, fake: FakeProviderServer) -> None:
    rows = _seed(gateway)
    overview = _get(gateway, "/llmops/")
    assert overview.status_code == 200, overview.text
    assert _card(overview.text, "requests") == "5"
    assert _card(overview.text, "cost") == money(sum(r["total_cost"] or 0 for r in rows))  # type: ignore[misc]
    assert _card(_get(gateway, "/llmops/?config=chat&range=24h").text, "requests") == "3"
    listing = _get(gateway, "/llmops/requests?tag=tenantSlug%3Dglobex")
    assert listing.status_code == 200
    assert listing.text.count("data-request-id=") == 2
    assert "/llmops/api/v1/analytics/export?tag=tenantSlug%3Dglobex" in listing.text
    costs = _get(gateway, "/llmops/costs")
    assert costs.status_code == 200
    for name in ("model", "provider", "config", "tag"):
        assert f'data-breakdown="{name}"' in costs.text
    assert "acme" in costs.text and "claude-3-5-haiku-latest" in costs.text
    for query in ("compare=config&a=chat&b=claude-chat", "compare=variant", "compare=tag"):
        page = _get(gateway, "/llmops/costs?" + query)
        assert page.status_code == 200 and "Difference (B − A)" in page.text, query
    compared = _get(gateway, "/llmops/costs?compare=config&a=chat&b=claude-chat").text
    compare = compared[compared.index('id="compare"') :]
    assert re.search(r"Requests</th>\s*<td class=\"num\">3</td><td class=\"num\">1</td>", compare)
    some = str(rows[0]["id"])
    detail = _get(gateway, f"/llmops/requests/{some}?range=24h")
    assert detail.status_code == 200 and some in detail.text
    assert 'href="/llmops/requests?range=24h"' in detail.text  # back to the same list
    assert _get(gateway, "/llmops/requests/" + "0" * 32).status_code == 404


def test_pages_on_an_empty_database_tell_a_newcomer_what_to_do(gateway: Gateway) -> None:
    for path in PAGES:
        page = _get(gateway, path)
        assert page.status_code == 200, (path, page.text)
        assert "No requests yet" in page.text and "llmops demo" in page.text, path
    assert "No tags yet" in _get(gateway, "/llmops/").text


def test_bad_filters_are_explained_on_the_page_not_a_500(gateway: Gateway) -> None:
    for path, message in (
        ("/llmops/?range=banana", "range must be"),
        ("/llmops/?status=teapot", "status must be"),
        ("/llmops/?from=2026-13-45", "from must be an ISO 8601"),
        ("/llmops/requests?limit=many", "limit must be a whole number"),
        ("/llmops/requests?limit=0", "limit must be between"),
        ("/llmops/requests?sort=colour", "sort must be one of"),
        ("/llmops/requests?cursor=not-a-cursor", "cursor is not valid"),
        ("/llmops/costs?compare=weather", "compare must be one of"),
        ("/llmops/costs?by_tag=" + "k" * 65, "by_tag must be"),
        ("/llmops/costs?tag=novalue", "tag must be key=value"),
    ):
        page = _get(gateway, path)
        assert page.status_code == 400, (path, page.status_code, page.text[:300])
        assert page.headers["content-type"].startswith("text/html")
        assert "This filter could not be used" in page.text and message in page.text, path
        assert "Reset filters" in page.text


def test_anonymous_visitors_are_sent_to_the_login_page_and_static_files_are_public(
    gateway: Gateway,
) -> None:
    for path in (*PAGES, "/llmops/requests/x", "/llmops/tag-values?key=a"):
        page = http("GET", gateway.server.url + path, headers={"Accept": "text/html"})
        assert page.status_code == 303, path
        assert page.headers["location"] == "/llmops/login?" + urllib.parse.urlencode({"next": path})
    for name in ("app.js", "app.css", "htmx-2.0.11.min.js", "uPlot-1.6.32.iife.min.js"):
        asset = http("GET", gateway.server.url + "/llmops/static/" + name)
        assert asset.status_code == 200, name
    assert http("GET", gateway.server.url + "/llmops/static/nope.js").status_code == 404


def test_pages_are_locked_down_and_escape_what_callers_sent(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    rows = _seed(gateway)
    xss_row = next(r for r in rows if r["tags"]["userId"] == XSS)  # type: ignore[index]
    for path in (*PAGES, f"/llmops/requests/{xss_row['id']}", "/llmops/costs?by_tag=userId"):
        page = _get(gateway, path)
        assert page.status_code == 200, path
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        scripts = re.findall(r"<script\b[^>]*>", page.text)
        assert all("src=" in s or 'type="application/json"' in s for s in scripts), scripts
        assert "<style" not in page.text and " style=" not in page.text
        assert not re.search(r"\son[a-z]+=", page.text)  # no inline event handlers
        assert XSS not in page.text, path
    escaped = _get(gateway, f"/llmops/requests/{xss_row['id']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in escaped


def test_tag_value_search_links_add_the_filter_to_the_page_it_came_from(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    _seed(gateway)
    found = _get(
        gateway,
        "/llmops/tag-values?key=tenantSlug&q=GL",
        headers={
            "HX-Request": "true",
            "HX-Current-URL": gateway.server.url + "/llmops/costs?range=24h&cursor=x",
        },
    )
    assert found.status_code == 200
    links = re.findall(r'href="([^"]+)"', found.text)
    assert links == ["/llmops/costs?range=24h&amp;tag=tenantSlug%3Dglobex"]
    assert "No value" in _get(gateway, "/llmops/tag-values?key=tenantSlug&q=zzz").text
    assert "Pick a tag key" in _get(gateway, "/llmops/tag-values?q=a").text


def test_htmx_paging_gets_only_the_table(gateway: Gateway, fake: FakeProviderServer) -> None:
    _seed(gateway)
    part = _get(
        gateway, "/llmops/requests?limit=2", headers={"HX-Request": "true", "HX-Target": "results"}
    )
    assert part.status_code == 200
    assert part.text.lstrip().startswith('<div id="results"') and "<html" not in part.text
    assert part.text.count("data-request-id=") == 2 and 'rel="next"' in part.text
    hx = {"HX-Request": "true", "HX-Target": "results"}
    bad = _get(gateway, "/llmops/requests?cursor=junk", headers=hx)
    assert bad.status_code == 400  # the whole page shows the message, not half a table
    assert bad.headers["hx-redirect"].endswith("/llmops/requests?cursor=junk")


class Session:
    """Cookie-carrying HTTP calls, as a browser makes them (redirects not followed)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> HttpResponse:
        headers = {"Accept": "text/html"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = HTTPConnection("127.0.0.1", self.gw.server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            for name, value in resp.getheaders():
                if name.lower() == "set-cookie":
                    for key, morsel in SimpleCookie(value).items():
                        if morsel["max-age"] == "0":
                            self.cookies.pop(key, None)
                        else:
                            self.cookies[key] = morsel.value
            return HttpResponse(
                resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
            )
        finally:
            conn.close()


def test_the_logout_button_posts_the_session_csrf_token(gateway: Gateway) -> None:
    assert gateway.admin_token  # creates the admin user
    browser = Session(gateway)
    browser.request("GET", "/llmops/login")
    login = {"csrf_token": browser.cookies["llmops_login_csrf"], "next": "/llmops/costs"}
    signed_in = browser.request(
        "POST", "/llmops/login", {**login, "username": TEST_ADMIN, "password": TEST_ADMIN_PASSWORD}
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/llmops/costs"
    page = browser.request("GET", "/llmops/costs")
    assert page.status_code == 200 and f"<strong>{TEST_ADMIN}</strong>" in page.text
    match = re.search(
        r'action="/llmops/logout">\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
        page.text,
    )
    assert match, "no logout form"
    assert browser.request("POST", "/llmops/logout", {}).status_code == 403  # no token: refused
    out = browser.request("POST", "/llmops/logout", {"csrf_token": match.group(1)})
    assert out.status_code == 303 and out.headers["location"] == "/llmops/login"
    assert "llmops_session" not in browser.cookies
    assert browser.request("GET", "/llmops/costs").status_code == 303
