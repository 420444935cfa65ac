"""Browser fixtures: headless Chromium (Debian's, at /usr/bin/chromium) driven by Playwright.

These tests run on SQLite only, to keep them fast; the page and query tests cover PostgreSQL.
Without Chromium or Playwright they are skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import Gateway, GatewayFactory

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


def off_loop(fn: Callable[[], T]) -> T:
    """Call ``fn`` in another thread. Playwright's sync API keeps an event loop running in
    this one, where the helpers that use ``asyncio.run`` (the database, the gateway's setup)
    cannot run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return off_loop(gateway_factory)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (overrides the backend-parametrized fixture of tests/conftest.py)."""
    return f"sqlite:///{tmp_path / 'llmops.db'}"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser per module: while Playwright runs, this thread has a running event loop, so
    it must be gone before the next module's tests use ``asyncio.run``."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[browser]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies, no localStorage) and one page in it; console
    errors (such as a Content-Security-Policy violation) are collected in ``page.errors``."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.errors = errors
    yield tab
    context.close()
