"""Testing a provider credential: list the provider's models with the credential's key.

The request goes through the gateway's shared upstream session, with the headers the gateway would
send, to the provider's cheapest authenticated endpoint:

- OpenAI and OpenAI-compatible: ``GET {base_url}/models``;
- Anthropic: ``GET {base_url}/models`` (base URL ``…/v1``), with ``x-api-key`` and
  ``anthropic-version``;
- Azure: ``GET {resource}/openai/v1/models``, or ``GET {resource}/openai/models?api-version=…``
  when ``options.api_version`` is set (the deployment-style API).

The answer says whether the provider accepted the key; an error message never contains the key.
"""

from __future__ import annotations

import time

import aiohttp
import orjson

from llmops.admin.models import ConnectionTest
from llmops.gateway.providers.anthropic import DEFAULT_VERSION
from llmops.gateway.providers.openai import AzureOpenAIAdapter, OpenAIAdapter
from llmops.gateway.snapshot import Credential

PROBE_TIMEOUT = 5.0
_MAX_ERROR = 300


def probe_request(cred: Credential) -> tuple[str, dict[str, str]]:
    """The URL and headers that test ``cred``."""
    if cred.provider_type == "anthropic":
        headers = {
            "anthropic-version": str(cred.options.get("anthropic_version", DEFAULT_VERSION)),
        }
        if cred.api_key:
            headers["x-api-key"] = cred.api_key
        extra = cred.options.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return cred.base_url.rstrip("/") + "/models", headers
    if cred.provider_type == "azure":
        headers = AzureOpenAIAdapter().headers(cred)
        base = cred.base_url.removesuffix("/openai/v1").removesuffix("/openai")
        version = cred.options.get("api_version")
        url = (
            f"{base}/openai/models?api-version={version}" if version else f"{base}/openai/v1/models"
        )
    else:
        headers = OpenAIAdapter(cred.provider_type).headers(cred)
        url = cred.base_url.rstrip("/") + "/models"
    headers.pop("content-type", None)
    headers["accept"] = "application/json"
    return url, headers


async def probe(
    session: aiohttp.ClientSession, cred: Credential, timeout: float = PROBE_TIMEOUT
) -> ConnectionTest:
    url, headers = probe_request(cred)
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            status = resp.status
            body = await resp.content.read(64 * 1024)
            if status >= 400:
                error = _error_message(body) or resp.reason or f"HTTP {status}"
    except TimeoutError:
        error = f"no answer within {timeout:g}s"
    except aiohttp.ClientError as e:
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    latency = round((time.perf_counter() - started) * 1000)
    if error is not None and cred.api_key:
        error = error.replace(cred.api_key, "***")
    if error is not None:
        error = error[:_MAX_ERROR]
    ok = error is None and status is not None and 200 <= status < 300
    return ConnectionTest(ok=ok, status=status, latency_ms=latency, error=error)


def _error_message(body: bytes) -> str | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip() or None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None
