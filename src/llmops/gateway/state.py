"""What the gateway's handlers share, built once by ``create_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from llmops.gateway.providers import ADAPTERS, Adapter
from llmops.gateway.snapshot import SnapshotHolder
from llmops.observability.writer import BatchWriter
from llmops.settings import Settings


@dataclass
class GatewayState:
    settings: Settings
    snapshots: SnapshotHolder
    writer: BatchWriter
    adapters: Mapping[str, Adapter] = field(default_factory=lambda: dict(ADAPTERS))
    # Created in the lifespan, before the first request (a lazy client made it take 0.8 s).
    session: aiohttp.ClientSession | None = None
