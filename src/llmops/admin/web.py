"""Admin authentication over HTTP: the guard, the login page, logout and ``/llmops/api/v1/me``.

``AdminWeb(settings, store, public=...)`` is built by ``create_app``; ``install(app)`` adds the
routes, the ``AdminGuard`` middleware (every path not listed as public needs an admin) and the
handler that renders ``LLMOpsError`` as the OpenAI error envelope; ``start()`` runs in the
lifespan and creates the bootstrap admin from ``LLMOPS_ADMIN_PASSWORD``.

Route handlers call ``require_admin(request)`` for the identity (and ``.actor`` for the audit log,
``.csrf_token`` for forms). The login form has its own CSRF token (a short-lived cookie matched
against a form field) so that another site cannot log a browser into an account of its choosing.
Failed logins are limited per client address, in memory, per process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import secrets
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Connection
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from llmops.admin import auth
from llmops.admin.audit import record_audit
from llmops.admin.auth import AdminIdentity, Passwords
from llmops.admin.guard import (
    LOGIN_PATH,
    SESSION_COOKIE,
    AdminGuard,
    PublicPaths,
    bearer_token,
    require_admin,
)
from llmops.errors import LLMOpsError
from llmops.settings import Settings
from llmops.store import Store

log = logging.getLogger("llmops.admin")

LOGOUT_PATH = "/llmops/logout"
ME_PATH = "/llmops/api/v1/me"
STATIC_PATH = "/llmops/static"
COOKIE_PATH = "/llmops"
DEFAULT_NEXT = "/llmops/"
LOGIN_CSRF_COOKIE = "llmops_login_csrf"
TEMPLATES = Path(__file__).parent.parent / "dashboard" / "templates"
_MAX_LOGIN_BODY = 16 * 1024
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class LoginLimiter:
    """Failed logins per client address in a sliding window."""

    def __init__(self, limit: int, window: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds until ``client`` may try again, or None if it may try now."""
        failures = self._failures.get(client)
        if not failures:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return None
        return failures[0] + self.window - now

    def failed(self, client: str, now: float) -> None:
        self._failures.setdefault(client, deque()).append(now)
        if len(self._failures) > self.max_clients:
            # Bounded memory under a spray of addresses: forget quiet clients, then the oldest.
            for key in [k for k, q in self._failures.items() if q[-1] <= now - self.window]:
                del self._failures[key]
            while len(self._failures) > self.max_clients:
                del self._failures[next(iter(self._failures))]


class AdminWeb:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        public: Iterable[str],
        passwords: Passwords | None = None,
    ) -> None:
        """``public``: paths served without admin auth (``/x`` exactly, ``/x/*`` below it), on
        top of the login page, static files and, with ``LLMOPS_METRICS_PUBLIC``, ``/metrics``.
        ``passwords``: tests may pass a cheap hasher; the default is argon2-cffi's."""
        self.settings = settings
        self.store = store
        self.passwords = passwords or Passwords()
        self.limiter = LoginLimiter(settings.login_rate_limit)
        extra = [LOGIN_PATH, STATIC_PATH + "/*"] + (["/metrics"] if settings.metrics_public else [])
        self.public = PublicPaths([*public, *extra])
        self.templates = Jinja2Templates(directory=TEMPLATES)
        self.idle = dt.timedelta(seconds=settings.session_idle_timeout)
        self.max_age = dt.timedelta(seconds=settings.session_max_age)
        # Each argon2 verification takes ~64 MiB and ~0.1 s of CPU: bound how many run at once.
        self._hashing = asyncio.Semaphore(4)

    @property
    def routes(self) -> list[BaseRoute]:
        return [
            Route(LOGIN_PATH, self.login, methods=["GET", "POST"]),
            Route(LOGOUT_PATH, self.logout, methods=["POST"]),
            Route(ME_PATH, self.me, methods=["GET"]),
        ]

    def install(self, app: Starlette) -> None:
        app.router.routes.extend(self.routes)
        app.add_middleware(
            AdminGuard,
            authenticate=self.authenticate,
            public=self.public,
            max_form_bytes=self.settings.max_body_bytes,
        )
        app.add_exception_handler(LLMOpsError, _render_error)

    async def start(self) -> None:
        """Create the bootstrap admin from ``LLMOPS_ADMIN_PASSWORD`` if no admin exists."""
        password = self.settings.admin_password
        if not password:
            return
        created = await self.store.run(
            lambda c: auth.ensure_bootstrap_admin(c, password.reveal(), passwords=self.passwords)
        )
        if created:
            log.info("created admin user %r from LLMOPS_ADMIN_PASSWORD", auth.BOOTSTRAP_USERNAME)

    async def authenticate(self, conn: HTTPConnection) -> AdminIdentity | None:
        """The admin behind a Bearer token, else behind the session cookie; None if neither."""
        now = dt.datetime.now(dt.UTC)
        token = bearer_token(conn)
        if token is not None:
            if auth.api_token_prefix(token) is None:
                return None
            return await self.store.run(lambda c: auth.token_user(c, token, now))
        cookie = conn.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        return await self.store.run(lambda c: auth.session_user(c, cookie, now, idle=self.idle))

    async def login(self, request: Request) -> Response:
        next_path = _safe_next(request.query_params.get("next"))
        if request.method in ("GET", "HEAD"):
            if await self.authenticate(request) is not None:
                return RedirectResponse(next_path, status_code=303)
            return self._login_page(request, next_path)
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.retry_after(client, time.monotonic())
        if wait is not None:
            page = self._login_page(
                request, next_path, error="Too many failed logins. Wait a minute.", status=429
            )
            page.headers["Retry-After"] = str(max(1, round(wait)))
            return page
        form = await _read_form(request)
        next_path = _safe_next(form.get("next") or request.query_params.get("next"))
        username = form.get("username", "")
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        supplied = form.get("csrf_token", "")
        if not expected or not hmac.compare_digest(expected.encode(), supplied.encode()):
            error = "This login form has expired. Please try again."
            return self._login_page(request, next_path, error=error, status=403, username=username)
        user = await self._check_password(username, form.get("password", ""))
        if user is None:
            self.limiter.failed(client, time.monotonic())
            error = "Invalid username or password."
            return self._login_page(request, next_path, error=error, status=401, username=username)
        session = await self.store.run(
            lambda c: self._open_session(c, user, request.cookies.get(SESSION_COOKIE), client)
        )
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session.token,
            max_age=self.settings.session_max_age,
            path=request.scope.get("root_path", "") + COOKIE_PATH,
            secure=self.settings.cookie_secure or request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=request.url.path)
        return response

    async def _check_password(self, username: str, password: str) -> auth.User | None:
        """Verify off the event loop and off the database connection; upgrade an old hash."""
        candidate = await self.store.run(lambda c: auth.find_login(c, username))
        async with self._hashing:
            ok = await asyncio.to_thread(auth.check_login, self.passwords, candidate, password)
            if not ok or candidate is None:
                return None
            new_hash = await asyncio.to_thread(
                self.passwords.rehash, candidate.password_hash, password
            )
        if new_hash:
            await self.store.run(lambda c: auth.set_password_hash(c, candidate.user.id, new_hash))
        return candidate.user

    def _open_session(
        self, conn: Connection, user: auth.User, old_token: str | None, client: str
    ) -> auth.NewSession:
        if old_token:  # never keep a session id across a login
            auth.delete_session(conn, old_token)
        now = dt.datetime.now(dt.UTC)
        session = auth.create_session(conn, user.id, now, max_age=self.max_age, idle=self.idle)
        record_audit(conn, user.username, "admin.login", "admin_user", user.id, {"client": client})
        return session

    def _login_page(
        self,
        request: Request,
        next_path: str,
        *,
        error: str | None = None,
        status: int = 200,
        username: str = "",
    ) -> Response:
        csrf = secrets.token_urlsafe(32)
        context = {"csrf_token": csrf, "next": next_path, "error": error, "username": username}
        page = self.templates.TemplateResponse(
            request, "login.html", context, status_code=status, headers=_PAGE_HEADERS
        )
        page.set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf,
            max_age=3600,
            path=request.url.path,
            secure=self.settings.cookie_secure or request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return page

    async def logout(self, request: Request) -> Response:
        identity = require_admin(request)
        token = request.cookies.get(SESSION_COOKIE)
        if identity.method == "session" and token:
            await self.store.run(lambda c: auth.delete_session(c, token))
        response = RedirectResponse(request.scope.get("root_path", "") + LOGIN_PATH, 303)
        response.delete_cookie(
            SESSION_COOKIE, path=request.scope.get("root_path", "") + COOKIE_PATH
        )
        return response

    async def me(self, request: Request) -> Response:
        """The caller's identity; for a session, also the CSRF token scripts need for writes."""
        identity = require_admin(request)
        return JSONResponse(
            {
                "user_id": str(identity.user_id),
                "username": identity.username,
                "auth": identity.method,
                "actor": identity.actor,
                "token_prefix": identity.token_prefix,
                "csrf_token": identity.csrf_token,
            }
        )


def _safe_next(value: str | None) -> str:
    """A local path to go to after login; anything else (another site) becomes the dashboard."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
    ):
        return DEFAULT_NEXT
    return value


async def _read_form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_LOGIN_BODY:
            break
    fields = urllib.parse.parse_qsl(body[:_MAX_LOGIN_BODY].decode("utf-8", "replace"))
    return {key: value for key, value in reversed(fields)}  # the first value wins


async def _render_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LLMOpsError)
    return Response(exc.body(), status_code=exc.status, media_type="application/json")
