"""Routes built on first use, so that a gateway process only loads what it serves."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send


class LazyRoutes(BaseRoute):
    """Routes under ``prefix`` (one or a tuple) that are built on their first request.

    The management API and pages (pydantic models: ~10 MB) are loaded only by processes asked for
    them, not by every gateway worker. Matching is delegated to the built routes, so 404/405
    behave as for any route."""

    def __init__(self, prefix: str | tuple[str, ...], build: Callable[[], list[BaseRoute]]):
        self.prefix = prefix
        self._build = build
        self._routes: list[BaseRoute] | None = None

    @property
    def routes(self) -> list[BaseRoute]:
        if self._routes is None:
            self._routes = self._build()
        return self._routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            return Match.NONE, {}
        partial: tuple[Match, Scope] = (Match.NONE, {})
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return match, {**child, "llmops.route": route}
            if match is Match.PARTIAL and partial[0] is Match.NONE:
                partial = (match, {**child, "llmops.route": route})
        return partial

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["llmops.route"].handle(scope, receive, send)
