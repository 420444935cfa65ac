"""Price overrides: list, create (rates in USD per million tokens, as exact decimals) and delete
(confirmed). Each action calls the same ``admin.prices`` function as the management API; a change
reaches every gateway's price book at once, stored request costs change only when repriced."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmops.admin import models as m
from llmops.admin import prices
from llmops.admin.document import PROVIDER_TYPES
from llmops.admin.guard import require_admin
from llmops.admin.inputs import validate
from llmops.dashboard.forms import FormError, now, quote, read_form, redirect
from llmops.dashboard.manage import Pages
from llmops.errors import LLMOpsError, NotFound

PRICES = "/llmops/prices"
OVERRIDE = PRICES + "/{override}"
OPTIONAL_RATES = ("cache_read", "cache_write", "reasoning")


def rate(value: Decimal | None) -> str:
    """A stored rate without trailing zeros: 2.500000 → 2.5."""
    return "—" if value is None else format(value.normalize(), "f")


def describe(o: m.PriceOverride) -> str:
    return f"{o.provider or 'any provider'} / {o.model_pattern}"


class PricePages(Pages):
    def routes(self) -> list[BaseRoute]:
        return [
            Route(PRICES, self.index, methods=["GET"]),
            Route(PRICES, self.create, methods=["POST"]),
            Route(OVERRIDE + "/delete", self.confirm_delete, methods=["GET"]),
            Route(OVERRIDE + "/delete", self.delete, methods=["POST"]),
        ]

    async def index(
        self, request: Request, error: FormError | None = None, values: dict[str, str] | None = None
    ) -> Response:
        listed = await self.store.run(prices.list_overrides)
        context: dict[str, Any] = {
            "overrides": listed.data[::-1],
            "types": PROVIDER_TYPES,
            "rate": rate,
        }
        return self.render(request, "manage_prices.html", context, error=error, values=values)

    async def create(self, request: Request) -> Response:
        actor = require_admin(request).actor
        form = None
        try:
            form = await read_form(request)
            data: dict[str, Any] = {
                "provider": form.text("provider"),
                "model_pattern": form.get("model_pattern").strip(),
                "input": form.get("input").strip(),
                "output": form.get("output").strip(),
                "effective_from": form.text("effective_from"),
                "note": form.get("note").strip(),
            }
            for name in OPTIONAL_RATES:
                data[name] = form.text(name)
            body = validate(m.PriceOverrideIn, data)
            created = await self.api(request).change(
                lambda c: prices.create_override(c, actor, body, now())
            )
        except LLMOpsError as e:
            values = form.values() if form else None
            return await self.index(request, FormError.of("create-price", e), values)
        return redirect(request, PRICES, f"Price override for {describe(created)} created")

    async def _find(self, ref: str) -> m.PriceOverride:
        listed = await self.store.run(prices.list_overrides)
        for o in listed.data:
            if str(o.id) == ref:
                return o
        raise NotFound(f"no price override {ref!r}", param="override")

    async def confirm_delete(self, request: Request) -> Response:
        ref = request.path_params["override"]

        async def load() -> Response:
            override = await self._find(ref)
            return self.confirm(
                request,
                title=f"Delete the price override for {describe(override)}?",
                message="Requests from now on are priced by the built-in prices (or another "
                "override). Costs already stored change only when repriced "
                "(llmops prices reprice).",
                action=f"{PRICES}/{quote(str(override.id))}/delete",
                button="Delete override",
                cancel=PRICES,
            )

        return await self.guarded(request, load, PRICES, "Prices")

    async def delete(self, request: Request) -> Response:
        actor = require_admin(request).actor
        ref = request.path_params["override"]
        try:
            override = await self._find(ref)
            await self.api(request).change(
                lambda c: prices.delete_override(c, actor, str(override.id), now())
            )
        except LLMOpsError as e:
            return self.not_found(request, e, PRICES, "Prices")
        return redirect(request, PRICES, f"Price override for {describe(override)} deleted")
