"""``AdminGuard``: the ASGI middleware that makes every route admin-only unless it is public.

Secure by default: the guard wraps the whole app, so a route added anywhere later is protected
without doing anything. Only the paths the app lists as public (the gateway, health checks, the
login page, static files) pass through untouched; everything else needs

- ``Authorization: Bearer <admin API token>`` (scripts; exempt from CSRF checks, since a browser
  never attaches it on its own), or
- the ``llmops_session`` cookie (the dashboard). Then every state-changing request must also carry
  the session's CSRF token, in an ``X-CSRF-Token`` header (HTMX: ``hx-headers``) or a
  ``csrf_token`` field of a urlencoded form; anything else gets 403.

Refusals: 401 in the OpenAI error envelope (JSON API, scripts), a 303 redirect to the login page
(a browser asking for a page), or 401 with ``HX-Redirect`` (HTMX). The identity is left in the
ASGI scope for ``require_admin``.
"""

from __future__ import annotations

import hmac
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmops.admin.auth import AdminIdentity
from llmops.errors import AuthenticationFailed, LLMOpsError, PayloadTooLarge, PermissionDenied

ADMIN_SCOPE_KEY = "llmops.admin"
LOGIN_PATH = "/llmops/login"
SESSION_COOKIE = "llmops_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

Authenticator = Callable[[HTTPConnection], Awaitable[AdminIdentity | None]]


class PublicPaths:
    """Paths served without admin auth. ``/healthz`` is that path only; ``/v1/*`` is every path
    below ``/v1/`` (not ``/v1x``). A path with ``.`` or ``..`` segments is never public."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = tuple(sorted({p for p in paths if p.strip("/*")}))
        self._exact = frozenset(p for p in self.paths if not p.endswith("/*"))
        self._prefixes = tuple(p[:-1] for p in self.paths if p.endswith("/*"))

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        if path not in self._exact and not path.startswith(self._prefixes):
            return False
        return "/." not in path or not ({".", ".."} & set(path.split("/")))


class AdminGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Authenticator,
        public: PublicPaths,
        max_form_bytes: int,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.public = public
        self.max_form_bytes = max_form_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _route_path(scope) in self.public:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        identity = await self.authenticate(conn)
        if identity is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _refusal(conn)(scope, receive, send)
            return
        if (
            scope["type"] == "http"
            and identity.method == "session"
            and scope["method"] not in SAFE_METHODS
        ):
            try:
                supplied, receive = await self._csrf_token(conn, receive)
            except LLMOpsError as e:
                await _error(e)(scope, receive, send)
                return
            expected = identity.csrf_token or ""
            if not supplied or not hmac.compare_digest(supplied.encode(), expected.encode()):
                error = PermissionDenied(
                    "missing or invalid CSRF token: send the session's token in an X-CSRF-Token "
                    "header or a csrf_token form field",
                    code="csrf_failed",
                )
                await _error(error)(scope, receive, send)
                return
        scope[ADMIN_SCOPE_KEY] = identity
        await self.app(scope, receive, send)

    async def _csrf_token(self, conn: HTTPConnection, receive: Receive) -> tuple[str, Receive]:
        """The token from the header, else from a urlencoded form body (which is then replayed
        to the app)."""
        header = conn.headers.get(CSRF_HEADER)
        if header is not None:
            return header, receive
        content_type = conn.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return "", receive
        body = await _read_body(receive, self.max_form_bytes)
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return (fields.get(CSRF_FIELD) or [""])[0], _replay(body, receive)


def require_admin(conn: HTTPConnection) -> AdminIdentity:
    """The admin making this request, as checked by ``AdminGuard``.

    Raises ``AuthenticationFailed`` on a public route (where the guard checked nothing)."""
    identity = conn.scope.get(ADMIN_SCOPE_KEY)
    if not isinstance(identity, AdminIdentity):
        raise AuthenticationFailed("admin authentication required", code="admin_auth_required")
    return identity


def bearer_token(conn: HTTPConnection) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None for no header or another scheme
    (such as a proxy's Basic auth, which must not hide the session cookie)."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def login_url(conn: HTTPConnection, next_path: str | None = None) -> str:
    url = str(conn.scope.get("root_path", "")) + LOGIN_PATH
    return url + "?" + urllib.parse.urlencode({"next": next_path}) if next_path else url


def _refusal(conn: HTTPConnection) -> Response:
    method = conn.scope["method"]
    next_path = None
    if method in ("GET", "HEAD"):
        next_path = conn.url.path + (f"?{conn.url.query}" if conn.url.query else "")
    if conn.headers.get("hx-request"):
        response = _error(_auth_error(conn))
        current = urllib.parse.urlsplit(conn.headers.get("hx-current-url", ""))
        page = current.path + (f"?{current.query}" if current.query else "")
        response.headers["HX-Redirect"] = login_url(conn, page or None)
        return response
    path = _route_path(conn.scope)
    wants_page = (
        "text/html" in conn.headers.get("accept", "")
        and not bearer_token(conn)
        and not path.startswith("/llmops/api/")
        and path != "/metrics"
    )
    if wants_page:
        return RedirectResponse(login_url(conn, next_path), status_code=303)
    response = _error(_auth_error(conn))
    response.headers["WWW-Authenticate"] = 'Bearer realm="llmops admin"'
    return response


def _auth_error(conn: HTTPConnection) -> AuthenticationFailed:
    if bearer_token(conn) is not None or SESSION_COOKIE in conn.cookies:
        message = "invalid, expired or revoked admin credentials"
    else:
        message = (
            "admin authentication required: send 'Authorization: Bearer <admin API token>' "
            f"or log in at {LOGIN_PATH}"
        )
    return AuthenticationFailed(message, code="admin_auth_required")


def _error(error: LLMOpsError) -> Response:
    return Response(error.body(), status_code=error.status, media_type="application/json")


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"form body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
