"""The page frame every dashboard page shares: templates, security headers and the navigation.

``Layout.render(request, template, context)`` renders a template that extends ``base.html`` with
the nav, the signed-in admin and the session's CSRF token filled in, and sends the headers below.
Management pages reuse it: add a ``NavItem`` to ``NAV`` (or pass ``nav=`` to ``Dashboard``) and
write a template that extends ``base.html``. Forms that POST include
``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">``; HTMX requests carry the
token already (``hx-headers`` on ``<body>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from llmops.admin.guard import require_admin
from llmops.dashboard.format import FILTERS

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_PATH = "/llmops/static"
LOGOUT_PATH = "/llmops/logout"

# Scripts only from our own origin and no inline code at all: page data travels in
# <script type="application/json"> blocks, which are never executed. htmx is told not to inject
# its indicator <style> nor to eval anything (see base.html).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Vary": "HX-Request",
}


@dataclass(frozen=True)
class NavItem:
    """One link of the side navigation. ``keep_filters``: carry the analytics filters (time
    range, environment…) over from the current page, so switching views keeps the selection."""

    label: str
    path: str
    section: str = "Analytics"
    keep_filters: bool = True

    def is_active(self, path: str) -> bool:
        if self.path.endswith("/"):
            return path == self.path
        return path == self.path or path.startswith(self.path + "/")


# The one list of pages; management pages (Environments, Providers, Configs) go in a "Manage"
# section: NavItem("Environments", "/llmops/environments", "Manage", keep_filters=False).
NAV: tuple[NavItem, ...] = (
    NavItem("Overview", "/llmops/"),
    NavItem("Requests", "/llmops/requests"),
    NavItem("Costs", "/llmops/costs"),
)
# The management pages (``manage``), in their own section; the sidebar shows ``SITE_NAV``.
MANAGE_NAV: tuple[NavItem, ...] = (
    NavItem("Environments", "/llmops/environments", "Manage", keep_filters=False),
    NavItem("Providers", "/llmops/providers", "Manage", keep_filters=False),
    NavItem("Configs", "/llmops/configs", "Manage", keep_filters=False),
    NavItem("Prices", "/llmops/prices", "Manage", keep_filters=False),
    NavItem("Audit log", "/llmops/audit", "Manage", keep_filters=False),
)
SITE_NAV: tuple[NavItem, ...] = (*NAV, *MANAGE_NAV)


@jinja2.pass_context
def _url(context: Mapping[str, Any], path: str) -> str:
    """An app path under the mount point the app is served at."""
    request: Request = context["request"]
    return str(request.scope.get("root_path", "")) + path


@jinja2.pass_context
def _static(context: Mapping[str, Any], name: str) -> str:
    return _url(context, f"{STATIC_PATH}/{name}")


def route_path(request: Request) -> str:
    """The request's path inside the app (without the prefix it is mounted at)."""
    path, root = request.url.path, str(request.scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


class Layout:
    def __init__(self, nav: Sequence[NavItem] = SITE_NAV) -> None:
        self.nav = tuple(nav)
        self.templates = Jinja2Templates(directory=TEMPLATES)
        env = self.templates.env
        env.filters.update(FILTERS)
        env.globals.update(url=_url, static=_static)
        env.undefined = jinja2.StrictUndefined  # a typo in a template fails loudly in tests
        env.trim_blocks = True
        env.lstrip_blocks = True

    def sections(self, path: str, filter_query: str) -> list[dict[str, Any]]:
        """The nav grouped by section, in order of first appearance, with the active item."""
        out: dict[str, list[dict[str, Any]]] = {}
        for item in self.nav:
            href = item.path + (f"?{filter_query}" if item.keep_filters and filter_query else "")
            out.setdefault(item.section, []).append(
                {"label": item.label, "href": href, "active": item.is_active(path)}
            )
        return [{"title": title, "links": links} for title, links in out.items()]

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        filter_query: str = "",
    ) -> Response:
        """``template`` with the frame's context; ``filter_query`` is carried by nav links."""
        identity = require_admin(request)
        frame = {
            "nav": self.sections(route_path(request), filter_query),
            "username": identity.username,
            "csrf_token": identity.csrf_token or "",
            "logout_path": LOGOUT_PATH,
        }
        return self.templates.TemplateResponse(
            request, template, {**frame, **context}, status_code=status, headers=PAGE_HEADERS
        )
