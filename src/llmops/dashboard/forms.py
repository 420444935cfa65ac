"""What the management pages share: reading an HTML form, calling the management API's domain
functions the way the JSON API does, and turning a refusal into a message on the form.

Changes go through ``ManagementApi.change`` (commit, audit entry, routing snapshot refresh), built
from the app's services (``app.state.services``), so a page action and the same API call behave
identically. A refusal (``LLMOpsError``: invalid input, a conflict, an unknown entity) is rendered
as ``FormError`` on the page that was submitted, with the field it names; never a 500.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from llmops.admin.api import ManagementApi, ManagementServices
from llmops.admin.guard import CSRF_FIELD
from llmops.errors import InvalidRequest, LLMOpsError, PayloadTooLarge

MAX_FORM_BYTES = 1_000_000


@dataclass(frozen=True)
class FormError:
    """A refusal shown on form ``form`` (its id); ``param`` is the field it names, if any."""

    form: str
    message: str
    param: str | None = None
    status: int = 400

    @classmethod
    def of(cls, form: str, e: LLMOpsError) -> FormError:
        return cls(form=form, message=e.message, param=e.param, status=e.status)


class Form:
    """A submitted urlencoded form (the CSRF field left out)."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self.fields = {k: v for k, v in fields.items() if k != CSRF_FIELD}

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def text(self, name: str) -> str | None:
        """The stripped value, None when empty."""
        value = self.get(name).strip()
        return value or None

    def values(self) -> dict[str, str]:
        """The first value of each field, to refill the form after a refusal."""
        return {k: v[0] for k, v in self.fields.items() if v}

    def json(self, name: str, default: Any) -> Any:
        raw = self.get(name).strip()
        if not raw:
            return default
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise InvalidRequest(f"{name}: not valid JSON ({e})", param=name) from None


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> Form:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"form body larger than {limit} bytes")
    fields = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    for key, values in fields.items():
        if "\x00" in key or any("\x00" in v for v in values):
            raise InvalidRequest(f"{key}: NUL characters are not allowed", param=key)
    return Form(fields)


def management_api(request: Request) -> ManagementApi:
    """The management API's handler object over this app's services (one per app)."""
    state = request.app.state
    api = getattr(state, "dashboard_management_api", None)
    if not isinstance(api, ManagementApi):
        api = ManagementApi(cast(ManagementServices, state.services))
        state.dashboard_management_api = api
    return api


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def redirect(request: Request, path: str, notice: str | None = None) -> Response:
    """303 to an app path (under the mount point), with a one-line notice to show there."""
    url = str(request.scope.get("root_path", "")) + path
    if notice:
        url += "?" + urllib.parse.urlencode({"notice": notice})
    return RedirectResponse(url, status_code=303)


def quote(value: str) -> str:
    """A slug or name as one path segment."""
    return urllib.parse.quote(value, safe="")
