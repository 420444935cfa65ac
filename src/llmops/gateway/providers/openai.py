"""OpenAI, Azure OpenAI and every OpenAI-compatible endpoint: bodies pass through unchanged,
except that streams ask for usage and ``metadata`` is kept back from providers that reject it."""

from __future__ import annotations

from typing import Any

import orjson

from llmops.gateway.providers.base import PATHS, UpstreamRequest
from llmops.gateway.providers.sse import EventSplitter, event_data
from llmops.gateway.snapshot import Credential
from llmops.observability import usage as u
from llmops.observability.usage import Usage

_JSON = "application/json"


def prepare_body(
    endpoint: str, body: dict[str, Any], credential: Credential, stream: bool
) -> bytes:
    """Ask a stream for its usage, and drop ``metadata`` unless the provider takes it.

    OpenAI accepts ``metadata`` only with ``store: true``; most compatible providers reject unknown
    fields. A credential may opt in with ``options.forward_metadata: true``.
    """
    if "metadata" in body and not (
        credential.options.get("forward_metadata") or body.get("store") is True
    ):
        del body["metadata"]
    if stream and endpoint in ("chat.completions", "completions"):
        opts = body.get("stream_options")
        body["stream_options"] = (
            {**opts, "include_usage": True} if isinstance(opts, dict) else {"include_usage": True}
        )
    return orjson.dumps(body)


class OpenAIAdapter:
    def __init__(self, provider_type: str):
        self.provider_type = provider_type

    def supports(self, endpoint: str) -> bool:
        return endpoint in PATHS

    def headers(self, credential: Credential) -> dict[str, str]:
        headers = {"content-type": _JSON, "accept": "application/json, text/event-stream"}
        if credential.api_key:
            headers["authorization"] = f"Bearer {credential.api_key}"
        extra = credential.options.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return headers

    def url(self, endpoint: str, body: dict[str, Any], credential: Credential) -> str:
        return credential.base_url + PATHS[endpoint]

    def build(
        self, endpoint: str, body: dict[str, Any], credential: Credential, stream: bool
    ) -> UpstreamRequest:
        url = self.url(endpoint, body, credential)
        return UpstreamRequest(
            url, self.headers(credential), prepare_body(endpoint, body, credential, stream)
        )

    def parse_response(self, endpoint: str, status: int, body: bytes) -> tuple[bytes, Usage | None]:
        if status >= 400:
            return body, None
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body, None
        return body, u.from_body(endpoint, parsed)

    def stream(self, endpoint: str, client_wants_usage: bool) -> OpenAIStream:
        return OpenAIStream(endpoint, strip_usage=not client_wants_usage)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: ``api-key`` header; deployment URLs when ``options.api_version`` is set
    (``options.deployments`` maps model → deployment, default the model name), else the v1 API."""

    def __init__(self) -> None:
        super().__init__("azure")

    def headers(self, credential: Credential) -> dict[str, str]:
        headers = super().headers(credential)
        if "authorization" in headers:
            headers["api-key"] = headers.pop("authorization").removeprefix("Bearer ")
        return headers

    def url(self, endpoint: str, body: dict[str, Any], credential: Credential) -> str:
        base = credential.base_url.removesuffix("/openai/v1").removesuffix("/openai")
        version = credential.options.get("api_version")
        if not version:
            return f"{base}/openai/v1{PATHS[endpoint]}"
        model = str(body.get("model", ""))
        deployments = credential.options.get("deployments") or {}
        deployment = deployments.get(model, model) if isinstance(deployments, dict) else model
        return f"{base}/openai/deployments/{deployment}{PATHS[endpoint]}?api-version={version}"


class OpenAIStream:
    """Passes OpenAI-format events through, reading usage from the final usage chunk (chat,
    completions) or ``response.completed`` (Responses API). The usage chunk the gateway asked for
    on the client's behalf is removed again."""

    __slots__ = ("_splitter", "_responses", "_strip", "usage", "error_type", "chunks")

    def __init__(self, endpoint: str, strip_usage: bool):
        self._splitter = EventSplitter()
        self._responses = endpoint == "responses"
        self._strip = strip_usage and not self._responses
        self.usage: Usage | None = None
        self.error_type: str | None = None
        self.chunks = 0

    def feed(self, chunk: bytes) -> bytes:
        events = self._splitter.feed(chunk)
        if not events:
            return b""
        self.chunks += len(events)
        out = []
        for event in events:
            if self._inspect(event):
                out.append(event)
        return b"\n\n".join(out) + b"\n\n" if out else b""

    def finish(self) -> bytes:
        rest = self._splitter.rest()
        if rest.strip() and self._inspect(rest):
            return rest + b"\n\n"
        return b""

    def _inspect(self, event: bytes) -> bool:
        """Read usage or errors from ``event``; return whether to forward it."""
        if self._responses:
            if (
                b"response.completed" in event
                or b"response.incomplete" in event
                or b"response.failed" in event
            ):
                obj = _json(event_data(event))
                resp = obj.get("response") if isinstance(obj, dict) else None
                if isinstance(resp, dict):
                    self.usage = u.from_responses(resp.get("usage")) or self.usage
                    if obj.get("type") == "response.failed":
                        self.error_type = "response_failed"
            elif b'"type":"error"' in event or b"event: error" in event:
                self.error_type = "upstream_stream_error"
            return True
        if b'"usage"' in event:
            obj = _json(event_data(event))
            if isinstance(obj, dict) and isinstance(obj.get("usage"), dict):
                self.usage = u.from_openai(obj["usage"])
                if self._strip and not obj.get("choices"):
                    return False
        elif b'"error"' in event and event.startswith(b'data: {"error"'):
            self.error_type = "upstream_stream_error"
        return True


def _json(data: bytes | None) -> Any:
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
