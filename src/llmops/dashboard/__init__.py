"""The dashboard: server-rendered pages over the analytics queries (Jinja2, htmx, uPlot).

Contracts:

- Pages live under ``/llmops/``: Overview ``/llmops/``, Requests ``/llmops/requests`` (and
  ``/llmops/requests/{id}``), Costs ``/llmops/costs``; ``/llmops/tag-values`` answers the filter
  bar's tag search; ``/llmops/static/`` serves the assets (the only public path here).
- Layering: dashboard → analytics → store. Handlers call the analytics functions through
  ``store.run`` (``views``); the dashboard runs no SQL of its own.
- Every view's state is in its query string, with the analytics API's parameter names, so any
  view can be bookmarked; a bad value is a message on the page (400), never a 500.
- Pages send a strict CSP (``script-src 'self'``, no inline script or style); data for scripts is
  embedded as ``<script type="application/json">``. Templates autoescape; POST forms carry the
  session's CSRF token and htmx sends it as ``X-CSRF-Token``.
- No build step: ``static/`` holds vendored htmx and uPlot plus ``app.css`` and ``app.js``.
- New pages extend ``base.html`` and join the navigation through ``NAV`` (see ``layout``).
- Management pages (``manage*``; nav section "Manage", ``MANAGE_NAV``): Environments
  ``/llmops/environments``, Providers ``/llmops/providers``, Configs ``/llmops/configs`` (and
  ``/llmops/configs/{slug}``), Audit log ``/llmops/audit``. They call the management API's domain
  functions through ``ManagementApi.change`` (same audit entries, same snapshot refresh); POSTs
  are HTML forms answering 303, destructive ones behind a confirmation page.
"""

from __future__ import annotations

from llmops.dashboard.layout import MANAGE_NAV, NAV, SITE_NAV, Layout, NavItem
from llmops.dashboard.routes import Dashboard

__all__ = ["MANAGE_NAV", "NAV", "SITE_NAV", "Dashboard", "Layout", "NavItem"]
