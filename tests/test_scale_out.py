"""The scale-out topology with real processes, as `docker compose --profile scale` runs it:
app processes (`python app.py`) sharing one PostgreSQL, and nginx (deploy/nginx.conf) in front
of them with sticky sessions, telling them each client's address.

Each app process talks to its own test Ollama server, so the requests a server received tell
which process served a turn, and what memory that process had.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from ollamastack.errors import DatabaseUnavailable
from ollamastack.settings import Settings
from ollamastack.storage.memory import open_memory
from ollamastack.web.audit import AUDIT_FILE
from ollamastack.web.http import HEALTH_SECONDS
from tests.support.api_helpers import OllamaView
from tests.support.app_process import AppProcess
from tests.support.chat_helpers import assistant, system, user
from tests.support.deploy_helpers import (
    free_port,
    nginx_binary,
    render_nginx_conf,
    request,
    start_nginx,
    stop,
)
from tests.support.ollama_server import FakeOllama
from tests.support.postgres_server import PostgresServer, postgres_bin

# As the scale-out lines of .env.example set it: nginx is the way in, and names the client.
BEHIND_NGINX = {"OLLAMASTACK_TRUSTED_PROXIES": "*"}


@dataclass
class App:
    process: AppProcess
    ollama: FakeOllama


def fake_ollama() -> FakeOllama:
    server = FakeOllama()
    server.add_model("llama3.2", capabilities=("completion", "tools"))
    return server.start()


@pytest.fixture(scope="module")
def apps(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[App]]:
    """Two app processes on one PostgreSQL database, each with its own Ollama; started together."""
    database = postgres.new_database()
    apps: list[App] = []
    try:
        for name in ("first", "second"):
            ollama = fake_ollama()
            data = tmp_path_factory.mktemp(name) / "data"
            process = AppProcess(ollama.url, data, env=BEHIND_NGINX, database_url=database)
            apps.append(App(process, ollama))
            process.launch()
        for app in apps:
            assert app.process.wait_healthy()["status"] == "ok"
        yield apps
    finally:
        for app in apps:
            app.process.stop()
            app.ollama.stop()


@pytest.fixture
def views(apps: list[App]) -> Iterator[list[OllamaView]]:
    """What each app's Ollama receives during the test; both apps run when it starts (one that
    an earlier test stopped is started again)."""
    stopped = [app.process for app in apps if not app.process.running]
    for process in stopped:
        process.stop()  # reaps one that exited
        process.launch()
    for process in stopped:
        process.wait_healthy()
    with OllamaView.of(apps[0].ollama) as first, OllamaView.of(apps[1].ollama) as second:
        yield [first, second]


def answer(reply: dict[str, Any]) -> tuple[str, bool]:
    return reply["content"], reply["done"]


def test_a_conversation_started_on_one_process_continues_on_the_other(
    apps: list[App], views: list[OllamaView]
) -> None:
    first, second = (Client(app.process.url, verbose=False) for app in apps)

    started = first.predict("My name is Ada.", api_name="/chat")
    session = started["session_id"]
    continued = second.predict("What is my name?", session, api_name="/chat")

    assert answer(started) == ("You said: My name is Ada.", True)
    assert (continued["session_id"], *answer(continued)) == (
        session, "You said: What is my name?", True)
    assert [r["messages"] for r in views[0].chat_requests] == [
        [system(), user("My name is Ada.")]]
    assert [r["messages"] for r in views[1].chat_requests] == [[
        system(),
        user("My name is Ada."),
        assistant("You said: My name is Ada."),
        user("What is my name?"),
    ]]
    # and the first process reads what the second one stored
    assert first.predict(session, api_name="/history") == [
        {"role": "user", "content": "My name is Ada.", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "You said: My name is Ada."},
        {"role": "user", "content": "What is my name?", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "You said: What is my name?"},
    ]
    assert session in [s["session_id"] for s in second.predict(api_name="/sessions")]


@pytest.fixture
def nginx(apps: list[App], tmp_path: Path) -> Iterator[int]:
    """deploy/nginx.conf in front of the two app processes (their loopback ports stand for
    `server app:7860 resolve`, which Debian's nginx 1.22 lacks); its port."""
    binary = nginx_binary(resolve=False)
    port = free_port()
    site = render_nginx_conf([app.process.address for app in apps], port)
    process = start_nginx(binary, tmp_path, site, port)
    try:
        yield port
    finally:
        stop(process)


def test_behind_nginx_a_client_stays_on_one_process_and_moves_when_it_stops(
    apps: list[App], views: list[OllamaView], nginx: int
) -> None:
    client = Client(f"http://127.0.0.1:{nginx}", verbose=False)
    session = client.predict("One", api_name="/chat")["session_id"]
    for message in ("Two", "Three"):
        assert answer(client.predict(message, session, api_name="/chat")) == (
            f"You said: {message}", True)

    [(serving, served)] = [(a, v) for a, v in zip(apps, views, strict=True) if v.chat_requests]
    [(other, other_view)] = [(a, v) for a, v in zip(apps, views, strict=True) if a is not serving]
    assert [r["messages"][1:] for r in served.chat_requests][-1] == [
        user("One"), assistant("You said: One"),
        user("Two"), assistant("You said: Two"),
        user("Three"),
    ]

    serving.process.stop()
    newcomer = Client(f"http://127.0.0.1:{nginx}", verbose=False)  # served by the other
    assert answer(newcomer.predict("Four", session, api_name="/chat")) == ("You said: Four", True)
    fresh = newcomer.predict("Hello", api_name="/chat")

    assert answer(fresh) == ("You said: Hello", True)
    assert fresh["session_id"] != session
    assert [r["messages"][1:] for r in other_view.chat_requests] == [
        [
            user("One"), assistant("You said: One"),
            user("Two"), assistant("You said: Two"),
            user("Three"), assistant("You said: Three"),
            user("Four"),
        ],
        [user("Hello")],
    ]
    assert other.process.running


async def test_replicas_opening_a_new_database_together_all_succeed(
    postgres: PostgresServer,
) -> None:
    """`--scale app=3` on a new database: each replica creates the tables on its first request;
    unserialised, all but one failed on duplicate keys."""
    settings = Settings(_env_file=None, database_url=postgres.new_database())

    async def open_and_create() -> str:
        async with open_memory(settings) as memory:
            return await memory.sessions.create("")

    sessions = await asyncio.gather(*(open_and_create() for _ in range(3)))
    async with open_memory(settings) as memory:
        assert {s.id for s in await memory.sessions.list("")} == set(sessions)


def audit(app: App) -> list[dict[str, Any]]:
    """The records of the app's audit log so far."""
    path = app.process.data_dir / AUDIT_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_behind_nginx_the_apps_know_each_clients_own_address(
    apps: list[App], views: list[OllamaView], nginx: int
) -> None:
    """What the rate limit counts without login: each client's address, not nginx's, and not
    one that a client made up (nginx replaces X-Forwarded-For, so the apps may trust it)."""
    before = [len(audit(app)) for app in apps]
    for client in ("127.0.0.5", "127.0.0.6"):
        status, _, posted = request(
            nginx, "POST", "/gradio_api/call/sessions", body=b'{"data": []}', source=client,
            headers={"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9"})
        assert status == 200, posted
        event = json.loads(posted)["event_id"]
        status, _, stream = request(nginx, "GET", f"/gradio_api/call/sessions/{event}",
                                    source=client)
        assert (status, stream.split(b"\n")[0]) == (200, b"event: complete")

    deadline = time.monotonic() + 5  # a record is written just after its reply
    while sum(len(audit(app)) for app in apps) < sum(before) + 2:
        assert time.monotonic() < deadline, [audit(app) for app in apps]
        time.sleep(0.02)
    new = [r for app, n in zip(apps, before, strict=True) for r in audit(app)[n:]]
    assert sorted((r["client"], r["endpoint"], r["outcome"]) for r in new) == [
        ("127.0.0.5", "/sessions", "ok"), ("127.0.0.6", "/sessions", "ok")]


def database_down(where: str) -> str:
    return str(DatabaseUnavailable(where, "REASON")).split(" (REASON)")[0]


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed "
                    "(Debian package postgresql; make test adds it)")
def test_while_postgresql_is_down_healthz_says_so_at_once_and_the_app_serves_once_it_is_up(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    """A real PostgreSQL, stopped (its port chosen, nothing listening yet): the pool would wait
    30 s for a connection, /healthz answers within HEALTH_SECONDS, well inside the image's
    HEALTHCHECK (4 s), with JSON that says why; then the database comes up, and when it goes
    down again /healthz says so."""
    database = PostgresServer()
    app = AppProcess(ollama_server.url, tmp_path / "app" / "data", database_url=database.url)
    started = False
    try:
        app.start()  # serves HTTP without its database
        assert b"OllamaStack" in app.get("/")  # the page needs no database
        for _ in range(3):
            began = time.monotonic()
            status, headers, body = request(app.port, "GET", "/healthz")
            took = time.monotonic() - began
            assert (status, headers["Content-Type"]) == (200, "application/json")
            health = json.loads(body)
            assert health["status"] == "unavailable"
            where = f"127.0.0.1:{database.port}/{database.database}"
            assert health["reason"].startswith(database_down(where))
            assert "Connection refused" in health["reason"]
            assert health["reason"].endswith("or fix OLLAMASTACK_DATABASE_URL.")
            assert took < HEALTH_SECONDS + 1.5 < 4, took
        database.start()
        started = True
        assert app.wait_healthy()["status"] == "ok"
        reply = Client(app.url, verbose=False).predict("Hello", api_name="/chat")
        assert answer(reply) == ("You said: Hello", True)

        database.stop()  # down again, with the chat service open: /healthz sees it
        started = False
        health = json.loads(request(app.port, "GET", "/healthz")[2])
        assert health["status"] == "unavailable"
        assert health["reason"].startswith(database_down(where))
    finally:
        app.stop()
        if started:
            database.stop()
        else:
            shutil.rmtree(database.directory, ignore_errors=True)
    assert "Exception in ASGI application" not in app.output(), app.output()  # no 500
