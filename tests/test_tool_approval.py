"""Tools that wait for the user's approval (`OLLAMASTACK_CONFIRM_TOOLS`), through the named API
with gradio_client: /chat ends with `pending_approval`, /approve_tool approves or denies and
streams the rest of the turn; across a restart (a new app over the same SQLite file); with
nothing waiting, a new message while one waits, and another user's conversation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from ollamastack.agent.approval import DECLINED
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.events import ApprovalPending, Done, Started, ToolCall
from tests.support.api_helpers import chunk, growing, run, serve
from tests.support.chat_helpers import make_settings, run_turn
from tests.support.ollama_server import FakeOllama

SUM = {"expression": "6*7"}
REFUSED = ("User rejected the tool call for `calculator` with reason: the user declined to run "
           "it; answer without its result")


@pytest.fixture
def served(ollama_server: FakeOllama, tmp_path: Path) -> Iterator[Client]:
    with serve(ollama_server, tmp_path, confirm_tools="calculator, weather") as app:
        yield Client(app.url, verbose=False)


def final(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The last dict, its stats checked to be there and then left out."""
    assert outputs[-1]["done"] is True and outputs[-1]["stats"]["model_calls"] >= 1
    return outputs[-1] | {"stats": None}


def paused(client: Client, server: FakeOllama, **options: Any) -> str:
    """A /chat turn whose model calls the calculator: checks it waits; its session id."""
    server.enqueue_tool_call("calculator", SUM)
    outputs, error = run(client, "What is 6*7?", api_name="/chat", **options)
    assert error is None
    session = outputs[0]["session_id"]
    call = {"name": "calculator", "args": SUM, "result": None}
    assert outputs[:-1] == [chunk(session, tool_calls=[call])]
    assert final(outputs) == chunk(session, tool_calls=[call], done=True,
                                   pending_approval={"name": "calculator", "args": SUM})
    return session


def test_approved_the_tool_runs_and_the_answer_streams(served: Client, ollama_server: FakeOllama):
    session = paused(served, ollama_server)
    assert len(ollama_server.chat_requests) == 1  # nothing ran yet
    ollama_server.enqueue_text("6 times 7 is 42.")
    outputs, error = run(served, session, True, api_name="/approve_tool")
    assert error is None
    call = {"name": "calculator", "args": SUM}
    answered = [call | {"result": "42"}]
    assert outputs[:-1] == [
        chunk(session, tool_calls=[call | {"result": None}]),
        chunk(session, tool_calls=answered),
        *(chunk(session, text, tool_calls=answered) for text in growing("6 times 7 is 42.")),
    ]
    assert final(outputs) == chunk(session, "6 times 7 is 42.", tool_calls=answered, done=True)
    assert ollama_server.chat_requests[-1]["messages"][-1] == {
        "role": "tool", "content": "42", "tool_name": "calculator"}
    history = served.predict(session, api_name="/history")
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]


def test_denied_the_model_answers_without_it(served: Client, ollama_server: FakeOllama):
    session = paused(served, ollama_server)
    ollama_server.enqueue_text("I did not calculate it.")
    outputs, error = run(served, session, False, api_name="/approve_tool")
    assert error is None
    assert final(outputs) == chunk(session, "I did not calculate it.", done=True, tool_calls=[
        {"name": "calculator", "args": SUM, "result": REFUSED}])
    assert ollama_server.chat_requests[-1]["messages"][-1] == {
        "role": "tool", "content": REFUSED, "tool_name": "calculator"}
    assert REFUSED.endswith(DECLINED)


def test_a_new_message_while_one_waits_is_refused_and_changes_nothing(
    served: Client, ollama_server: FakeOllama
):
    session = paused(served, ollama_server)
    outputs, error = run(served, "Never mind", session, api_name="/chat")
    assert (outputs, error) == ([], "This conversation is waiting for your approval to run the "
                                    "calculator tool: approve or deny it first.")
    assert len(ollama_server.chat_requests) == 1
    assert [m["content"] for m in served.predict(session, api_name="/history")] == [
        "What is 6*7?", ""]


def test_nothing_waiting_and_unknown_sessions(served: Client, ollama_server: FakeOllama):
    ollama_server.enqueue_text("Hello!")
    outputs, _ = run(served, "Hi", api_name="/chat")
    session = outputs[-1]["session_id"]
    assert "pending_approval" not in outputs[-1]
    assert run(served, session, True, api_name="/approve_tool") == (
        [], f"Nothing in conversation {session} is waiting for approval.")
    unknown = "0b6f8a52-8d8e-4f62-9d3f-5b1b8e7f1a2c"
    assert run(served, unknown, True, api_name="/approve_tool") == (
        [], f"No conversation with id {unknown} was found.")
    assert run(served, "not an id", False, api_name="/approve_tool") == (
        [], "The session id must be a UUID4 as returned by the server.")


def test_another_users_waiting_call_is_not_theirs(ollama_server: FakeOllama, tmp_path: Path):
    with serve(ollama_server, tmp_path, auth="alice:pw1,bob:pw2",
               confirm_tools="calculator") as app:
        alice = Client(app.url, auth=("alice", "pw1"), verbose=False)
        bob = Client(app.url, auth=("bob", "pw2"), verbose=False)
        session = paused(alice, ollama_server)
        assert run(bob, session, True, api_name="/approve_tool") == (
            [], f"No conversation with id {session} was found.")
        ollama_server.enqueue_text("42.")
        outputs, error = run(alice, session, True, api_name="/approve_tool")
    assert error is None and final(outputs)["content"] == "42."
    assert len(ollama_server.chat_requests) == 2


def test_a_waiting_call_survives_a_restart_and_keeps_its_turns_options(
    ollama_server: FakeOllama, tmp_path: Path
):
    with serve(ollama_server, tmp_path, confirm_tools="calculator") as first:
        session = paused(Client(first.url, verbose=False), ollama_server, temperature=0.2,
                         system_prompt="Answer in one line.")
    with serve(ollama_server, tmp_path, confirm_tools="calculator") as second:
        client = Client(second.url, verbose=False)
        assert client.predict(session, api_name="/history")[-1]["tool_calls"] == [
            {"name": "calculator", "args": SUM}]  # not sealed as cut off
        ollama_server.enqueue_text("42.")
        outputs, error = run(client, session, True, api_name="/approve_tool")
    assert error is None and final(outputs)["tool_calls"][0]["result"] == "42"
    resumed = ollama_server.chat_requests[-1]
    assert resumed["options"]["temperature"] == 0.2
    assert resumed["messages"][0] == {"role": "system", "content": "Answer in one line."}


async def test_the_service_events_of_a_pause_and_its_answer(ollama_server: FakeOllama):
    settings = make_settings(ollama_server, confirm_tools="calculator")
    ollama_server.enqueue_tool_call("calculator", SUM)
    async with open_chat_service(settings) as service:
        events = await run_turn(service, "What is 6*7?")
        call = events[0]
        session = events[-1].session_id
        assert events[1:-1] == [ApprovalPending(session, call.id, "calculator", SUM)]
        assert isinstance(events[-1], Done)
        assert (await service.waiting_call(session)).call_id == call.id
        ollama_server.enqueue_text("42.")
        resumed = [e async for e in service.resume_turn(session, True)]
        assert resumed[:2] == [Started(session, "llama3.2"), ToolCall(call.id, "calculator", SUM)]
        assert await service.waiting_call(session) is None
