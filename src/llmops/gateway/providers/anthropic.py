"""Anthropic Messages API, translated to and from OpenAI's chat completions format. (Stub: being
implemented.)"""

from __future__ import annotations

from typing import Any

from llmops.errors import InvalidRequest
from llmops.gateway.providers.base import UpstreamRequest
from llmops.gateway.snapshot import Credential
from llmops.observability.usage import Usage


class AnthropicAdapter:
    provider_type = "anthropic"

    def supports(self, endpoint: str) -> bool:
        return endpoint == "chat.completions"

    def build(
        self, endpoint: str, body: dict[str, Any], credential: Credential, stream: bool
    ) -> UpstreamRequest:
        raise InvalidRequest("anthropic is not implemented yet")

    def parse_response(self, endpoint: str, status: int, body: bytes) -> tuple[bytes, Usage | None]:
        raise NotImplementedError

    def stream(self, endpoint: str, client_wants_usage: bool) -> Any:
        raise NotImplementedError
