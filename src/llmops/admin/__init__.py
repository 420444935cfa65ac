"""Management: config-as-code (`llmops apply`) and, later, the management API."""
