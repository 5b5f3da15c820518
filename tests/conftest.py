"""Shared fixtures."""

from collections.abc import Iterator

import pytest
from ollama_server import FakeOllama
from postgres_server import PostgresServer, postgres_bin


@pytest.fixture
def ollama_server() -> Iterator[FakeOllama]:
    """A running Ollama-protocol server with `llama3.2` (tools-capable) installed."""
    server = FakeOllama()
    server.add_model("llama3.2", capabilities=("completion", "tools"))
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the run (Debian's package); each test takes a new database."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; make test adds it)")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
