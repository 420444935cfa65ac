"""Admin identities: users with argon2id passwords, dashboard sessions and admin API tokens.

Domain only, no HTTP: plain functions of a SQLAlchemy ``Connection`` (run them with
``Store.run``), each taking the time as an argument where time matters.

- **Passwords** are argon2id hashes made by argon2-cffi's ``PasswordHasher`` at its defaults
  (``Passwords()``). Tests may hand ``Passwords`` a cheaper hasher; nothing else does. A login for
  an unknown username verifies a dummy hash of the same cost, so the response time does not reveal
  which usernames exist. A hash made with weaker parameters than the current ones is replaced at
  the next successful login.
- **Sessions** are random cookie values; the database keeps only their SHA-256 (the row id) and a
  per-session CSRF token. A session ends after ``idle`` without use (sliding) or at ``expires_at``
  (absolute), whichever comes first.
- **API tokens** look like ``llmops_admin_<8 hex>_<random>``. As for environment secrets
  (``keys.py``) the public prefix finds the row and a SHA-256 of the whole token is compared in
  constant time: a fast hash is right for 256-bit random tokens.
- Activity times (``last_seen_at``, ``last_used_at``) are written at most once a minute, so that
  an open dashboard does not turn every read into a write.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection

from llmops.ids import uuid7
from llmops.keys import hash_secret
from llmops.store import schema as s
from llmops.store import upsert_insert

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
TOKEN_PREFIX = "llmops_admin_"
BOOTSTRAP_USERNAME = "admin"
SESSION_IDLE = dt.timedelta(hours=12)
SESSION_MAX_AGE = dt.timedelta(days=7)

_PREFIX_HEX = 8
_TOUCH_EVERY = dt.timedelta(minutes=1)
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
# A hash of a random password at argon2-cffi's default parameters: verifying it costs what
# verifying a real user's hash costs, without hashing anything at start-up.
_DEFAULT_DUMMY = (
    "$argon2id$v=19$m=65536,t=3,p=4$RdaexG7PCAOGNpWvRMQNGA"
    "$mEyjahh/zoHuTpHTjUBfQmakNXiNEmNlWWcwgeCjATc"
)


class Passwords:
    """Hashes and verifies passwords. ``Passwords()`` uses argon2-cffi's defaults."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        if self.hasher.check_needs_rehash(_DEFAULT_DUMMY):
            self._dummy = self.hasher.hash(secrets.token_urlsafe(24))
        else:
            self._dummy = _DEFAULT_DUMMY

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, digest: str | None, password: str) -> bool:
        """Whether ``password`` matches ``digest``; with no digest, spend the same time and fail."""
        try:
            return self.hasher.verify(digest or self._dummy, password) and bool(digest)
        except (VerificationError, InvalidHashError):
            return False

    def rehash(self, digest: str, password: str) -> str | None:
        """A new hash if ``digest`` was made with other parameters than the current ones."""
        return self.hasher.hash(password) if self.hasher.check_needs_rehash(digest) else None


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    username: str


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    user: User
    password_hash: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """Who is making an admin request, and how they proved it."""

    user_id: uuid.UUID
    username: str
    method: str  # "session" or "token"
    token_prefix: str | None = None
    csrf_token: str | None = None  # sessions only

    @property
    def actor(self) -> str:
        """The audit-log actor: the username, or ``token:<prefix>`` for an API token."""
        return f"token:{self.token_prefix}" if self.token_prefix else self.username


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # the cookie value; never stored
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NewApiToken:
    token: str  # shown once, never stored
    prefix: str
    id: uuid.UUID


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")


def create_user(
    conn: Connection,
    username: str,
    password: str,
    *,
    passwords: Passwords | None = None,
    now: dt.datetime | None = None,
) -> User:
    """Create an admin user; ValueError for a bad username, a short password or a taken name."""
    if not _USERNAME.fullmatch(username):
        raise ValueError(
            "a username is 1–64 letters, digits or _.@- and starts with a letter or digit"
        )
    check_password_policy(password)
    if find_user(conn, username) is not None:
        raise ValueError(f"admin user {username!r} already exists")
    user = User(uuid7(), username)
    conn.execute(
        sa.insert(s.admin_users).values(
            id=user.id,
            username=username,
            password_hash=(passwords or Passwords()).hash(password),
            created_at=now or dt.datetime.now(dt.UTC),
        )
    )
    return user


def find_user(conn: Connection, username: str) -> User | None:
    row = conn.execute(
        sa.select(s.admin_users.c.id, s.admin_users.c.username).where(
            s.admin_users.c.username == username
        )
    ).first()
    return User(row.id, row.username) if row else None


def find_login(conn: Connection, username: str) -> LoginCandidate | None:
    """The user named ``username`` with their password hash, for ``check_login``."""
    u = s.admin_users.c
    row = conn.execute(
        sa.select(u.id, u.username, u.password_hash, u.disabled_at).where(u.username == username)
    ).first()
    if row is None:
        return None
    return LoginCandidate(
        User(row.id, row.username), row.password_hash, row.disabled_at is not None
    )


def check_login(passwords: Passwords, candidate: LoginCandidate | None, password: str) -> bool:
    """Verify a password (CPU-bound: call it off the event loop). Unknown users cost the same."""
    ok = passwords.verify(candidate.password_hash if candidate else None, password)
    return ok and candidate is not None and not candidate.disabled


def set_password_hash(conn: Connection, user_id: uuid.UUID, digest: str) -> None:
    conn.execute(
        sa.update(s.admin_users).where(s.admin_users.c.id == user_id).values(password_hash=digest)
    )


def verify_login(
    conn: Connection, username: str, password: str, *, passwords: Passwords | None = None
) -> User | None:
    """The user if ``password`` is theirs and they are not disabled, else None.

    Servers should split this (``find_login``, ``check_login`` in a thread, ``set_password_hash``)
    so that hashing does not hold a database connection or the event loop.
    """
    passwords = passwords or Passwords()
    candidate = find_login(conn, username)
    if not check_login(passwords, candidate, password) or candidate is None:
        return None
    new_hash = passwords.rehash(candidate.password_hash, password)
    if new_hash:
        set_password_hash(conn, candidate.user.id, new_hash)
    return candidate.user


def create_session(
    conn: Connection,
    user_id: uuid.UUID,
    now: dt.datetime,
    *,
    max_age: dt.timedelta = SESSION_MAX_AGE,
    idle: dt.timedelta = SESSION_IDLE,
) -> NewSession:
    """Start a session for ``user_id`` (and clear out sessions that have ended)."""
    c = s.admin_sessions.c
    conn.execute(
        sa.delete(s.admin_sessions).where((c.expires_at <= now) | (c.last_seen_at <= now - idle))
    )
    session = NewSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + max_age)
    conn.execute(
        sa.insert(s.admin_sessions).values(
            id=hash_secret(session.token),
            user_id=user_id,
            created_at=now,
            expires_at=session.expires_at,
            last_seen_at=now,
            csrf_token=session.csrf_token,
        )
    )
    return session


def session_user(
    conn: Connection, token: str, now: dt.datetime, *, idle: dt.timedelta = SESSION_IDLE
) -> AdminIdentity | None:
    """The identity behind a session cookie, or None if it is unknown, idle too long or expired.

    Each use pushes the idle deadline forward (written at most once a minute)."""
    if not token or len(token) > 256:
        return None
    digest = hash_secret(token)
    c, u = s.admin_sessions.c, s.admin_users.c
    row = conn.execute(
        sa.select(c.id, c.expires_at, c.last_seen_at, c.csrf_token, u.id.label("user_id"))
        .add_columns(u.username, u.disabled_at)
        .join(s.admin_users, u.id == c.user_id)
        .where(c.id == digest)
    ).first()
    if row is None or not hmac.compare_digest(row.id, digest):
        return None
    last_seen = _utc(row.last_seen_at)
    if row.disabled_at is not None or now >= _utc(row.expires_at) or now >= last_seen + idle:
        conn.execute(sa.delete(s.admin_sessions).where(c.id == digest))
        return None
    if now - last_seen >= _TOUCH_EVERY:
        conn.execute(sa.update(s.admin_sessions).where(c.id == digest).values(last_seen_at=now))
    return AdminIdentity(row.user_id, row.username, "session", csrf_token=row.csrf_token)


def delete_session(conn: Connection, token: str) -> bool:
    """End a session (logout); False if it did not exist."""
    digest = hash_secret(token)
    result = conn.execute(sa.delete(s.admin_sessions).where(s.admin_sessions.c.id == digest))
    return result.rowcount > 0


def create_api_token(
    conn: Connection, user_id: uuid.UUID, name: str, *, now: dt.datetime | None = None
) -> NewApiToken:
    """Create an admin API token acting as ``user_id``. The token is returned once, never stored."""
    name = name.strip()
    if not 0 < len(name) <= 200:
        raise ValueError("a token name is 1–200 characters")
    public = secrets.token_hex(_PREFIX_HEX // 2)
    token = f"{TOKEN_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    new = NewApiToken(token, TOKEN_PREFIX + public, uuid7())
    conn.execute(
        sa.insert(s.admin_api_tokens).values(
            id=new.id,
            user_id=user_id,
            name=name,
            prefix=new.prefix,
            token_hash=hash_secret(token),
            created_at=now or dt.datetime.now(dt.UTC),
        )
    )
    return new


def api_token_prefix(token: str) -> str | None:
    """The public part of an admin token (``llmops_admin_ab12cd34``), or None if malformed."""
    end = len(TOKEN_PREFIX) + _PREFIX_HEX
    if not token.startswith(TOKEN_PREFIX) or len(token) <= end + 1 or token[end] != "_":
        return None
    return token[:end]


def token_user(conn: Connection, token: str, now: dt.datetime) -> AdminIdentity | None:
    """The identity behind an admin API token, or None if unknown, revoked or its user disabled."""
    prefix = api_token_prefix(token)
    if prefix is None or len(token) > 256:
        return None
    t, u = s.admin_api_tokens.c, s.admin_users.c
    row = conn.execute(
        sa.select(t.id, t.token_hash, t.last_used_at, t.revoked_at, t.user_id)
        .add_columns(u.username, u.disabled_at)
        .join(s.admin_users, u.id == t.user_id)
        .where(t.prefix == prefix)
    ).first()
    if row is None or not hmac.compare_digest(hash_secret(token), row.token_hash):
        return None
    if row.revoked_at is not None or row.disabled_at is not None:
        return None
    if row.last_used_at is None or now - _utc(row.last_used_at) >= _TOUCH_EVERY:
        conn.execute(sa.update(s.admin_api_tokens).where(t.id == row.id).values(last_used_at=now))
    return AdminIdentity(row.user_id, row.username, "token", token_prefix=prefix)


def revoke_api_token(conn: Connection, prefix: str, *, now: dt.datetime | None = None) -> bool:
    """Revoke the token with this prefix; False if there is no such live token."""
    t = s.admin_api_tokens.c
    result = conn.execute(
        sa.update(s.admin_api_tokens)
        .where(t.prefix == prefix, t.revoked_at.is_(None))
        .values(revoked_at=now or dt.datetime.now(dt.UTC))
    )
    return result.rowcount > 0


def ensure_bootstrap_admin(
    conn: Connection,
    password: str,
    *,
    passwords: Passwords | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Create user ``admin`` with ``password`` if there is no admin user at all; True if created.

    Safe when several processes start at once: the loser's insert does nothing."""
    if conn.execute(sa.select(sa.exists().select_from(s.admin_users))).scalar():
        return False
    check_password_policy(password)
    insert = upsert_insert(conn.dialect.name, s.admin_users).values(
        id=uuid7(),
        username=BOOTSTRAP_USERNAME,
        password_hash=(passwords or Passwords()).hash(password),
        created_at=now or dt.datetime.now(dt.UTC),
    )
    result = conn.execute(insert.on_conflict_do_nothing(index_elements=["username"]))
    return bool(result.rowcount)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value  # SQLite: naive UTC
