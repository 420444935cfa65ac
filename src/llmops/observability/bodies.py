"""Stored request/response bodies (``LLMOPS_LOG_BODIES``): capped in size, secrets redacted.

Off by default: prompts and answers are often the most sensitive data a company has. When on,
each body is cut at ``max_logged_body_bytes`` (``truncated`` says so) and the values of JSON keys
that look like credentials are replaced before anything is written.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection

from llmops.observability.records import RequestRecord
from llmops.store import schema as s

_SECRET_KEY = re.compile(r"(api[_-]?key|password|secret|token|authorization)", re.IGNORECASE)
REDACTED = "[REDACTED]"


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_KEY.search(k) and isinstance(v, str) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _text(raw: bytes | bytearray | None, cap: int) -> tuple[str | None, bool]:
    if raw is None:
        return None, False
    truncated = len(raw) > cap
    data = bytes(raw[:cap])
    if not truncated:
        try:  # whole JSON bodies are redacted structurally
            return orjson.dumps(redact(orjson.loads(data))).decode(), False
        except orjson.JSONDecodeError:
            pass
    text = data.decode("utf-8", errors="replace").replace("\x00", "")
    return re.sub(
        r'("[^"]*(?:api[_-]?key|password|secret|token)[^"]*"\s*:\s*)"[^"]*"',
        rf'\1"{REDACTED}"',
        text,
        flags=re.IGNORECASE,
    ), truncated


def body_rows(records: Sequence[RequestRecord], cap: int) -> dict[uuid.UUID, dict[str, Any]]:
    """The llm_request_bodies rows of the records that captured bodies, by request id."""
    out: dict[uuid.UUID, dict[str, Any]] = {}
    for r in records:
        if not r.capture_bytes:
            continue
        request, t1 = _text(r.request_body, cap)
        response, t2 = _text(r.response_body, cap)
        out[r.id] = {
            "request_id": r.id,
            "created_at": r.created_at,
            "request_body": request,
            "response_body": response,
            "truncated": t1 or t2,
        }
    return out


def write_bodies(
    conn: Connection, rows: Mapping[uuid.UUID, dict[str, Any]], inserted: Sequence[Any]
) -> None:
    """Insert the bodies of the request rows just inserted (same transaction)."""
    params = [rows[r[0]] for r in inserted if r[0] in rows]
    if params:
        conn.execute(sa.insert(s.llm_request_bodies), params)


__all__ = ["REDACTED", "body_rows", "redact", "write_bodies"]
