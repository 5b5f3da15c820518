"""The API as MCP tools (OLLAMASTACK_MCP=true), used with the official `mcp` client over
Gradio's streamable HTTP transport."""

from __future__ import annotations

import ast
import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from ollamastack.settings import DEFAULT_SYSTEM_PROMPT
from ollamastack.web.audit import AUDIT_FILE
from tests.support.api_helpers import OllamaView, Served, serve
from tests.support.ollama_server import FakeOllama

TOOLS = [
    "approve_tool",
    "chat",
    "delete_model",
    "delete_session",
    "edit_message",
    "health",
    "history",
    "models",
    "pull_model",
    "rename_session",
    "search_conversations",
    "sessions",
    "switch_branch",
    "tools",
    "usage",
]


@pytest.fixture(scope="module")
def app(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("data"), mcp=True) as served:
        yield served


@asynccontextmanager
async def connect(
    app: Served, http_client: httpx.AsyncClient | None = None
) -> AsyncIterator[ClientSession]:
    """An MCP session with the app (not a fixture: the client's task group must be entered
    and left in the same task)."""
    url = f"{app.url}/gradio_api/mcp/"
    async with streamable_http_client(url, http_client=http_client) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def call(
    mcp: ClientSession, tool: str, progress: list[str] | None = None, **arguments: Any
) -> Any:
    """The tool's result; Gradio sends a Python value as its `str()`.

    With a `progress` list the call asks for progress notifications and collects their
    messages (Gradio then follows the job's updates instead of waiting for its result).
    """

    async def on_progress(step: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")  # type: ignore[union-attr]

    callback = on_progress if progress is not None else None
    result = await mcp.call_tool(tool, arguments, progress_callback=callback)
    assert not result.isError, result.content
    (content,) = result.content
    return ast.literal_eval(content.text)


async def test_mcp_lists_every_endpoint_as_a_described_tool(app: Served) -> None:
    async with connect(app) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        assert sorted(tools) == TOOLS
        chat = tools["chat"]
        assert chat.description.startswith("Send a message to the agent")
        assert chat.inputSchema["required"] == ["message"]
        properties = chat.inputSchema["properties"]
        assert {name: p.get("description") for name, p in properties.items()} == {
            "message": "What to ask.",
            "session_id": (
                "The conversation to continue; empty starts a new one (its id is returned)."
            ),
            "model": "An installed Ollama model; empty uses the server's default model.",
            "temperature": "Sampling temperature from 0 to 2; empty uses the server's default.",
            "system_prompt": "Instructions for the model; empty uses the server's default prompt.",
            "files": "Images or documents (.txt .md .csv .pdf .docx .html) to attach "
                     "(handle_file).",
        }


async def test_mcp_client_holds_a_chat_with_memory(
    app: Served, ollama: OllamaView
) -> None:
    async with connect(app) as mcp:
        ollama.enqueue_text("Nice to meet you, Ada.")
        ollama.enqueue_text("Your name is Ada.")
        first = await call(mcp, "chat", message="My name is Ada.")
        session = first["session_id"]
        progress: list[str] = []
        second = await call(
            mcp, "chat", progress, message="What is my name?", session_id=session
        )
        # a notification for each streamed chunk ("Your", " name", " is", " Ada.") at least
        assert progress.count("Processing") >= 4, progress

        # the streamed /chat answers with its last dict: the whole answer, done, with stats
        for result, answer in ((first, "Nice to meet you, Ada."), (second, "Your name is Ada.")):
            assert {k: v for k, v in result.items() if k != "stats"} == {
                "session_id": session,
                "content": answer,
                "thinking": "",
                "tool_calls": [],
                "done": True,
            }
            assert result["stats"]["model_calls"] == 1
        assert ollama.chat_requests[1]["messages"] == [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": "What is my name?"},
        ]
        assert await call(mcp, "history", session_id=session) == [
            {"role": "user", "content": "My name is Ada.", "branch": 1, "branches": 1},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": "What is my name?", "branch": 1, "branches": 1},
            {"role": "assistant", "content": "Your name is Ada."},
        ]


async def test_mcp_tools_report_models_health_and_errors(
    app: Served, ollama: OllamaView
) -> None:
    async with connect(app) as mcp:
        assert await call(mcp, "health") == {
            "status": "ok",
            "ollama_url": ollama.url,
            "ollama_version": "0.12.6",
            "models": 1,
            "default_model": "llama3.2",
            "embedded_model": "",
        }
        assert [m["name"] for m in await call(mcp, "models")] == ["llama3.2:latest"]
        ollama.enqueue_tool_call("calculator", {"expression": "6 * 7"})
        ollama.enqueue_text("42.")
        answer = await call(mcp, "chat", message="What is 6 * 7?")
        assert (answer["content"], answer["tool_calls"]) == (
            "42.",
            [{"name": "calculator", "args": {"expression": "6 * 7"}, "result": "42"}],
        )

        refused = await mcp.call_tool("chat", {"message": ""})
        assert refused.isError
        assert [c.text for c in refused.content] == ["The message is empty."]


def audited_clients(app: Served, endpoint: str, count: int) -> list[str]:
    """The client addresses of the audit log's `endpoint` records, once it has `count`."""
    path = app.settings.data_dir / AUDIT_FILE
    deadline = time.monotonic() + 5
    while True:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        clients = [r["client"] for r in records if r["endpoint"] == endpoint]
        if len(clients) >= count or time.monotonic() > deadline:
            return clients
        time.sleep(0.02)


async def test_mcp_calls_are_counted_as_their_real_callers(app: Served) -> None:
    """Gradio runs a tool through the app's queue over loopback, with the caller's headers:
    the audit log (and the rate limit) must see the caller's own address, not loopback's and
    not one the caller names in X-Forwarded-For."""
    before = len(audited_clients(app, "/sessions", 0))
    caller = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(local_address="127.0.0.5"),
        headers={"X-Forwarded-For": "203.0.113.9"}, timeout=httpx.Timeout(30, read=300))
    async with caller, connect(app, caller) as mcp:
        assert isinstance(await call(mcp, "sessions"), list)
    assert audited_clients(app, "/sessions", before + 1)[before:] == ["127.0.0.5"]


def test_no_client_can_pass_itself_off_as_an_mcp_caller(app: Served) -> None:
    """The hop's mark of the caller's address, made up by a client of the REST API."""
    before = len(audited_clients(app, "/sessions", 0))
    forged = {"X-Ollamastack-Mcp-Caller": "guessed-secret 198.51.100.7",
              "X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=app.url, timeout=30) as rest:
        posted = rest.post("/gradio_api/call/sessions", json={"data": []}, headers=forged)
        rest.get(f"/gradio_api/call/sessions/{posted.json()['event_id']}")
    assert audited_clients(app, "/sessions", before + 1)[before:] == ["127.0.0.1"]


async def test_a_second_mcp_message_to_an_answering_conversation_is_refused(
    app: Served, ollama: OllamaView
) -> None:
    async with connect(app) as mcp, connect(app) as other:
        session = (await call(mcp, "chat", message="Hello."))["session_id"]
        ollama.server.token_rate = 20
        ollama.enqueue_text("one two three four five six seven eight nine ten")
        first = asyncio.ensure_future(call(mcp, "chat", message="Count.", session_id=session))
        for _ in range(500):  # until the first answer streams (this loop runs the MCP client)
            if len(ollama.chat_requests) == 2:
                break
            await asyncio.sleep(0.01)
        refused = await other.call_tool("chat", {"message": "Again?", "session_id": session})
        answered = await first
    assert refused.isError
    assert "This conversation is still answering" in refused.content[0].text
    assert answered["content"] == "one two three four five six seven eight nine ten"
    assert len(ollama.chat_requests) == 2  # the refused message never reached Ollama
