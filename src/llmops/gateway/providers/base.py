"""The provider adapter interface.

Requests and responses between client and gateway are always in OpenAI's format. An adapter turns a
request body into the provider's HTTP request, and the provider's response (or stream) back into
OpenAI's format, reading the usage on the way. Adapters are stateless singletons; per-stream state
lives in the ``StreamTranslator`` each stream gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from llmops.gateway.snapshot import Credential
from llmops.observability.usage import Usage

# Gateway endpoint → path below the provider's base URL (OpenAI's layout).
PATHS = {
    "chat.completions": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
}


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes


class StreamTranslator(Protocol):
    """Per-stream state: turns upstream SSE bytes into the bytes the client gets."""

    usage: Usage | None
    # Set when the upstream stream carried an error event (the row records it).
    error_type: str | None
    # Events received so far: estimates the output when a cut-off stream never reported usage.
    chunks: int

    def feed(self, chunk: bytes) -> bytes:
        """Take bytes from upstream; return the bytes to send to the client now (maybe b"")."""
        ...

    def finish(self) -> bytes:
        """The upstream stream ended: return any final bytes for the client."""
        ...


class Adapter(Protocol):
    provider_type: str

    def supports(self, endpoint: str) -> bool: ...

    def build(
        self, endpoint: str, body: dict[str, Any], credential: Credential, stream: bool
    ) -> UpstreamRequest:
        """The upstream request for an OpenAI-format ``body`` (already routed and merged)."""
        ...

    def parse_response(self, endpoint: str, status: int, body: bytes) -> tuple[bytes, Usage | None]:
        """The client's response body for a non-streamed upstream response, and its usage."""
        ...

    def stream(self, endpoint: str, client_wants_usage: bool) -> StreamTranslator:
        """A translator for one streamed response."""
        ...
