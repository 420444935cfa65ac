"""The analytics JSON API under ``/llmops/api/v1/analytics/`` (admin only: ``AdminGuard``).

Thin handlers: parse the query string into ``Filters`` (a bad value is a 400 naming the
parameter), run one query function in one transaction, return JSON. Export streams its pages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import Any

import orjson
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from llmops.analytics import (
    FORMATS,
    FilterError,
    Filters,
    breakdown,
    costs_by_model,
    export,
    list_requests,
    parse_filters,
    request_detail,
    summary,
    tag_keys,
    tag_values,
    timeseries,
)
from llmops.errors import NotFound
from llmops.store import Store

PREFIX = "/llmops/api/v1/analytics"


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        # default=str: UUIDs read from PostgreSQL are asyncpg's own type.
        return orjson.dumps(content, default=str)


def query_params(request: Request) -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = {}
    for key, value in request.query_params.multi_items():
        existing = params.get(key)
        if existing is None:
            params[key] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            params[key] = [existing, value]
    return params


def _one(params: dict[str, str | list[str]], name: str, default: str | None = None) -> str | None:
    value = params.get(name, default)
    if isinstance(value, list):
        raise FilterError(name, f"{name} may be given once")
    return value or default


def _int(params: dict[str, str | list[str]], name: str, default: int) -> int:
    raw = _one(params, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise FilterError(name, f"{name} must be a whole number") from None


class AnalyticsAPI:
    def __init__(self, store: Store, indexed_tags: Collection[str]):
        self.store = store
        self.indexed_tags = tuple(indexed_tags)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(PREFIX + "/summary", self.summary),
            Route(PREFIX + "/timeseries", self.timeseries),
            Route(PREFIX + "/breakdown", self.breakdown),
            Route(PREFIX + "/costs/by-model", self.costs_by_model),
            Route(PREFIX + "/requests", self.requests),
            Route(PREFIX + "/requests/{request_id}", self.request),
            Route(PREFIX + "/tags", self.tags),
            Route(PREFIX + "/tags/{key}/values", self.tag_values),
            Route(PREFIX + "/export", self.export),
        ]

    def _filters(self, request: Request) -> tuple[Filters, dict[str, str | list[str]]]:
        params = query_params(request)
        return parse_filters(params, dt.datetime.now(dt.UTC)), params

    async def _run(self, fn: Callable[[Connection], Any]) -> JSON:
        return JSON(await self.store.run(fn))

    async def summary(self, request: Request) -> Response:
        f, _ = self._filters(request)
        return await self._run(lambda c: summary(c, f, indexed_tags=self.indexed_tags))

    async def timeseries(self, request: Request) -> Response:
        f, p = self._filters(request)
        bucket, split = _one(p, "bucket"), _one(p, "split_by")
        limit = _int(p, "limit", 10)
        return await self._run(
            lambda c: timeseries(c, f, bucket, split, limit=limit, indexed_tags=self.indexed_tags)
        )

    async def breakdown(self, request: Request) -> Response:
        f, p = self._filters(request)
        by = _one(p, "by")
        if by is None:
            raise FilterError("by", "by is required (model, provider, config, …, tag:<key>)")
        sort, limit = _one(p, "sort", "cost") or "cost", _int(p, "limit", 10)
        return await self._run(
            lambda c: breakdown(c, f, by, sort, limit, indexed_tags=self.indexed_tags)
        )

    async def costs_by_model(self, request: Request) -> Response:
        f, _ = self._filters(request)
        return await self._run(lambda c: costs_by_model(c, f, indexed_tags=self.indexed_tags))

    async def requests(self, request: Request) -> Response:
        f, p = self._filters(request)
        sort, direction = _one(p, "sort", "time") or "time", _one(p, "direction", "desc") or "desc"
        limit, cursor = _int(p, "limit", 50), _one(p, "cursor")
        rows, next_cursor = await self.store.run(
            lambda c: list_requests(c, f, sort, direction, limit, cursor)
        )
        return JSON({"data": rows, "next_cursor": next_cursor})

    async def request(self, request: Request) -> Response:
        rid = request.path_params["request_id"]
        row = await self.store.run(lambda c: request_detail(c, rid))
        if row is None:
            raise NotFound(f"no request {rid}", param="request_id", code="request_not_found")
        return JSON(row)

    async def tags(self, request: Request) -> Response:
        return JSON({"keys": await self.store.run(tag_keys)})

    async def tag_values(self, request: Request) -> Response:
        key = request.path_params["key"]
        p = query_params(request)
        prefix, limit = _one(p, "prefix", "") or "", _int(p, "limit", 50)
        values = await self.store.run(lambda c: tag_values(c, key, prefix, limit))
        return JSON({"key": key, "values": values})

    async def export(self, request: Request) -> Response:
        f, p = self._filters(request)
        fmt = _one(p, "format", "csv") or "csv"
        sort, direction = _one(p, "sort", "time") or "time", _one(p, "direction", "desc") or "desc"
        chunks = export(self.store, f, fmt, sort=sort, direction=direction)  # checks args now
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            chunks,
            media_type=FORMATS[fmt],
            headers={
                "content-disposition": f'attachment; filename="llmops-requests-{stamp}.{fmt}"'
            },
        )
