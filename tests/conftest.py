"""Shared fixtures."""

from collections.abc import Iterator

import pytest
from gradio_client import Client

from tests.support.api_helpers import OllamaView, Served
from tests.support.ollama_server import FakeOllama
from tests.support.postgres_server import PostgresServer, postgres_bin


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


# For modules that share one launched app: each defines a module-scoped `served` fixture.


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeOllama]:
    """One Ollama-protocol server for a whole module, with `llama3.2` (tools-capable)."""
    server = FakeOllama()
    server.add_model("llama3.2", capabilities=("completion", "tools"))
    with server:
        yield server


@pytest.fixture(scope="module")
def client(served: Served) -> Client:
    """A gradio_client connected to the module's app."""
    return Client(served.url, verbose=False)


@pytest.fixture(scope="module")
def ann(served: Served) -> Client:
    """Logged in as ann, where the module's app has logins ("ann:pw-ann,bob:pw-bob,...")."""
    return Client(served.url, auth=("ann", "pw-ann"), verbose=False)


@pytest.fixture(scope="module")
def bob(served: Served) -> Client:
    """Logged in as bob (password "pw-bob")."""
    return Client(served.url, auth=("bob", "pw-bob"), verbose=False)


@pytest.fixture
def ollama(shared_server: FakeOllama) -> Iterator[OllamaView]:
    """This test's view of the module's server: its own requests, a clean queue."""
    with OllamaView.of(shared_server) as view:
        yield view
