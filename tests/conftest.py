"""Shared fixtures."""

from collections.abc import Iterator

import pytest
from ollama_server import FakeOllama


@pytest.fixture
def ollama_server() -> Iterator[FakeOllama]:
    """A running Ollama-protocol server with `llama3.2` (tools-capable) installed."""
    server = FakeOllama()
    server.add_model("llama3.2", capabilities=("completion", "tools"))
    with server:
        yield server
