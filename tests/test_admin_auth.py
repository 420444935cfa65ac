"""Admin authentication: users, sessions, API tokens, CSRF, the login page, the route guard, the
CLI and the bootstrap admin — on SQLite and PostgreSQL, over HTTP against the real server."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import io
import json
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, Type
from sqlalchemy import Connection
from starlette.routing import BaseRoute, Mount, Route

from llmops.admin import auth
from llmops.admin.audit import record_audit
from llmops.admin.auth import Passwords
from llmops.app import GATEWAY_PREFIX
from llmops.cli import main, run_in_store
from llmops.lazy_routes import LazyRoutes
from llmops.settings import Settings
from llmops.store import schema as s
from tests.conftest import (
    TEST_ADMIN,
    TEST_ADMIN_PASSWORD,
    Gateway,
    GatewayFactory,
    cheap_passwords,
)

PASSWORD = "a long enough password"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ME = "/llmops/api/v1/me"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings.load({}, database_url=database_url, data_dir=tmp_path / "data")


def _rows(settings: Settings, table: sa.Table) -> list[dict[str, Any]]:
    return run_in_store(settings, lambda c: [dict(r._mapping) for r in c.execute(sa.select(table))])


# --- domain -------------------------------------------------------------------------------------


def test_users_are_stored_as_salted_argon2id_hashes_never_in_plaintext(
    settings: Settings,
) -> None:
    def create(conn: Connection) -> None:
        auth.create_user(conn, "alice", PASSWORD, passwords=cheap_passwords())
        auth.create_user(conn, "bob", PASSWORD, passwords=cheap_passwords())

    run_in_store(settings, create)
    users = _rows(settings, s.admin_users)
    assert [u["username"] for u in users] == ["alice", "bob"]
    assert all(u["password_hash"].startswith("$argon2id$") for u in users)
    assert users[0]["password_hash"] != users[1]["password_hash"]  # salted
    assert PASSWORD not in repr(users)
    for bad_name, password, message in [
        ("carol", "short pass", "at least 12"),
        ("alice", PASSWORD, "already exists"),
        ("bad name", PASSWORD, "username"),
        ("", PASSWORD, "username"),
    ]:
        with pytest.raises(ValueError, match=message):
            run_in_store(
                settings,
                lambda c, n=bad_name, p=password: auth.create_user(
                    c, n, p, passwords=cheap_passwords()
                ),
            )


def test_the_default_hasher_is_argon2id_at_library_defaults_and_unknown_users_cost_a_verify() -> (
    None
):
    default, library = Passwords().hasher, PasswordHasher()
    assert default.type is Type.ID
    for attr in ("time_cost", "memory_cost", "parallelism", "hash_len", "salt_len"):
        assert getattr(default, attr) == getattr(library, attr), attr
    # The built-in dummy hash matches the defaults, so an unknown user costs a real verification.
    assert not library.check_needs_rehash(auth._DEFAULT_DUMMY)

    class Counting(PasswordHasher):
        calls = 0

        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            Counting.calls += 1
            return super().verify(hash, password)

    passwords = Passwords(Counting(time_cost=1, memory_cost=8, parallelism=1))
    assert passwords.verify(None, PASSWORD) is False
    assert Counting.calls == 1


def test_verify_login_accepts_only_the_right_password_of_an_enabled_user(
    settings: Settings,
) -> None:
    cheap = cheap_passwords()
    user = run_in_store(settings, lambda c: auth.create_user(c, "alice", PASSWORD, passwords=cheap))

    def login(name: str, password: str, passwords: Passwords = cheap) -> auth.User | None:
        return run_in_store(
            settings, lambda c: auth.verify_login(c, name, password, passwords=passwords)
        )

    assert login("alice", PASSWORD) == user
    assert login("alice", PASSWORD + "x") is None
    assert login("nobody", PASSWORD) is None
    # A hash made with other parameters is replaced at the next successful login.
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    assert login("alice", PASSWORD, stronger) == user
    assert "t=2" in _rows(settings, s.admin_users)[0]["password_hash"]
    run_in_store(settings, lambda c: c.execute(sa.update(s.admin_users).values(disabled_at=T0)))
    assert login("alice", PASSWORD, stronger) is None


def test_sessions_slide_with_use_and_end_when_idle_or_too_old(settings: Settings) -> None:
    user = run_in_store(
        settings, lambda c: auth.create_user(c, "alice", PASSWORD, passwords=cheap_passwords())
    )
    h = dt.timedelta(hours=1)

    def seen(token: str, at: dt.datetime) -> auth.AdminIdentity | None:
        return run_in_store(settings, lambda c: auth.session_user(c, token, at))

    session = run_in_store(settings, lambda c: auth.create_session(c, user.id, T0))
    assert [r["id"] for r in _rows(settings, s.admin_sessions)] == [
        hashlib.sha256(session.token.encode()).hexdigest()
    ]
    identity = seen(session.token, T0 + 11 * h)
    assert identity is not None and identity.username == "alice"
    assert identity.method == "session" and identity.csrf_token == session.csrf_token
    assert seen(session.token, T0 + 22 * h) is not None  # 11 h after the last use
    assert seen(session.token + "x", T0 + 22 * h) is None
    assert seen(session.token, T0 + 34 * h) is None  # 12 h idle
    assert _rows(settings, s.admin_sessions) == []

    session = run_in_store(settings, lambda c: auth.create_session(c, user.id, T0))
    for hours in range(10, 24 * 7, 10):
        assert seen(session.token, T0 + hours * h) is not None, hours
    assert seen(session.token, T0 + 24 * 7 * h) is None  # absolute limit despite use

    session = run_in_store(settings, lambda c: auth.create_session(c, user.id, T0))
    seen(session.token, T0 + dt.timedelta(seconds=30))  # within a minute: no write
    assert _utc(_rows(settings, s.admin_sessions)[0]["last_seen_at"]) == T0
    assert run_in_store(settings, lambda c: auth.delete_session(c, session.token))
    assert seen(session.token, T0) is None


def test_api_tokens_are_hashed_and_work_until_revoked(settings: Settings) -> None:
    user = run_in_store(
        settings, lambda c: auth.create_user(c, "alice", PASSWORD, passwords=cheap_passwords())
    )
    new = run_in_store(settings, lambda c: auth.create_api_token(c, user.id, "grafana", now=T0))
    assert re.fullmatch(r"llmops_admin_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", new.token)
    assert new.token.startswith(new.prefix + "_")
    (row,) = _rows(settings, s.admin_api_tokens)
    assert row["prefix"] == new.prefix and new.token not in repr(row)
    assert row["token_hash"] == hashlib.sha256(new.token.encode()).hexdigest()

    def use(token: str, at: dt.datetime) -> auth.AdminIdentity | None:
        return run_in_store(settings, lambda c: auth.token_user(c, token, at))

    identity = use(new.token, T0)
    assert identity is not None and identity.username == "alice" and identity.method == "token"
    assert identity.actor == f"token:{new.prefix}" and identity.csrf_token is None
    use(new.token, T0 + dt.timedelta(seconds=30))
    assert _utc(_rows(settings, s.admin_api_tokens)[0]["last_used_at"]) == T0
    use(new.token, T0 + dt.timedelta(seconds=61))
    assert _utc(_rows(settings, s.admin_api_tokens)[0]["last_used_at"]) == T0 + dt.timedelta(
        seconds=61
    )
    assert use(new.token[:-1] + ("A" if new.token[-1] != "A" else "B"), T0) is None
    assert use("llmops_ab12cd34_" + "x" * 43, T0) is None  # an environment secret
    assert use(new.prefix, T0) is None
    assert run_in_store(settings, lambda c: auth.revoke_api_token(c, new.prefix))
    assert use(new.token, T0) is None
    assert not run_in_store(settings, lambda c: auth.revoke_api_token(c, new.prefix))


def test_bootstrap_admin_is_created_only_when_there_is_no_admin(settings: Settings) -> None:
    cheap = cheap_passwords()

    def boot(password: str) -> bool:
        return run_in_store(
            settings, lambda c: auth.ensure_bootstrap_admin(c, password, passwords=cheap)
        )

    with pytest.raises(ValueError, match="at least 12"):
        boot("short")
    assert boot(PASSWORD) is True
    assert boot("another long password") is False
    users = _rows(settings, s.admin_users)
    assert [u["username"] for u in users] == ["admin"]
    assert run_in_store(settings, lambda c: auth.verify_login(c, "admin", PASSWORD)) is not None


def test_record_audit_appends_an_entry(settings: Settings) -> None:
    run_in_store(
        settings,
        lambda c: record_audit(c, "cli", "config.update", "config", "chat", {"from": 1}, now=T0),
    )
    (entry,) = _rows(settings, s.audit_log)
    assert entry["actor"] == "cli" and entry["action"] == "config.update"
    assert entry["target_type"] == "config" and entry["target_id"] == "chat"
    assert entry["details"] == {"from": 1} and _utc(entry["created_at"]) == T0


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def set_cookies(self) -> dict[str, str]:
        """Set-Cookie headers by cookie name."""
        return {v.split("=", 1)[0]: v for k, v in self.headers if k.lower() == "set-cookie"}

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Browser:
    """Plain HTTP calls with a cookie jar; redirects are not followed."""

    gw: Gateway
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()
        for raw in reply.set_cookies().values():
            for name, morsel in SimpleCookie(raw).items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return reply

    def login(
        self,
        username: str,
        password: str,
        next_path: str = "",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        page = self.request("GET", "/llmops/login", headers=headers)
        assert page.status == 200, page.body
        form = {"csrf_token": self.cookies["llmops_login_csrf"], "next": next_path}
        return self.request(
            "POST",
            "/llmops/login",
            form={**form, "username": username, "password": password},
            headers=headers,
        )

    @property
    def csrf(self) -> str:
        token: str = self.request("GET", ME).json()["csrf_token"]
        return token


@pytest.fixture
def browser(gateway: Gateway) -> Browser:
    assert gateway.admin_token  # creates user TEST_ADMIN
    return Browser(gateway)


def test_login_sets_a_hardened_session_cookie_and_logout_ends_it(
    browser: Browser, gateway: Gateway
) -> None:
    page = browser.request("GET", "/llmops/login?next=/llmops/api/v1/me")
    assert page.status == 200 and b'name="password"' in page.body
    assert b'value="/llmops/api/v1/me"' in page.body
    assert page.header("cache-control") == "no-store"
    assert "frame-ancestors 'none'" in (page.header("content-security-policy") or "")
    assert b"http://" not in page.body and b"https://" not in page.body  # no external assets

    reply = browser.login(TEST_ADMIN, TEST_ADMIN_PASSWORD, next_path=ME)
    assert reply.status == 303 and reply.header("location") == ME
    cookie = reply.set_cookies()["llmops_session"]
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/llmops", "max-age=604800"} <= attributes
    assert "secure" not in attributes  # plain http, LLMOPS_COOKIE_SECURE unset
    token = browser.cookies["llmops_session"]
    (row,) = gateway.query(lambda c: c.execute(sa.select(s.admin_sessions)).all())
    assert row.id == hashlib.sha256(token.encode()).hexdigest()

    me = browser.request("GET", ME)
    assert me.status == 200
    assert me.json() | {"user_id": None, "csrf_token": None} == {
        "user_id": None,
        "username": TEST_ADMIN,
        "auth": "session",
        "actor": TEST_ADMIN,
        "token_prefix": None,
        "csrf_token": None,
    }
    assert me.json()["csrf_token"] == row.csrf_token
    assert browser.request("GET", "/llmops/login?next=/llmops/x").header("location") == "/llmops/x"
    entries = gateway.query(lambda c: c.execute(sa.select(s.audit_log)).all())
    assert [(e.actor, e.action) for e in entries] == [(TEST_ADMIN, "admin.login")]

    out = browser.request("POST", "/llmops/logout", form={"csrf_token": row.csrf_token})
    assert out.status == 303 and out.header("location") == "/llmops/login"
    assert "llmops_session" not in browser.cookies
    assert gateway.query(lambda c: c.execute(sa.select(s.admin_sessions)).all()) == []
    stale = Browser(gateway, {"llmops_session": token}).request("GET", ME)
    assert stale.status == 401


def test_login_refuses_bad_passwords_forged_forms_and_open_redirects(browser: Browser) -> None:
    for username, password in [(TEST_ADMIN, "wrong password!"), ("nobody", TEST_ADMIN_PASSWORD)]:
        reply = browser.login(username, password)
        assert reply.status == 401 and b"Invalid username or password" in reply.body
        assert "llmops_session" not in reply.set_cookies()
    forged = browser.request(
        "POST",
        "/llmops/login",
        form={"username": TEST_ADMIN, "password": TEST_ADMIN_PASSWORD, "csrf_token": "guess"},
    )
    assert forged.status == 403 and "llmops_session" not in forged.set_cookies()
    reply = browser.login(TEST_ADMIN, TEST_ADMIN_PASSWORD, next_path="//evil.example/x")
    assert reply.status == 303 and reply.header("location") == "/llmops/"


def test_failed_logins_are_rate_limited_per_client_address(browser: Browser) -> None:
    for _ in range(10):
        assert browser.login(TEST_ADMIN, "wrong password!").status == 401
    blocked = browser.login(TEST_ADMIN, TEST_ADMIN_PASSWORD)
    assert blocked.status == 429 and "llmops_session" not in blocked.set_cookies()
    assert 0 < int(blocked.header("retry-after") or 0) <= 60
    # Another address (uvicorn trusts X-Forwarded-For from 127.0.0.1, as from a local proxy).
    other = Browser(browser.gw).login(
        TEST_ADMIN, TEST_ADMIN_PASSWORD, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert other.status == 303


def test_session_cookie_is_secure_over_https_or_when_configured(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    assert gw.admin_token
    reply = Browser(gw).login(
        TEST_ADMIN, TEST_ADMIN_PASSWORD, headers={"X-Forwarded-Proto": "https"}
    )
    assert "; secure" in reply.set_cookies()["llmops_session"].lower()
    gw = gateway_factory(cookie_secure=True)
    assert gw.admin_token
    reply = Browser(gw).login(TEST_ADMIN, TEST_ADMIN_PASSWORD)
    assert "; secure" in reply.set_cookies()["llmops_session"].lower()


def test_idle_and_expired_sessions_are_refused(browser: Browser, gateway: Gateway) -> None:
    now = dt.datetime.now(dt.UTC)
    for column, value in [("last_seen_at", now - dt.timedelta(hours=13)), ("expires_at", now)]:
        assert browser.login(TEST_ADMIN, TEST_ADMIN_PASSWORD).status == 303
        assert browser.request("GET", ME).status == 200
        gateway.query(
            lambda c, k=column, v=value: c.execute(sa.update(s.admin_sessions).values({k: v}))
        )
        refused = browser.request("GET", ME)
        assert refused.status == 401, column
        assert refused.json()["error"]["type"] == "authentication_error"
        page = browser.request("GET", "/llmops/?tab=1", headers={"Accept": "text/html"})
        assert page.status == 303
        assert page.header("location") == "/llmops/login?next=%2Fllmops%2F%3Ftab%3D1"


def test_admin_api_tokens_authenticate_until_revoked(gateway: Gateway) -> None:
    browser = Browser(gateway)
    bearer = gateway.admin_headers
    me = browser.request("GET", ME, headers=bearer)
    prefix = auth.api_token_prefix(gateway.admin_token)
    assert me.status == 200 and me.json()["auth"] == "token"
    assert me.json()["actor"] == f"token:{prefix}" and me.json()["csrf_token"] is None
    assert browser.request("POST", ME, headers=bearer).status == 405  # no CSRF token needed
    for header in [
        f"Bearer {gateway.admin_token}x",
        f"Bearer {gateway.secret}",  # an environment secret is not an admin token
        f"Basic {gateway.admin_token}",
        "Bearer ",
    ]:
        refused = browser.request("GET", ME, headers={"Authorization": header})
        assert refused.status == 401, header
        assert refused.header("www-authenticate") == 'Bearer realm="llmops admin"'
        assert refused.json()["error"]["code"] == "admin_auth_required"
    assert gateway.query(lambda c: auth.revoke_api_token(c, prefix))
    assert browser.request("GET", ME, headers=bearer).status == 401


def test_cookie_authenticated_writes_need_the_session_csrf_token(browser: Browser) -> None:
    assert browser.login(TEST_ADMIN, TEST_ADMIN_PASSWORD).status == 303
    csrf = browser.csrf
    for headers, form in [
        ({}, None),
        ({"X-CSRF-Token": "wrong"}, None),
        ({}, {"csrf_token": "wrong"}),
        ({"Content-Type": "multipart/form-data; boundary=x"}, None),
    ]:
        refused = browser.request("POST", ME, headers=headers, form=form)
        assert refused.status == 403, (headers, form)
        assert refused.json()["error"]["code"] == "csrf_failed"
    for method in ("PUT", "PATCH", "DELETE"):
        assert browser.request(method, ME).status == 403
    # Accepted by the guard (then 405: /me is read-only).
    assert browser.request("POST", ME, headers={"X-CSRF-Token": csrf}).status == 405
    assert browser.request("DELETE", ME, headers={"X-CSRF-Token": csrf}).status == 405
    assert browser.request("POST", ME, form={"csrf_token": csrf, "a": "b"}).status == 405
    assert browser.request("GET", ME).status == 200
    # A proxy's Basic auth does not hide the session cookie.
    assert browser.request("GET", ME, headers={"Authorization": "Basic eDp5"}).status == 200


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        if isinstance(route, Mount):
            if route.routes:
                yield from _walk(list(route.routes), prefix + route.path)
            else:
                yield prefix + route.path + "/x", {"GET", "POST"}
        elif isinstance(route, Route):
            yield prefix + route.path, set(route.methods or {"GET"}) - {"HEAD"}
        elif isinstance(route, LazyRoutes):  # the management API, built on first use
            yield from _walk(route.routes, prefix)
        else:
            raise AssertionError(f"unexpected route type {route!r}")


PUBLIC_TREES = (GATEWAY_PREFIX + "/", "/v1/", "/llmops/static/")
PUBLIC_PATHS = ("/healthz", "/readyz", "/llmops/login")


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_TREES)


def test_every_route_refuses_anonymous_requests_unless_public(gateway: Gateway) -> None:
    app = gateway.server.server.config.app
    anonymous = Browser(gateway)
    refused = []
    for template, methods in _walk(list(app.routes)):
        path = re.sub(r"\{[^}]+\}", "x", template)
        if _is_public(path):
            continue
        for method in sorted(methods):
            reply = anonymous.request(method, path)
            assert reply.status == 401, (method, path, reply.status)
            assert reply.json()["error"]["type"] == "authentication_error"
            refused.append(path)
    assert {ME, "/llmops/logout", "/metrics"} <= set(refused)
    for path in ["/", "/llmops", "/llmops/", "/llmops/nope", "/llmops/loginx", "/llmops/login/x"]:
        assert anonymous.request("GET", path).status == 401, path
    for path in ["/v1x", "/x/v1", "/llmops/static/../api/v1/me", "/v1/../llmops/api/v1/me"]:
        assert anonymous.request("GET", path).status == 401, path
    # A browser is sent to the login page; HTMX is told where to go.
    page = anonymous.request("GET", "/llmops/requests", headers={"Accept": "text/html"})
    assert page.status == 303
    assert page.header("location") == "/llmops/login?next=%2Fllmops%2Frequests"
    hx = anonymous.request(
        "GET",
        "/llmops/requests",
        headers={"HX-Request": "true", "HX-Current-URL": "http://h/llmops/costs?d=7"},
    )
    assert hx.status == 401
    assert hx.header("hx-redirect") == "/llmops/login?next=%2Fllmops%2Fcosts%3Fd%3D7"
    assert anonymous.request("GET", "/healthz").status == 200
    assert anonymous.request("GET", "/llmops/login").status == 200
    assert anonymous.request("HEAD", "/llmops/login").status == 200
    assert anonymous.request("GET", GATEWAY_PREFIX + "/models").status == 401  # its own auth
    models = anonymous.request(
        "GET", "/v1/models", headers={"Authorization": f"Bearer {gateway.secret}"}
    )
    assert models.status == 200


def test_metrics_can_be_made_public(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(metrics_public=True)
    anonymous = Browser(gw)
    assert anonymous.request("GET", "/metrics").status == 200
    assert anonymous.request("GET", ME).status == 401


def test_bootstrap_admin_from_the_setting_can_log_in(gateway_factory: GatewayFactory) -> None:
    password = "bootstrap password 123"
    gw = gateway_factory(admin_password=password)
    assert password not in repr(gw.settings) and password not in str(gw.settings)
    browser = Browser(gw)
    assert browser.login("admin", password).status == 303
    assert browser.request("GET", ME).json()["username"] == "admin"
    with pytest.raises(ValueError, match="at least 12"):
        Settings.load({"LLMOPS_ADMIN_PASSWORD": "short"})


# --- CLI ----------------------------------------------------------------------------------------


def _cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    options = ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", "admin", *args, *options],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_creates_users_and_tokens_and_revokes_tokens(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    short = _cli(settings, "create", "alice", "--password-stdin", stdin="too short\n")
    assert short.returncode == 2 and "at least 12" in short.stderr
    created = _cli(settings, "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert PASSWORD not in created.stdout + created.stderr
    (user,) = _rows(settings, s.admin_users)
    assert user["username"] == "alice" and user["password_hash"].startswith("$argon2id$")
    assert run_in_store(settings, lambda c: auth.verify_login(c, "alice", PASSWORD)) is not None

    made = _cli(settings, "token", "create", "alice", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert auth.api_token_prefix(token) and "shown once" in made.stderr
    identity = run_in_store(settings, lambda c: auth.token_user(c, token, T0))
    assert identity is not None and identity.username == "alice"
    revoked = _cli(settings, "token", "revoke", identity.token_prefix or "")
    assert revoked.returncode == 0, revoked.stderr
    assert run_in_store(settings, lambda c: auth.token_user(c, token, T0)) is None

    # Error paths, in process.
    options = ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["admin", "create", "alice", "--password-stdin", *options]) == 1
    assert main(["admin", "token", "create", "bob", "--name", "x", *options]) == 1
    assert main(["admin", "token", "revoke", identity.token_prefix or "", *options]) == 1
    assert "already exists" in capsys.readouterr().err
    audit = [(e["actor"], e["action"]) for e in _rows(settings, s.audit_log)]
    assert sorted(audit) == [
        ("cli", "admin_token.create"),
        ("cli", "admin_token.revoke"),
        ("cli", "admin_user.create"),
    ]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
