"""The management pages (nav section "Manage"): Environments, Providers, Configs, Prices and the
Audit log.

They perform the management API's operations through the same domain functions and the same
``ManagementApi.change`` path (see ``forms``), so a page action writes the same audit entry and
reaches the gateway as soon as the API call would. Every POST is a plain HTML form carrying the
session's CSRF token (``AdminGuard`` refuses it otherwise); it answers with a redirect (303) to the
page that shows the result, or re-renders the form with the refusal naming its field. Destructive
actions (delete an environment, a provider, a config, a variant or a price override, revoke a
secret, stop serving a config) have a confirmation page.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmops.admin import history
from llmops.admin import models as m
from llmops.admin.api import ManagementApi
from llmops.admin.inputs import validate
from llmops.dashboard.forms import FormError, management_api
from llmops.dashboard.layout import Layout
from llmops.errors import LLMOpsError, NotFound
from llmops.store import Store

AUDIT = "/llmops/audit"
AUDIT_PAGE_SIZE = 50
MAX_BACK = 20


class Pages:
    """What every management page class shares: rendering, the API object, confirmations."""

    def __init__(self, store: Store, layout: Layout) -> None:
        self.store = store
        self.layout = layout

    def api(self, request: Request) -> ManagementApi:
        return management_api(request)

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        error: FormError | None = None,
        values: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        """A page with the notice of a previous action (``?notice=``), the refusal of the form
        just submitted (``error``) and what was typed into it (``values``)."""
        frame = {
            "notice": request.query_params.get("notice", "")[:300],
            "error": error,
            "values": dict(values or {}),
        }
        code = error.status if error is not None else status
        return self.layout.render(request, template, {**frame, **context}, status=code)

    def not_found(self, request: Request, e: LLMOpsError, back: str, label: str) -> Response:
        context = {"message": e.message, "back": back, "back_label": label}
        return self.layout.render(request, "manage_missing.html", context, status=e.status)

    def confirm(
        self,
        request: Request,
        *,
        title: str,
        message: str,
        action: str,
        button: str,
        cancel: str,
    ) -> Response:
        """The confirmation step of a destructive action: a form that POSTs to ``action``."""
        context = {
            "title": title,
            "message": message,
            "action": action,
            "button": button,
            "cancel": cancel,
        }
        return self.layout.render(request, "manage_confirm.html", context)

    async def guarded(
        self, request: Request, load: Callable[[], Awaitable[Response]], back: str, label: str
    ) -> Response:
        """``load()``, or a "not found" page when the entity it shows does not exist."""
        try:
            return await load()
        except NotFound as e:
            return self.not_found(request, e, back, label)


class AuditPages(Pages):
    def routes(self) -> list[BaseRoute]:
        return [Route(AUDIT, self.index, methods=["GET"])]

    async def index(self, request: Request) -> Response:
        """Newest first, 50 a page. Cursors only go forward, so "Next" carries the cursors of
        the pages before it (``back``) for "Newer"."""
        cursor = request.query_params.get("cursor") or None
        back = request.query_params.getlist("back")[-MAX_BACK:]
        try:
            query = validate(m.AuditQuery, {"limit": AUDIT_PAGE_SIZE, "cursor": cursor})
            page = await self.store.run(lambda c: history.list_audit(c, query))
        except LLMOpsError as e:
            empty: dict[str, Any] = {
                "entries": [],
                "next": None,
                "newer": None,
                "newest": None,
                "page_number": 1,
            }
            return self.render(request, "manage_audit.html", empty, error=FormError.of("", e))
        root = str(request.scope.get("root_path", "")) + AUDIT
        nxt: str | None = None
        newer: str | None = None
        if page.next_cursor:
            trail = [*back, cursor or "-"][-MAX_BACK:]
            nxt = _link(root, [("cursor", page.next_cursor), *[("back", b) for b in trail]])
        if back:
            prev = back[-1]
            pairs = [] if prev == "-" else [("cursor", prev)]
            newer = _link(root, [*pairs, *[("back", b) for b in back[:-1]]])
        context = {
            "entries": page.data,
            "next": nxt,
            "newer": newer,
            "newest": root if cursor else None,
            "page_number": len(back) + 1,
        }
        return self.render(request, "manage_audit.html", context)


def _link(path: str, pairs: list[tuple[str, str]]) -> str:
    return path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")


def manage_routes(store: Store, layout: Layout) -> list[BaseRoute]:
    from llmops.dashboard.manage_config_edit import ConfigEditPages
    from llmops.dashboard.manage_envs import EnvironmentPages
    from llmops.dashboard.manage_prices import PricePages
    from llmops.dashboard.manage_providers import ProviderPages

    return [
        *EnvironmentPages(store, layout).routes(),
        *ProviderPages(store, layout).routes(),
        *ConfigEditPages(store, layout).routes(),
        *PricePages(store, layout).routes(),
        *AuditPages(store, layout).routes(),
    ]
