"""Chat turns through `ChatService`: options per request, memory, typed errors, bad input,
and stopping a turn halfway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from ollamastack.agent.graph import build_agent
from ollamastack.agent.sealing import CUT_OFF
from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.agent.tools import build_tools
from ollamastack.engines.factory import open_engines
from ollamastack.errors import (
    ModelNotFound,
    OllamaConnectionLost,
    OllamaError,
    OllamaTimeout,
    OllamaUnavailable,
    SessionNotFound,
)
from ollamastack.events import INTERRUPTED_TOOL, Done, Started, TextDelta, ToolCall, TurnError
from ollamastack.settings import DEFAULT_SYSTEM_PROMPT
from ollamastack.storage.memory import open_memory
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
from tests.support.ollama_server import FakeOllama


@pytest.fixture
async def service(ollama_server: FakeOllama) -> AsyncIterator[ChatService]:
    async with open_chat_service(make_settings(ollama_server, max_message_chars=100)) as chat:
        yield chat


def stored(messages: list) -> list[tuple[str, str]]:
    return [(type(m).__name__, m.text) for m in messages]


# What reaches Ollama per request


async def test_settings_are_the_defaults_of_each_request(ollama_server: FakeOllama):
    settings = make_settings(
        ollama_server, model="mistral", temperature=0.3, num_ctx=4096, history_tokens=3000,
        system_prompt="You are terse.",
    )  # fmt: skip
    ollama_server.add_model("mistral")
    async with open_chat_service(settings) as service:
        await run_turn(service, "Hello")

    (request,) = ollama_server.chat_requests
    assert request["model"] == "mistral"
    assert request["options"] == {"temperature": 0.3, "num_ctx": 4096}
    assert request["messages"] == [system("You are terse."), user("Hello")]


async def test_each_request_can_override_model_temperature_and_prompt(
    service: ChatService, ollama_server: FakeOllama
):
    ollama_server.add_model("qwen3:8b")
    await run_turn(service, "One")
    await run_turn(service, "Two", model="qwen3:8b", temperature=1.5, system_prompt="Be brief.")
    await run_turn(service, "Three", temperature=0)
    await run_turn(service, "Four", system_prompt="   ")  # blank: the default prompt

    assert [
        (r["model"], r["options"], r["messages"][0]["content"])
        for r in ollama_server.chat_requests
    ] == [
        ("llama3.2", {"temperature": 0.7, "num_ctx": 8192}, DEFAULT_SYSTEM_PROMPT),
        ("qwen3:8b", {"temperature": 1.5, "num_ctx": 8192}, "Be brief."),
        ("llama3.2", {"temperature": 0.0, "num_ctx": 8192}, DEFAULT_SYSTEM_PROMPT),
        ("llama3.2", {"temperature": 0.7, "num_ctx": 8192}, DEFAULT_SYSTEM_PROMPT),
    ]


# Memory


async def test_a_session_remembers_and_sessions_are_isolated(
    service: ChatService, ollama_server: FakeOllama
):
    ollama_server.enqueue_text("Hello Alice!")
    first = await run_turn(service, "My name is Alice.")
    session = first[-1].session_id
    ollama_server.enqueue_text("Your name is Alice.")
    await run_turn(service, "What is my name?", session_id=session)
    ollama_server.enqueue_text("I don't know.")
    other = await run_turn(service, "What is my name?")

    assert other[-1].session_id != session
    assert [r["messages"][1:] for r in ollama_server.chat_requests] == [
        [user("My name is Alice.")],
        [user("My name is Alice."), assistant("Hello Alice!"), user("What is my name?")],
        [user("What is my name?")],
    ]
    assert stored(await service.history(session)) == [
        ("HumanMessage", "My name is Alice."),
        ("AIMessage", "Hello Alice!"),
        ("HumanMessage", "What is my name?"),
        ("AIMessage", "Your name is Alice."),
    ]
    assert stored(await service.history(other[-1].session_id)) == [
        ("HumanMessage", "What is my name?"),
        ("AIMessage", "I don't know."),
    ]


# Errors become typed events


async def test_ollama_down_before_the_turn(ollama_server: FakeOllama):
    url = closed_port_url()
    settings = make_settings(ollama_server, ollama_host=url)
    async with open_chat_service(settings) as service:
        events = await run_turn(service, "Hello")
        assert await service.sessions() == []

    (event,) = events
    assert event == TurnError("", event.error)
    assert isinstance(event.error, OllamaUnavailable)
    assert str(event.error) == (
        f"Ollama is not reachable at {url}. Start it with `ollama serve` "
        "(or `docker compose up ollama`), or point OLLAMA_HOST at a running server."
    )


async def test_unknown_model(service: ChatService, ollama_server: FakeOllama):
    (event,) = await run_turn(service, "Hello", model="llama9:70b")

    assert isinstance(event, TurnError)
    assert isinstance(event.error, ModelNotFound)
    assert str(event.error) == (
        "Model 'llama9:70b' is not installed in Ollama. "
        "Pull it with `ollama pull llama9:70b` or from the Models tab."
    )
    assert ollama_server.chat_requests == []
    assert await service.sessions() == []


async def test_model_removed_behind_our_back(service: ChatService, ollama_server: FakeOllama):
    session = (await run_turn(service, "Hello"))[-1].session_id  # capabilities now cached
    ollama_server.remove_model("llama3.2")

    (event,) = await run_turn(service, "Still there?", session_id=session)

    assert event == TurnError(session, event.error)
    assert isinstance(event.error, ModelNotFound)
    assert event.error.model == "llama3.2"


async def test_ollama_error_status(service: ChatService, ollama_server: FakeOllama):
    ollama_server.enqueue_error(500, "model requires more system memory than is available")

    events = await run_turn(service, "Hello")

    (event,) = events
    assert isinstance(event.error, OllamaError)
    assert (str(event.error), event.error.status_code) == (
        "Ollama reported an error: model requires more system memory than is available",
        500,
    )
    assert stored(await service.history(event.session_id)) == [
        ("HumanMessage", "Hello"),
        ("AIMessage", ""),
    ]


async def test_error_inside_the_stream_keeps_the_partial_answer(
    service: ChatService, ollama_server: FakeOllama
):
    ollama_server.enqueue_stream_error("llama runner process has terminated", text="Half an answer")

    events = await run_turn(service, "Hello")

    assert events[:-1] == [TextDelta("Half")]
    assert isinstance(events[-1].error, OllamaError)
    assert str(events[-1].error) == "Ollama reported an error: llama runner process has terminated"
    history = await service.history(events[-1].session_id)
    assert stored(history) == [("HumanMessage", "Hello"), ("AIMessage", "Half")]
    assert history[-1].response_metadata == {"interrupted": str(events[-1].error)}


async def test_cut_connection_keeps_a_valid_conversation(
    service: ChatService, ollama_server: FakeOllama
):
    ollama_server.enqueue_cut("The answer is cut here", after_chunks=3)

    events = await run_turn(service, "Hello")
    session = events[-1].session_id

    assert events[:-1] == [TextDelta("The"), TextDelta(" answer"), TextDelta(" is")]
    assert events[-1] == TurnError(session, events[-1].error)
    assert isinstance(events[-1].error, OllamaConnectionLost)
    assert str(events[-1].error) == (
        f"The connection to Ollama at {ollama_server.url} was lost in the middle of the answer "
        "(did the server stop or crash?). Try again."
    )
    history = await service.history(session)
    assert stored(history) == [("HumanMessage", "Hello"), ("AIMessage", "The answer is")]
    assert history[-1].response_metadata == {"interrupted": str(events[-1].error)}

    ollama_server.enqueue_text("Complete answer.")
    again = await run_turn(service, "Try again", session_id=session)

    assert isinstance(again[-1], Done)
    assert ollama_server.chat_requests[-1]["messages"][1:] == [
        user("Hello"),
        assistant("The answer is"),
        user("Try again"),
    ]


async def test_cut_after_a_tool_round_leaves_no_open_tool_call(
    service: ChatService, ollama_server: FakeOllama
):
    ollama_server.enqueue_tool_call("calculator", {"expression": "6*7"})
    ollama_server.enqueue_cut("The result is 42", after_chunks=2)

    events = await run_turn(service, "What is 6*7?")
    session = events[-1].session_id

    assert isinstance(events[-1].error, OllamaConnectionLost)
    history = await service.history(session)
    assert stored(history) == [
        ("HumanMessage", "What is 6*7?"),
        ("AIMessage", ""),
        ("ToolMessage", "42"),
        ("AIMessage", "The result"),
    ]
    assert history[2].tool_call_id == history[1].tool_calls[0]["id"]

    await run_turn(service, "And 7*8?", session_id=session)
    assert ollama_server.chat_requests[-1]["messages"][1:] == [
        user("What is 6*7?"),
        assistant_calls(("calculator", {"expression": "6*7"})),
        tool_message("42"),
        assistant("The result"),
        user("And 7*8?"),
    ]


async def test_timeout_while_the_model_loads(ollama_server: FakeOllama):
    settings = make_settings(ollama_server, request_timeout=0.2)
    async with open_chat_service(settings) as service:
        ollama_server.enqueue_text("Too late.", first_byte_delay=5)
        events = await run_turn(service, "Hello")

    (event,) = events
    assert isinstance(event.error, OllamaTimeout)
    assert str(event.error) == (
        f"Ollama at {ollama_server.url} sent nothing for 0.2 s (the model may still be "
        "loading). Try again, or raise OLLAMASTACK_REQUEST_TIMEOUT."
    )


async def test_ollama_restart_needs_no_new_service(
    service: ChatService, ollama_server: FakeOllama
):
    first = await run_turn(service, "Hello")
    session = first[-1].session_id
    ollama_server.stop()

    down = await run_turn(service, "Still there?", session_id=session)

    assert down == [TurnError(session, down[0].error)]
    assert isinstance(down[0].error, OllamaUnavailable)
    ollama_server.start()
    ollama_server.enqueue_text("Back again.")
    back = await run_turn(service, "Now?", session_id=session)

    assert back[:-1] == [TextDelta("Back"), TextDelta(" again.")]
    assert back[-1] == Done(session, back[-1].stats)
    assert stored(await service.history(session)) == [
        ("HumanMessage", "Hello"),
        ("AIMessage", "You said: Hello"),
        ("HumanMessage", "Still there?"),
        ("AIMessage", ""),
        ("HumanMessage", "Now?"),
        ("AIMessage", "Back again."),
    ]


# Bad input: the table of test_bad_input.py runs through this core, the API and the page


async def test_unknown_session_is_not_found(service: ChatService, ollama_server: FakeOllama):
    unknown = str(uuid.uuid4())

    with pytest.raises(SessionNotFound) as raised:
        await run_turn(service, "Hello", session_id=unknown)

    assert str(raised.value) == f"No conversation with id {unknown} was found."
    assert ollama_server.requests == []
    assert await service.sessions() == []


# Stopping a turn halfway

COUNTING = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
)  # at 20 tokens/s, a second of answer still to come when the test stops it


async def test_closing_the_stream_stores_the_partial_answer(
    service: ChatService, ollama_server: FakeOllama
):
    ollama_server.token_rate = 20  # the answer is still streaming when we stop
    ollama_server.enqueue_text(COUNTING)
    stream = service.stream_turn("Count to ten")
    assert isinstance(await anext(stream), Started)
    received = [await anext(stream), await anext(stream)]
    await stream.aclose()

    assert received == [TextDelta("one"), TextDelta(" two")]
    (session,) = await service.sessions()
    history = await service.history(session.id)
    assert stored(history) == [("HumanMessage", "Count to ten"), ("AIMessage", "one two")]
    assert history[-1].response_metadata == {"interrupted": "stopped by the user"}
    await asyncio.to_thread(
        ollama_server.wait_until, lambda: ollama_server.requests[-1].disconnected
    )

    ollama_server.token_rate = None
    again = await run_turn(service, "Go on", session_id=session.id)

    assert isinstance(again[-1], Done)
    assert ollama_server.chat_requests[-1]["messages"][1:] == [
        user("Count to ten"),
        assistant("one two"),
        user("Go on"),
    ]


async def test_cancelling_the_task_stores_the_partial_answer(
    service: ChatService, ollama_server: FakeOllama
):
    ollama_server.token_rate = 20
    ollama_server.enqueue_text(COUNTING)
    received: list = []
    second = asyncio.Event()

    async def consume() -> None:
        async for event in service.stream_turn("Count to ten"):
            received.append(event)
            if len(received) == 3:  # Started and two chunks
                second.set()

    task = asyncio.create_task(consume())
    await second.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    (session,) = await service.sessions()
    history = await service.history(session.id)
    # The task may have read one more chunk before it saw the cancellation.
    assert stored(history) in (
        [("HumanMessage", "Count to ten"), ("AIMessage", "one two")],
        [("HumanMessage", "Count to ten"), ("AIMessage", "one two three")],
    )
    assert history[-1].response_metadata == {"interrupted": "stopped by the user"}


@tool(parse_docstring=True)
async def wait_forever(topic: str) -> str:
    """A tool that never answers.

    Args:
        topic: Anything.
    """
    await asyncio.Event().wait()
    return "never"


@pytest.fixture
async def waiting_service(ollama_server: FakeOllama) -> AsyncIterator[ChatService]:
    """A service whose agent also has `wait_forever`."""
    settings = make_settings(ollama_server)
    engines = open_engines(settings)
    async with open_memory(settings) as memory:
        tools = [*build_tools(settings), wait_forever]
        yield ChatService(settings, build_agent(settings, memory.checkpointer, tools, engines),
                          memory, engines)
    await engines.close()


async def test_stopping_during_a_tool_closes_the_tool_call(
    waiting_service: ChatService, ollama_server: FakeOllama
):
    service = waiting_service
    ollama_server.enqueue_tool_call("wait_forever", {"topic": "x"})
    stream = service.stream_turn("Wait")
    assert isinstance(await anext(stream), Started)
    call = await anext(stream)
    await stream.aclose()

    assert call == ToolCall(call.id, "wait_forever", {"topic": "x"})
    (session,) = await service.sessions()
    history = await service.history(session.id)
    assert stored(history) == [
        ("HumanMessage", "Wait"),
        ("AIMessage", ""),
        ("ToolMessage", INTERRUPTED_TOOL),
        ("AIMessage", ""),
    ]
    assert [call["id"] for call in history[1].tool_calls] == [call.id]
    assert (history[2].tool_call_id, history[2].status) == (call.id, "error")
    assert history[3].response_metadata == {"interrupted": "stopped by the user"}

    events = await run_turn(service, "Never mind", session_id=session.id)

    assert isinstance(events[-1], Done)
    assert ollama_server.chat_requests[-1]["messages"][1:] == [
        user("Wait"),
        assistant_calls(("wait_forever", {"topic": "x"})),
        tool_message(INTERRUPTED_TOOL, "wait_forever"),
        {"role": "assistant"},  # the empty interrupted answer
        user("Never mind"),
    ]


async def test_a_turn_cut_off_by_a_dead_process_is_sealed_when_loaded_again(
    ollama_server: FakeOllama, tmp_path
):
    """What SIGKILL leaves mid-tool: the question and the model's tool call are checkpointed,
    the tool's result never was. The next process to load the session closes the call."""
    settings = make_settings(ollama_server, database_url=f"sqlite:///{tmp_path / 'chat.db'}")
    async with open_chat_service(settings) as first:
        session = await first.new_session()
        call = {"name": "calculator", "args": {"expression": "6*7"}, "id": "call-1"}
        await first.graph.aupdate_state(
            {"configurable": {"thread_id": session}},
            {"messages": [HumanMessage("What is 6*7?"), AIMessage("", tool_calls=[call])]},
            as_node="model",
        )
    async with open_chat_service(settings) as second:
        history = await second.history(session)
        assert stored(history) == [
            ("HumanMessage", "What is 6*7?"),
            ("AIMessage", ""),
            ("ToolMessage", INTERRUPTED_TOOL),
            ("AIMessage", ""),
        ]
        assert history[2].tool_call_id == "call-1"
        assert history[3].response_metadata == {"interrupted": CUT_OFF}
        assert stored(await second.history(session)) == stored(history)  # sealed once

        events = await run_turn(second, "And 7*8?", session_id=session)

    assert isinstance(events[-1], Done)
    assert ollama_server.chat_requests[-1]["messages"][1:] == [
        user("What is 6*7?"),
        assistant_calls(("calculator", {"expression": "6*7"})),
        tool_message(INTERRUPTED_TOOL),
        {"role": "assistant"},
        user("And 7*8?"),
    ]


async def test_a_finished_conversation_is_not_touched_when_loaded_again(
    ollama_server: FakeOllama, tmp_path
):
    settings = make_settings(ollama_server, database_url=f"sqlite:///{tmp_path / 'chat.db'}")
    async with open_chat_service(settings) as first:
        session = (await run_turn(first, "Hi"))[-1].session_id
        before = await first.graph.aget_state({"configurable": {"thread_id": session}})
    async with open_chat_service(settings) as second:
        assert stored(await second.history(session)) == [
            ("HumanMessage", "Hi"), ("AIMessage", "You said: Hi")
        ]
        after = await second.graph.aget_state({"configurable": {"thread_id": session}})
    assert after.config == before.config  # no new checkpoint written
