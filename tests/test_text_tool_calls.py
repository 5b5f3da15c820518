"""Tool calls that small models write as text are run as real calls: what streamed, what ran,
what went back to Ollama, what was stored, and what /chat shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gradio_client import Client
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import ServiceHandle, open_chat_service
from ollamastack.events import Done, TextDelta, ToolCall, ToolResult, TurnError
from ollamastack.web.ui.chat import ChatHandlers
from tests.support.api_helpers import serve
from tests.support.chat_helpers import (
    assistant_calls,
    make_settings,
    run_turn,
    system,
    tool_message,
    user,
)
from tests.support.ollama_server import FakeOllama
from tests.support.text_calls import SHAPES, text_call


@pytest.fixture
async def service(ollama_server: FakeOllama) -> AsyncIterator[ChatService]:
    async with open_chat_service(make_settings(ollama_server)) as chat:
        yield chat


def texts(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_call_written_as_text_runs_the_tool(
    service: ChatService, ollama_server: FakeOllama, shape: str
):
    ollama_server.enqueue_text(text_call(shape, "calculator", {"expression": "12*7"}))
    ollama_server.enqueue_text("12 times 7 is 84.")

    events = await run_turn(service, "What is 12*7?")

    call, result = events[0], events[1]
    assert isinstance(call, ToolCall) and (call.name, call.args) == (
        "calculator", {"expression": "12*7"}
    )
    assert result == ToolResult(call.id, "calculator", "84")
    assert texts(events) == "12 times 7 is 84."  # the call's text never showed
    assert isinstance(events[-1], Done)
    assert ollama_server.chat_requests[1]["messages"] == [
        system(), user("What is 12*7?"),
        assistant_calls(("calculator", {"expression": "12*7"})), tool_message("84"),
    ]
    stored = await service.history(call_session(events, service))
    assert [type(m).__name__ for m in stored] == [
        "HumanMessage", "AIMessage", "ToolMessage", "AIMessage"
    ]
    assert stored[1].tool_calls[0]["args"] == {"expression": "12*7"} and stored[1].text == ""
    assert (stored[2].text, stored[3].text) == ("84", "12 times 7 is 84.")


def call_session(events: list, service: ChatService) -> str:
    done = events[-1]
    assert isinstance(done, Done)
    return done.session_id


async def test_two_hermes_calls_in_one_answer_both_run(
    service: ChatService, ollama_server: FakeOllama
):
    both = "\n".join(text_call("hermes", "calculator", {"expression": e}) for e in ("2+2", "3*3"))
    ollama_server.enqueue_text(both)
    ollama_server.enqueue_text("4 and 9.")
    events = await run_turn(service, "2+2 and 3*3?")
    assert [(e.name, e.args) for e in events if isinstance(e, ToolCall)] == [
        ("calculator", {"expression": "2+2"}), ("calculator", {"expression": "3*3"})
    ]
    assert [e.content for e in events if isinstance(e, ToolResult)] == ["4", "9"]
    assert texts(events) == "4 and 9."


@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "rm_everything", "parameters": {"path": "/"}}',  # no such tool offered
        '{"name": "calculator", "parameters": {"expression": 12}}',  # not a string
        '{"name": "calculator", "parameters": {"expr": "1+1"}}',  # no such argument
        'Use it like {"name": "calculator", "parameters": {"expression": "1+1"}} next time.',
        '{"name": "calculator", "parameters": ["1+1"]}',  # arguments not an object
        '{"answer": 42}',  # JSON that names no tool
    ],
    ids=["unknown-tool", "wrong-type", "unknown-argument", "inside-prose", "not-an-object",
         "plain-json"],
)
async def test_what_is_not_a_valid_call_stays_text(
    service: ChatService, ollama_server: FakeOllama, answer: str
):
    ollama_server.enqueue_text(answer)
    events = await run_turn(service, "Hi")
    assert not any(isinstance(e, ToolCall | ToolResult) for e in events)
    assert texts(events) == answer
    assert len(ollama_server.chat_requests) == 1
    stored = await service.history(call_session(events, service))
    assert [(type(m), m.text) for m in stored] == [(HumanMessage, "Hi"), (AIMessage, answer)]


async def test_a_half_written_call_in_a_cut_stream_is_kept_as_interrupted_text(
    service: ChatService, ollama_server: FakeOllama
):
    whole = text_call("llama-json", "calculator", {"expression": "12*7"})
    ollama_server.enqueue_cut(whole, after_chunks=2)
    events = await run_turn(service, "What is 12*7?")
    assert isinstance(events[-1], TurnError)
    assert not any(isinstance(e, ToolCall | ToolResult) for e in events)
    stored = await service.history(events[-1].session_id)
    assert [type(m) for m in stored] == [HumanMessage, AIMessage]
    assert whole.startswith(stored[1].text) and stored[1].text  # what streamed, kept
    assert stored[1].response_metadata["interrupted"]
    assert not any(isinstance(m, ToolMessage) for m in stored)
    assert len(ollama_server.chat_requests) == 1  # nothing ran


async def test_a_code_answer_still_streams_while_it_is_written(
    service: ChatService, ollama_server: FakeOllama
):
    answer = "```python\nprint('hi')\n```"
    ollama_server.enqueue_text(answer)
    events = await run_turn(service, "Code?")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == answer and len(deltas) > 1  # not held back to the end


def test_chat_shows_a_text_call_as_a_tool_call(ollama_server: FakeOllama, tmp_path: Path):
    ollama_server.enqueue_text(text_call("hermes", "calculator", {"expression": "12*7"}))
    ollama_server.enqueue_text("It is 84.")
    with serve(ollama_server, tmp_path) as served:
        client = Client(served.url, verbose=False)
        job = client.submit("What is 12*7?", api_name="/chat")
        final = job.result()
        shown = [chunk["content"] for chunk in job.outputs()]
    assert final["tool_calls"] == [
        {"name": "calculator", "args": {"expression": "12*7"}, "result": "84"}
    ]
    assert final["content"] == "It is 84."
    assert not any("tool_call" in text or "{" in text for text in shown)


async def test_the_page_shows_a_text_call_as_a_tool_step(ollama_server: FakeOllama, tmp_path: Path):
    ollama_server.enqueue_text(text_call("pythonic", "calculator", {"expression": "12*7"}))
    ollama_server.enqueue_text("It is 84.")
    settings = make_settings(ollama_server, data_dir=tmp_path)
    handle = ServiceHandle(settings)
    chat = ChatHandlers(settings, handle, update_interval=0)
    try:
        updates = [u async for u in chat.send(
            "What is 12*7?", [], "", [], "llama3.2", 0.7, "", True
        )]
    finally:
        await handle.close()
    shown = [u.chat for u in updates if isinstance(u.chat, list)]
    assert not any("calculator(" in str(m.content) for view in shown for m in view)
    final = shown[-1]
    step = final[1]
    assert step.metadata["title"] == "Used tool `calculator`"
    assert "12*7" in step.content and "84" in step.content
    assert final[2].content.startswith("It is 84.")
