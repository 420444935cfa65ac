"""One Settings object, built once at start-up and passed down.

Layers, later wins: defaults → ``LLMOPS_*`` environment variables (and ``DATABASE_URL``) →
CLI flags.
Nothing reads ``os.environ`` after start-up; provider keys named by ``api_key_env`` are read once
when the routing snapshot is built.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


class Secret:
    """A string setting that never shows itself: ``repr``, ``str`` and the docs print a mask.

    ``reveal()`` is the one way to read it, so each use is easy to find.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(Secret)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = _opt("127.0.0.1", "Address the server listens on.")
    port: int = _opt(3000, "Port the server listens on.")
    data_dir: Path = _opt(
        Path(".llmops"), "Directory for the SQLite file, secret key and spill files."
    )
    database_url: str = _opt(
        "", "SQLAlchemy-style URL; postgresql://… selects PostgreSQL. Empty: SQLite in data_dir."
    )
    secret_key: str = _opt(
        "", "Fernet key encrypting provider API keys at rest. Empty: generated into data_dir."
    )
    max_body_bytes: int = _opt(4 * 1024 * 1024, "Largest request body accepted (413 above it).")
    upstream_connect_timeout: float = _opt(10.0, "Seconds to connect to a provider (504 after).")
    upstream_timeout: float = _opt(
        600.0, "Seconds to wait for a provider's response headers, or between stream chunks."
    )
    upstream_pool_size: int = _opt(512, "Most open connections to providers per worker.")
    snapshot_ttl: float = _opt(
        2.0, "Seconds between checks for routing changes made by other processes."
    )
    flush_interval_ms: int = _opt(2000, "Longest time a request log row waits in memory.")
    max_batch_size: int = _opt(100, "Rows written per flush at most.")
    max_queue_size: int = _opt(100_000, "Rows held in memory before spilling to disk.")
    indexed_tags: str = _opt(
        "tenantSlug,feature",
        "Comma-separated tag keys that get tag rollups (fast per-value summaries and breakdowns).",
    )
    log_bodies: bool = _opt(False, "Store request and response bodies (off by default).")
    max_logged_body_bytes: int = _opt(
        32_768, "Largest body stored per request when logging bodies."
    )
    log_level: str = _opt("info", "Server log level.")
    admin_password: Secret = _opt(
        Secret(),
        "Password of a user `admin` created at start-up if no admin user exists yet "
        "(at least 12 characters; never logged).",
    )
    metrics_public: bool = _opt(
        False, "Serve /metrics without admin authentication (else send an admin API token)."
    )
    cookie_secure: bool = _opt(
        False,
        "Always mark the session cookie Secure (it is on https requests anyway); set it behind "
        "a TLS proxy that does not send X-Forwarded-Proto.",
    )
    session_idle_timeout: int = _opt(
        12 * 3600, "Seconds of inactivity after which a dashboard session ends."
    )
    session_max_age: int = _opt(7 * 24 * 3600, "Seconds after login at which a session ends.")
    login_rate_limit: int = _opt(
        10, "Failed dashboard logins allowed per client address per minute (429 beyond)."
    )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "llmops.db"

    @property
    def indexed_tag_keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.indexed_tags.split(",") if k.strip())

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql"))

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from defaults, then ``env`` (default ``os.environ``), then ``overrides``.

        ``overrides`` whose value is None are ignored, so CLI flags can be passed straight through.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"LLMOPS_{f.name.upper()}")
            if raw is None and f.name == "database_url":
                raw = env.get("DATABASE_URL")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f, raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = _coerce(_field(name), value) if isinstance(value, str) else value
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1–65535, got {self.port}")
        for name in (
            "max_body_bytes",
            "upstream_pool_size",
            "max_batch_size",
            "max_queue_size",
            "session_idle_timeout",
            "session_max_age",
            "login_rate_limit",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.database_url and not (self.is_postgres or self.database_url.startswith("sqlite")):
            raise ValueError("database_url must start with postgresql:// or sqlite://")
        if self.admin_password:
            from llmops.admin.auth import MIN_PASSWORD_LENGTH

            if len(self.admin_password.reveal()) < MIN_PASSWORD_LENGTH:
                raise ValueError(
                    f"LLMOPS_ADMIN_PASSWORD must be at least {MIN_PASSWORD_LENGTH} characters"
                )


def _field(name: str) -> dataclasses.Field[Any]:
    for f in dataclasses.fields(Settings):
        if f.name == name:
            return f
    raise TypeError(f"unknown setting {name!r}")


def _coerce(f: dataclasses.Field[Any], raw: str) -> Any:
    kind: type[Any] = type(f.default)
    try:
        if kind is bool:
            return raw.lower() in ("1", "true", "yes", "on")
        if kind in (int, float):
            return kind(raw)
        if kind is str:
            return raw
        if kind is Secret:
            return Secret(raw)
        return Path(raw)
    except ValueError:
        raise ValueError(
            f"LLMOPS_{f.name.upper()}: expected {kind.__name__}, got {raw!r}"
        ) from None


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting — used by docs and `--help`."""
    return [
        (f"LLMOPS_{f.name.upper()}", str(f.default), f.metadata["help"])
        for f in dataclasses.fields(Settings)
    ]


def markdown() -> str:
    """docs/settings.md; regenerate with ``python -m llmops.settings > docs/settings.md``."""
    lines = [
        "# Settings",
        "",
        "Layered: defaults, then environment variables, then `llmops` command-line flags.",
        "`DATABASE_URL` is accepted as well as `LLMOPS_DATABASE_URL`.",
        "",
        "| Variable | Default | Meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | `{default}` | {text} |" for name, default, text in describe()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
