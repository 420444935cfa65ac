"""Provider adapters, registered by provider type.

Built-in adapters register through the same ``register`` call a third-party adapter would use.
"""

from __future__ import annotations

from llmops.gateway.providers.anthropic import AnthropicAdapter
from llmops.gateway.providers.base import Adapter, StreamTranslator, UpstreamRequest
from llmops.gateway.providers.openai import AzureOpenAIAdapter, OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {}


def register(adapter: Adapter) -> None:
    ADAPTERS[adapter.provider_type] = adapter


for _adapter in (
    OpenAIAdapter("openai"),
    OpenAIAdapter("openai-compatible"),
    AzureOpenAIAdapter(),
    AnthropicAdapter(),
):
    register(_adapter)

__all__ = ["ADAPTERS", "Adapter", "StreamTranslator", "UpstreamRequest", "register"]
