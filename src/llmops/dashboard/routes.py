"""The dashboard's pages: Overview, Requests (list and detail) and Costs, plus the tag-value search
the filter bar calls as you type, and the static files.

Handlers parse the query string, run one view function (``views``) in one transaction and render
a template. A parameter that does not parse is shown on the page (status 400) above a filter bar
that can correct it; it is never a 500. Every route is admin-only through ``AdminGuard``; only
``/llmops/static/`` is public.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from llmops.analytics import FilterError, Filters, parse_filters, tag_values
from llmops.dashboard import views
from llmops.dashboard.compare import Comparison
from llmops.dashboard.filterbar import PAGING, Options, filter_bar, filter_options
from llmops.dashboard.layout import SITE_NAV, STATIC, STATIC_PATH, Layout, NavItem, route_path
from llmops.dashboard.query import FILTER_PARAMS, PageQuery
from llmops.lazy_routes import LazyRoutes
from llmops.settings import Settings
from llmops.store import Store

OVERVIEW = "/llmops/"
REQUESTS = "/llmops/requests"
COSTS = "/llmops/costs"
TAG_VALUES = "/llmops/tag-values"
EXPORT = "/llmops/api/v1/analytics/export"
REQUEST_PARAMS = ("sort", "direction", "limit")
COST_PARAMS = ("by_tag", "compare", "a", "b")
SORTS = ("time", "cost", "latency", "tokens")
PAGE_SIZES = (25, 50, 100)
MAX_BACK = 20  # pages "Newer" can step back through; further back, "Newest" still works
Loader = Callable[[Connection, Filters, dt.datetime], dict[str, Any]]


def _int(q: PageQuery, name: str, default: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise FilterError(name, f"{name} must be a whole number") from None


def _pager(q: PageQuery, path: str, next_cursor: str | None, newest_first: bool) -> dict[str, Any]:
    """Links to the next and the previous (newer) page. Cursors only go forward, so each
    "Next" link also carries the cursors of the pages before it (``back``)."""
    cursor, back = q.get("cursor"), q.getlist("back")[-MAX_BACK:]
    out: dict[str, Any] = {"next": None, "newer": None, "newest": None, "page": len(back) + 1}
    out["labels"] = ("Newer", "Newest") if newest_first else ("Previous", "First page")
    if next_cursor:
        trail = [*back, cursor or "-"][-MAX_BACK:]
        out["next"] = q.link(path, replace={"cursor": next_cursor, "back": trail})
    if back:
        previous = back[-1]
        out["newer"] = q.link(
            path, replace={"cursor": None if previous == "-" else previous, "back": back[:-1]}
        )
    if cursor:
        out["newest"] = q.link(path, drop=PAGING)
    return out


def _sort_links(q: PageQuery, path: str, sort: str, direction: str) -> dict[str, Any]:
    out = {}
    for name in SORTS:
        flip = "asc" if sort == name and direction == "desc" else "desc"
        out[name] = {
            "href": q.link(path, replace={"sort": name, "direction": flip}, drop=PAGING),
            "arrow": ("▼" if direction == "desc" else "▲") if sort == name else "",
        }
    return out


def _back_to_page(current_url: str, root: str) -> tuple[PageQuery, str]:
    """The page an HTMX request came from (``HX-Current-URL``): its query and route path."""
    parts = urllib.parse.urlsplit(current_url)
    path = parts.path[len(root) :] if root and parts.path.startswith(root) else parts.path
    if not path.startswith("/llmops/") or "//" in path or "/." in path:
        path = REQUESTS
    return PageQuery(urllib.parse.parse_qsl(parts.query), root), path


# The management pages; their modules (and pydantic) load on the first request to one of them.
MANAGE_PREFIXES = (
    "/llmops/environments",
    "/llmops/providers",
    "/llmops/configs",
    "/llmops/prices",
    "/llmops/audit",
)


def manage_routes(store: Store, layout: Layout) -> list[BaseRoute]:
    from llmops.dashboard.manage import manage_routes as build

    return build(store, layout)


class Dashboard:
    def __init__(
        self, store: Store, settings: Settings, *, nav: Sequence[NavItem] = SITE_NAV
    ) -> None:
        self.store = store
        self.indexed_tags = settings.indexed_tag_keys
        self.log_bodies = settings.log_bodies
        self.layout = Layout(nav)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(OVERVIEW, self.overview, methods=["GET"]),
            Route(REQUESTS, self.requests, methods=["GET"]),
            Route(REQUESTS + "/{request_id}", self.request_detail, methods=["GET"]),
            Route(COSTS, self.costs, methods=["GET"]),
            Route(TAG_VALUES, self.tag_values, methods=["GET"]),
            LazyRoutes(MANAGE_PREFIXES, lambda: manage_routes(self.store, self.layout)),
            Mount(STATIC_PATH, app=StaticFiles(directory=STATIC), name="static"),
        ]

    @staticmethod
    def _query(request: Request) -> PageQuery:
        return PageQuery(request.query_params.multi_items(), request.scope.get("root_path", ""))

    async def _page(
        self,
        request: Request,
        template: str,
        page_params: Sequence[str],
        prepare: Callable[[PageQuery], Loader],
        partial: str | None = None,
    ) -> Response:
        """Parse, load, render; a ``FilterError`` becomes a message on the page. ``partial``:
        the template an HTMX request targeting ``#results`` gets instead of the whole page."""
        q, path, now = self._query(request), route_path(request), dt.datetime.now(dt.UTC)
        want_partial = partial is not None and request.headers.get("hx-target") == "results"
        f: Filters | None = None
        data: dict[str, Any] | None = None
        error: FilterError | None = None
        try:
            filters, load = q.filters(now), prepare(q)
            if want_partial and partial is not None:
                data = await self.store.run(lambda c: load(c, filters, now))
                context = {"q": q, "path": path, "data": data}
                return self.layout.render(request, partial, context)

            def run(conn: Connection) -> tuple[dict[str, Any], Options]:
                return load(conn, filters, now), filter_options(conn, filters, self.indexed_tags)

            data, options = await self.store.run(run)
            f = filters
        except FilterError as e:
            if want_partial:  # show the message on the whole page, where it can be corrected
                return Response(status_code=400, headers={"HX-Redirect": str(request.url)})
            error, fallback = e, parse_filters({}, now)
            options = await self.store.run(lambda c: filter_options(c, fallback, self.indexed_tags))
        bar = filter_bar(q, f, options.selects, options.tag_keys, path, page_params)
        context = {"q": q, "path": path, "f": f, "bar": bar, "data": data, "error": error}
        status = 400 if error is not None else 200
        return self.layout.render(
            request, template, context, status=status, filter_query=q.filter_query
        )

    async def overview(self, request: Request) -> Response:
        def prepare(q: PageQuery) -> Loader:
            return lambda c, f, now: views.overview(c, f, self.indexed_tags, now)

        return await self._page(request, "overview.html", (), prepare)

    async def requests(self, request: Request) -> Response:
        def prepare(q: PageQuery) -> Loader:
            sort, direction = q.get("sort", "time") or "time", q.get("direction", "desc") or "desc"
            limit, cursor = _int(q, "limit", 50), q.get("cursor")

            def load(conn: Connection, f: Filters, now: dt.datetime) -> dict[str, Any]:
                page = views.requests_page(
                    conn, f, now, sort=sort, direction=direction, limit=limit, cursor=cursor
                )
                return {
                    **page,
                    "pager": _pager(
                        q, REQUESTS, page["next_cursor"], (sort, direction) == ("time", "desc")
                    ),
                    "sorts": _sort_links(q, REQUESTS, sort, direction),
                    "limit": limit,
                    "page_sizes": [
                        (n, q.link(REQUESTS, replace={"limit": str(n)}, drop=PAGING))
                        for n in PAGE_SIZES
                    ],
                    "export": {
                        fmt: q.link(
                            EXPORT,
                            keep=(*FILTER_PARAMS, "sort", "direction"),
                            replace={"format": fmt},
                        )
                        for fmt in ("csv", "jsonl")
                    },
                    "row_keep": (*FILTER_PARAMS, *REQUEST_PARAMS, *PAGING),
                }

            return load

        return await self._page(
            request, "requests.html", REQUEST_PARAMS, prepare, partial="_results.html"
        )

    async def request_detail(self, request: Request) -> Response:
        q, request_id = self._query(request), request.path_params["request_id"]
        row = await self.store.run(lambda c: views.detail(c, request_id))
        context = {
            "q": q,
            "row": row,
            "request_id": request_id,
            "log_bodies": self.log_bodies,
            "back": q.link(REQUESTS, keep=(*FILTER_PARAMS, *REQUEST_PARAMS, *PAGING)),
        }
        return self.layout.render(
            request,
            "request.html",
            context,
            status=200 if row is not None else 404,
            filter_query=q.filter_query,
        )

    async def costs(self, request: Request) -> Response:
        def prepare(q: PageQuery) -> Loader:
            by_tag = q.get("by_tag", "tenantSlug") or "tenantSlug"
            comparison = Comparison.parse(q.get("compare"), q.get("a"), q.get("b"), by_tag)
            return lambda c, f, now: {
                **views.costs(c, f, self.indexed_tags, now, by_tag=by_tag, comparison=comparison),
                "by_tag_key": by_tag,
            }

        return await self._page(request, "costs.html", COST_PARAMS, prepare)

    async def tag_values(self, request: Request) -> Response:
        """Values of one tag key starting with what was typed, as links that add the filter to
        the page the search was made from."""
        root = str(request.scope.get("root_path", ""))
        key = request.query_params.get("key", "").strip()
        typed = request.query_params.get("q", "").strip()
        page, path = _back_to_page(request.headers.get("hx-current-url", ""), root)
        found: list[dict[str, Any]] = []
        if key:
            found = await self.store.run(lambda c: tag_values(c, key, typed, 20))
        items = [
            {
                "value": v["value"],
                "requests": v["requests"],
                "href": page.link(path, add=[("tag", f"{key}={v['value']}")], drop=PAGING),
                "active": ("tag", f"{key}={v['value']}") in page,
            }
            for v in found
        ]
        context = {"key": key, "typed": typed, "items": items}
        return self.layout.render(request, "_tag_values.html", context)
