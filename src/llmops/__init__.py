"""LLMOps: an OpenAI-compatible LLM gateway that records exactly what every request cost."""

from llmops.settings import Settings

__version__ = "0.1.0"

__all__ = ["Settings", "__version__"]
