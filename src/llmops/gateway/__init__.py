"""The gateway: OpenAI-compatible endpoints that authenticate, route, forward and log."""
