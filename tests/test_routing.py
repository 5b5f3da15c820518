"""Several Ollama instances: two test servers play two GPUs' Ollamas.

A session's turns all reach one instance (its context cache stays warm there), sessions spread
over the instances, and a session moves only when its instance refuses the connection: the turn
is retried on the next instance and the session stays there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gradio_client import Client
from langchain_core.tools import tool

from ollamastack.agent.graph import build_agent
from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.agent.tools import build_tools
from ollamastack.engines.factory import open_engines
from ollamastack.engines.ollama.client import OllamaClient
from ollamastack.engines.ollama.pool import OllamaPool, connect, rendezvous_order
from ollamastack.errors import OllamaConnectionLost, OllamaUnavailable
from ollamastack.events import Done, TextDelta, ToolCall, ToolResult, TurnError
from ollamastack.settings import Settings
from ollamastack.storage.memory import open_memory
from tests.support.api_helpers import serve
from tests.support.chat_helpers import (
    assistant,
    assistant_calls,
    closed_port_url,
    make_settings,
    run_turn,
    system,
    tool_message,
    user,
)
from tests.support.ollama_server import FakeOllama, split_words


@pytest.fixture
def gpus() -> Iterator[list[FakeOllama]]:
    """Two running Ollama instances with `llama3.2`."""
    servers = [FakeOllama(), FakeOllama()]
    for server in servers:
        server.add_model("llama3.2", capabilities=("completion", "tools"))
        server.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def hosts(servers: list[FakeOllama]) -> str:
    return ",".join(server.url for server in servers)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.sqlite'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
async def service(gpus: list[FakeOllama]) -> AsyncIterator[ChatService]:
    async with open_chat_service(make_settings(gpus[0], ollama_host=hosts(gpus))) as chat:
        yield chat


def home(session_id: str, servers: list[FakeOllama]) -> tuple[FakeOllama, FakeOllama]:
    """The session's instance and the other one."""
    first = rendezvous_order(session_id, [s.url for s in servers])[0]
    mine = next(s for s in servers if s.url == first)
    return mine, next(s for s in servers if s is not mine)


def words(text: str) -> list[TextDelta]:
    return [TextDelta(w) for w in split_words(text)]


# Settings


def test_ollama_host_lists_the_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu0:11434, http://gpu1:11434/,gpu0")
    settings = Settings(_env_file=None)
    assert settings.ollama_host == "http://gpu0:11434"  # the primary
    assert settings.ollama_hosts == ("http://gpu0:11434", "http://gpu1:11434")
    monkeypatch.setenv("OLLAMA_HOST", "gpu0:11434")
    assert Settings(_env_file=None).ollama_hosts == ("http://gpu0:11434",)
    assert Settings(_env_file=None, ollama_host="a:1,b:2").ollama_hosts == (
        "http://a:1", "http://b:2")


async def test_one_instance_is_one_plain_client_and_several_a_pool() -> None:
    single = connect(Settings(_env_file=None, ollama_host="gpu0"))
    pool = connect(Settings(_env_file=None, ollama_host="gpu0,gpu1"))
    try:
        assert type(single) is OllamaClient
        assert single.url == "http://gpu0:11434"
        assert isinstance(pool, OllamaPool)
        assert pool.urls == ["http://gpu0:11434", "http://gpu1:11434"]
        assert pool.url == "http://gpu0:11434"
    finally:
        await single.close()
        await pool.close()


# Routing, without a server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_moved_session_stays_and_a_down_instance_is_retried_later() -> None:
    urls = ["http://gpu0:11434", "http://gpu1:11434", "http://gpu2:11434"]
    clock = Clock()
    pool = OllamaPool([OllamaClient(url) for url in urls], retry_after=10, clock=clock)
    try:
        alice, carol = "alice-chat", "carol-chat"  # gpu1 then gpu0; gpu0 then gpu2
        assert [pool.instance_for(alice), pool.instance_for(carol)] == [urls[1], urls[0]]

        assert pool.move(alice, urls[1], tried=[urls[1]]) == urls[0]  # its second choice
        assert not pool.is_up(urls[1])
        assert pool.instance_for(alice) == urls[0]
        clock.now += 11  # gpu1 is tried again by its sessions, but alice stays on gpu0
        assert pool.is_up(urls[1])
        assert pool.instance_for(alice) == urls[0]

        # Carol's gpu0 is marked down: she goes on to gpu2 without trying gpu0 first.
        assert pool.move(alice, urls[0], tried=[urls[0]]) == urls[1]  # back to its first
        assert pool.instance_for(carol) == urls[2]
        clock.now += 11
        assert pool.instance_for(carol) == urls[2]
        assert pool.instance_for(alice) == urls[1]
        # Every instance refused this turn: nowhere left to go.
        assert pool.move(alice, urls[1], tried=urls) is None
    finally:
        await pool.close()


# Routing with two instances


async def test_a_sessions_turns_all_reach_its_instance_and_sessions_spread(
    service: ChatService, gpus: list[FakeOllama]
) -> None:
    sessions = [await service.new_session() for _ in range(12)]
    for turn in ("first", "second", "third"):
        for i, session in enumerate(sessions):
            events = await run_turn(service, f"session {i} {turn}", session_id=session)
            assert isinstance(events[-1], Done)

    served = {
        i: {gpu.url for gpu in gpus for r in gpu.chat_requests
            if r["messages"][-1]["content"].startswith(f"session {i} ")}
        for i in range(len(sessions))
    }
    # Each session on one instance: the first of its order, which every app process agrees on.
    assert served == {i: {home(session, gpus)[0].url} for i, session in enumerate(sessions)}
    assert {url for urls in served.values() for url in urls} == {gpu.url for gpu in gpus}


async def test_when_its_instance_stops_a_session_moves_to_the_other_and_stays(
    gpus: list[FakeOllama], database_url: str
) -> None:
    settings = make_settings(gpus[0], ollama_host=hosts(gpus), database_url=database_url)
    async with open_chat_service(settings) as service:
        session = await service.new_session()
        mine, other = home(session, gpus)
        await run_turn(service, "My name is Ada.", session_id=session)
        mine.stop()

        events = await run_turn(service, "What is my name?", session_id=session)

        assert events[:-1] == words("You said: What is my name?")
        assert isinstance(events[-1], Done)
        assert [r["messages"] for r in mine.chat_requests] == [
            [system(), user("My name is Ada.")]]
        assert other.chat_requests == [{**other.chat_requests[0], "messages": [
            system(),
            user("My name is Ada."),
            assistant("You said: My name is Ada."),
            user("What is my name?"),
        ]}]

        mine.start()  # back on the same port: the session stays where its context is warm
        await run_turn(service, "Thanks.", session_id=session)
        await run_turn(service, "Bye.", session_id=session)

        assert len(mine.chat_requests) == 1
        assert [r["messages"][-1] for r in other.chat_requests] == [
            user("What is my name?"), user("Thanks."), user("Bye.")]
        # The retry resumed the turn: its message is stored once.
        assert [(type(m).__name__, m.text) for m in await service.history(session)] == [
            ("HumanMessage", "My name is Ada."),
            ("AIMessage", "You said: My name is Ada."),
            ("HumanMessage", "What is my name?"),
            ("AIMessage", "You said: What is my name?"),
            ("HumanMessage", "Thanks."),
            ("AIMessage", "You said: Thanks."),
            ("HumanMessage", "Bye."),
            ("AIMessage", "You said: Bye."),
        ]


async def test_a_connection_cut_mid_answer_does_not_move_the_session(
    service: ChatService, gpus: list[FakeOllama]
) -> None:
    session = await service.new_session()
    mine, other = home(session, gpus)
    mine.enqueue_cut("Half an", after_chunks=2)

    events = await run_turn(service, "Tell me", session_id=session)
    assert events[:-1] == words("Half an")
    assert isinstance(events[-1], TurnError)
    assert isinstance(events[-1].error, OllamaConnectionLost)

    await run_turn(service, "Again", session_id=session)
    assert [r["messages"][-1] for r in mine.chat_requests] == [user("Tell me"), user("Again")]
    assert other.chat_requests == []


async def test_when_every_instance_is_down_the_turn_fails_naming_them(
    service: ChatService, gpus: list[FakeOllama]
) -> None:
    session = await service.new_session()
    await run_turn(service, "Hello", session_id=session)  # capabilities are known now
    for gpu in gpus:
        gpu.stop()

    events = await run_turn(service, "Anyone there?", session_id=session)

    [error] = events
    assert isinstance(error, TurnError) and isinstance(error.error, OllamaUnavailable)
    mine, other = home(session, gpus)
    assert str(error.error) == str(OllamaUnavailable(f"{mine.url}, {other.url}"))
    history = await service.history(session)
    assert [(type(m).__name__, m.text) for m in history[2:]] == [
        ("HumanMessage", "Anyone there?"), ("AIMessage", "")]
    assert history[-1].response_metadata == {"interrupted": str(error.error)}


async def test_a_tool_result_is_kept_when_the_instance_stops_before_the_answer(
    gpus: list[FakeOllama],
) -> None:
    """The retry resumes from the last checkpoint: the tool does not run again."""
    settings = make_settings(gpus[0], ollama_host=hosts(gpus))
    calls: list[str] = []

    @tool(parse_docstring=True)
    def unplug(gpu: str) -> str:
        """Stop an Ollama instance.

        Args:
            gpu: Its URL.
        """
        calls.append(gpu)
        next(g for g in gpus if g.url == gpu).stop()
        return "unplugged"

    engines = open_engines(settings)
    async with open_memory(settings) as memory:
        tools = [*build_tools(settings), unplug]
        graph = build_agent(settings, memory.checkpointer, tools, engines)
        service = ChatService(settings, graph, memory, engines)
        session = await service.new_session()
        mine, other = home(session, gpus)
        mine.enqueue_tool_call("unplug", {"gpu": mine.url})
        other.enqueue_text("It is unplugged.")

        events = await run_turn(service, "Unplug your GPU", session_id=session)
    await engines.close()

    assert calls == [mine.url]
    assert events[:2] == [ToolCall(events[0].id, "unplug", {"gpu": mine.url}),
                          ToolResult(events[0].id, "unplug", "unplugged")]
    assert events[2:-1] == words("It is unplugged.")
    assert isinstance(events[-1], Done)
    [answer] = other.chat_requests
    assert answer["messages"][1:] == [
        user("Unplug your GPU"),
        assistant_calls(("unplug", {"gpu": mine.url})),
        tool_message("unplugged", "unplug"),
    ]


# What the UI and API see


async def test_health_and_models_come_from_the_first_instance_that_is_up(
    service: ChatService, gpus: list[FakeOllama]
) -> None:
    primary, second = gpus
    assert (await service.ollama.health()).url == primary.url
    primary.stop()

    health = await service.ollama.health()
    assert (health.reachable, health.url) == (True, second.url)
    assert [m.name for m in await service.ollama.list_models()] == ["llama3.2:latest"]
    steps = [step.status async for step in service.ollama.pull("qwen3:8b")]
    assert steps[-1] == "success"
    assert [m.name for m in second.models] == ["llama3.2:latest", "qwen3:8b"]

    second.stop()
    down = await service.ollama.health()
    assert (down.reachable, down.url) == (False, primary.url)
    with pytest.raises(OllamaUnavailable) as error:
        await service.ollama.list_models()
    assert str(error.value) == str(OllamaUnavailable(f"{primary.url}, {second.url}"))


async def test_a_new_session_starts_on_an_instance_that_is_up(gpus: list[FakeOllama]) -> None:
    settings = make_settings(gpus[0], ollama_host=f"{closed_port_url()},{gpus[1].url}")
    async with open_chat_service(settings) as service:
        for i in range(6):
            events = await run_turn(service, f"Hello {i}")
            assert isinstance(events[-1], Done)
    assert [r["messages"][-1] for r in gpus[1].chat_requests] == [
        user(f"Hello {i}") for i in range(6)]


def test_the_app_over_two_instances_serves_chat_models_and_health_when_one_is_down(
    gpus: list[FakeOllama], tmp_path: Path
) -> None:
    primary, second = gpus
    with serve(primary, tmp_path, ollama_host=hosts(gpus)) as served:
        client = Client(served.url, verbose=False)
        primary.stop()

        assert client.predict(api_name="/health") == {
            "status": "ok", "ollama_url": second.url, "ollama_version": "0.12.6", "models": 1,
            "default_model": "llama3.2", "embedded_model": ""}
        assert [m["name"] for m in client.predict(api_name="/models")] == ["llama3.2:latest"]
        for i in range(4):  # new sessions: those whose first choice is down start on the other
            reply = client.predict(f"Hello {i}", api_name="/chat")
            assert (reply["content"], reply["done"]) == (f"You said: Hello {i}", True)
    assert [r["messages"][-1] for r in second.chat_requests] == [
        user(f"Hello {i}") for i in range(4)]
