"""Observability: the request record, usage extraction, cost and the batch writer."""
