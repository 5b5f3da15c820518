"""The named API endpoints (being written: see issue 4)."""

from __future__ import annotations

from ollamastack.core import ServiceHandle
from ollamastack.settings import Settings


def register_api(settings: Settings, service: ServiceHandle) -> None:
    """Register every endpoint inside the open Blocks."""
