"""Secrets: environment secrets (hashed) and provider API keys (encrypted at rest).

Environment secrets are 256-bit random tokens, ``llmops_<prefix>_<rest>``. The database keeps the
prefix (to find and display the secret) and a SHA-256 of the whole token: for a token with 256 bits
of entropy a fast hash is as safe as a slow one, and the gateway must check it on every request
without spending milliseconds of CPU (argon2 is for human passwords). The check compares digests in
constant time.

Provider API keys are encrypted with Fernet (AES-128-CBC + HMAC) under ``LLMOPS_SECRET_KEY``; when
that is unset a key is generated once into the data directory with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as _secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

SECRET_PREFIX = "llmops_"
_PREFIX_CHARS = 8


@dataclass(frozen=True, slots=True)
class NewSecret:
    token: str  # shown once, never stored
    prefix: str
    digest: str


def new_secret() -> NewSecret:
    public = _secrets.token_hex(_PREFIX_CHARS // 2)
    token = f"{SECRET_PREFIX}{public}_{_secrets.token_urlsafe(32)}"
    return NewSecret(token=token, prefix=secret_prefix(token) or "", digest=hash_secret(token))


def secret_prefix(token: str) -> str | None:
    """The public part of a token (``llmops_ab12cd34``), or None if the token is malformed."""
    if not token.startswith(SECRET_PREFIX):
        return None
    end = len(SECRET_PREFIX) + _PREFIX_CHARS
    if len(token) <= end or token[end] != "_":
        return None
    return token[:end]


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def secret_matches(token: str, digest: str) -> bool:
    return hmac.compare_digest(hash_secret(token), digest)


class Keyring:
    """Encrypts and decrypts provider API keys."""

    def __init__(self, key: str | bytes):
        self._fernet = Fernet(key)

    @classmethod
    def load(cls, secret_key: str, data_dir: Path) -> Keyring:
        """Use ``secret_key``, else the key file in ``data_dir``, else generate that file."""
        if secret_key:
            return cls(secret_key)
        path = data_dir / "secret.key"
        if path.exists():
            return cls(path.read_bytes().strip())
        data_dir.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return cls(key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "a provider API key cannot be decrypted: LLMOPS_SECRET_KEY differs from the key "
                "it was stored with"
            ) from None
