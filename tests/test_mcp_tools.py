"""Tools from MCP servers: a real server process built with the official `mcp` package
(FastMCP), over streamable HTTP and stdio, reached through `langchain-mcp-adapters`; the test
Ollama server's model calls its tools by name. A clash with a built-in name, a server that is
down, killed mid-session or hanging, a huge result, odd names and malformed settings."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.agent.toolbox import ToolInfo
from ollamastack.errors import SettingsError
from ollamastack.events import Done, TextDelta, ToolCall, ToolResult
from ollamastack.settings import load_settings
from tests.support.api_helpers import free_port, serve
from tests.support.chat_helpers import TOOL_NAMES, make_settings, run_turn
from tests.support.ollama_server import FakeOllama

# The MCP server, as a user would write one with the official SDK.
SERVER = '''
import asyncio, sys
from mcp.server.fastmcp import FastMCP

transport = sys.argv[1]
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
mcp = FastMCP("notes", host="127.0.0.1", port=port, log_level="WARNING")
NOTES = {"groceries": "eggs, milk, bread"}


@mcp.tool()
def lookup_note(title: str) -> str:
    """Read one of the user's notes by its title."""
    if title not in NOTES:
        raise ValueError(f"no note called {title}")
    return NOTES[title]


@mcp.tool()
def calculator(expression: str) -> str:
    """The notes server's own calculator."""
    return f"notes says {expression} = 42"


@mcp.tool()
async def wait(seconds: float) -> str:
    """Wait a while."""
    await asyncio.sleep(seconds)
    return "waited"


@mcp.tool()
def dump(size: int) -> str:
    """A long text."""
    return "x" * size


@mcp.tool(name="count words!")
def count_words(text: str) -> str:
    """Count the words of a text."""
    return str(len(text.split()))


mcp.run(transport)
'''
MCP_NAMES = ["lookup_note", "notes_calculator", "wait", "dump", "count_words_"]
CLOCK = ToolInfo("current_time", "", "Get the current date and time in a time zone.", True)
ANALYZER = ("Count the characters, words, sentences and paragraphs of a text, and estimate its "
            "reading time, most frequent words and readability (Flesch reading ease).")


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "notes_server.py"
    path.write_text(SERVER)
    return path


class HttpServer:
    """The MCP server over streamable HTTP on a loopback port, started and killed by pid."""

    def __init__(self, script: Path, port: int) -> None:
        self.script, self.port = script, port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> HttpServer:
        self.process = subprocess.Popen(
            [sys.executable, str(self.script), "streamable-http", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the MCP server exited"
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise TimeoutError("the MCP server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def mcp_http(script: Path) -> Iterator[HttpServer]:
    server = HttpServer(script, free_port()).start()
    try:
        yield server
    finally:
        server.kill()


def http_servers(server: HttpServer) -> dict:
    return {"notes": {"transport": "streamable_http", "url": server.url}}


def stdio_servers(script: Path) -> dict:
    return {"notes": {"transport": "stdio", "command": sys.executable,
                      "args": [str(script), "stdio"]}}


@pytest.fixture
async def http_service(
    ollama_server: FakeOllama, mcp_http: HttpServer
) -> AsyncIterator[ChatService]:
    settings = make_settings(ollama_server, mcp_servers=http_servers(mcp_http),
                             max_offered_tools=20, tool_timeout=5)
    async with open_chat_service(settings) as service:
        yield service


def offered(request: dict) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools") or []]


def texts(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def called(service: ChatService, server: FakeOllama, name: str, args: dict,
                 answer: str = "Done.") -> tuple[ToolResult, list]:
    """One turn in which the model calls `name`: the tool's result and every event."""
    server.enqueue_tool_call(name, args)
    server.enqueue_text(answer)
    events = await run_turn(service, "Use the tool, please")
    assert events[0] == ToolCall(events[0].id, name, args)
    assert isinstance(events[1], ToolResult) and events[1].id == events[0].id
    assert texts(events) == answer and isinstance(events[-1], Done)
    return events[1], events


async def test_http_tools_join_the_built_ins_and_run_by_name(
    http_service: ChatService, ollama_server: FakeOllama
):
    result, _ = await called(http_service, ollama_server, "lookup_note", {"title": "groceries"},
                             "You need eggs, milk and bread.")
    assert result == ToolResult(result.id, "lookup_note", "eggs, milk, bread")
    assert offered(ollama_server.chat_requests[0]) == [*TOOL_NAMES, *MCP_NAMES]
    schema = ollama_server.chat_requests[0]["tools"][len(TOOL_NAMES)]["function"]
    assert (schema["name"], schema["description"]) == (
        "lookup_note", "Read one of the user's notes by its title.")
    assert schema["parameters"]["properties"]["title"]["type"] == "string"
    assert ollama_server.chat_requests[1]["messages"][-1] == {
        "role": "tool", "content": "eggs, milk, bread", "tool_name": "lookup_note"}
    entries = http_service.tool_entries()
    assert [e.name for e in entries[:len(TOOL_NAMES)]] == TOOL_NAMES
    assert entries[1:3] == [ToolInfo("text_analyzer", "", ANALYZER, True), CLOCK]
    assert [(e.name, e.server, e.reachable) for e in entries[len(TOOL_NAMES):]] == [
        (name, "notes", True) for name in MCP_NAMES]


async def test_a_name_taken_by_a_built_in_gets_the_servers_name(
    http_service: ChatService, ollama_server: FakeOllama
):
    theirs, _ = await called(http_service, ollama_server, "notes_calculator",
                             {"expression": "6*7"})
    ours, _ = await called(http_service, ollama_server, "calculator", {"expression": "6*7"})
    odd, _ = await called(http_service, ollama_server, "count_words_", {"text": "a b c"})
    assert (theirs.content, ours.content, odd.content) == ("notes says 6*7 = 42", "42", "3")


async def test_stdio_server_and_its_own_error(ollama_server: FakeOllama, script: Path):
    settings = make_settings(ollama_server, mcp_servers=stdio_servers(script),
                             max_offered_tools=20, tool_timeout=20)
    async with open_chat_service(settings) as service:
        found, _ = await called(service, ollama_server, "lookup_note", {"title": "groceries"})
        missing, _ = await called(service, ollama_server, "lookup_note", {"title": "taxes"},
                                  "There is no such note.")
    assert found == ToolResult(found.id, "lookup_note", "eggs, milk, bread")
    error = ("Error: the lookup_note tool failed: Error executing tool lookup_note: "
             "no note called taxes")
    assert missing == ToolResult(missing.id, "lookup_note", error, is_error=True)
    assert ollama_server.chat_requests[-1]["messages"][-1] == {
        "role": "tool", "content": error, "tool_name": "lookup_note"}


async def test_a_server_killed_mid_session_is_a_tool_error_and_the_turn_answers(
    http_service: ChatService, ollama_server: FakeOllama, mcp_http: HttpServer
):
    await called(http_service, ollama_server, "lookup_note", {"title": "groceries"})
    mcp_http.kill()
    result, _ = await called(http_service, ollama_server, "lookup_note",
                                  {"title": "groceries"}, "The notes are out of reach.")
    assert result.is_error
    assert result.content.startswith("Error: the MCP server 'notes' failed (")
    assert result.content.endswith("); try again later, or answer without it.")
    assert "Traceback" not in result.content and len(result.content) < 500


async def test_a_hanging_tool_is_stopped_at_the_tool_timeout(
    ollama_server: FakeOllama, mcp_http: HttpServer
):
    settings = make_settings(ollama_server, mcp_servers=http_servers(mcp_http), tool_timeout=1)
    async with open_chat_service(settings) as service:
        started = time.monotonic()
        result, _ = await called(service, ollama_server, "wait", {"seconds": 30})
    assert time.monotonic() - started < 10
    assert result == ToolResult(result.id, "wait", "Error: the MCP server 'notes' did not answer "
                                "within 1 s; try again later, or answer without it.",
                                is_error=True)


async def test_a_huge_result_is_cut_to_the_limit(ollama_server: FakeOllama, mcp_http: HttpServer):
    settings = make_settings(ollama_server, mcp_servers=http_servers(mcp_http),
                             tool_result_chars=1000)
    async with open_chat_service(settings) as service:
        result, _ = await called(service, ollama_server, "dump", {"size": 50_000})
    assert result.content == "x" * 1000 + "\n… (cut: 50,000 characters in all)"


async def test_a_server_down_at_start_up_is_left_out_until_a_refresh_finds_it(
    ollama_server: FakeOllama, script: Path
):
    server = HttpServer(script, free_port())
    settings = make_settings(ollama_server, mcp_servers=http_servers(server),
                             max_offered_tools=20, tool_timeout=5)
    async with open_chat_service(settings) as service:
        (down,) = service.tool_entries()[len(TOOL_NAMES):]
        assert (down.name, down.server, down.reachable) == ("", "notes", False)
        assert down.description.startswith("not reachable: ")
        assert list(service.toolbox.unreachable()) == ["notes"]
        ollama_server.enqueue_text("Hello.")
        assert texts(await run_turn(service, "Hi")) == "Hello."
        assert offered(ollama_server.chat_requests[-1]) == TOOL_NAMES
        server.start()
        try:
            entries = await service.refresh_tools()
            assert [(e.name, e.reachable) for e in entries[len(TOOL_NAMES):]] == [
                (name, True) for name in MCP_NAMES]
            assert service.toolbox.unreachable() == {}
            result, _ = await called(service, ollama_server, "lookup_note",
                                     {"title": "groceries"})
        finally:
            server.kill()
    assert result.content == "eggs, milk, bread"
    assert offered(ollama_server.chat_requests[-2]) == [*TOOL_NAMES, *MCP_NAMES]


async def test_with_many_tools_a_call_is_offered_the_relevant_ones(
    ollama_server: FakeOllama, mcp_http: HttpServer
):
    settings = make_settings(ollama_server, mcp_servers=http_servers(mcp_http),
                             max_offered_tools=3)
    async with open_chat_service(settings) as service:
        ollama_server.enqueue_text("Sure.")
        await run_turn(service, "Please look up my note called groceries")
        ollama_server.enqueue_text("42.")
        await run_turn(service, "What is 6*7?")
    notes, sums = ollama_server.chat_requests
    assert offered(notes) == ["lookup_note", "calculator", "text_analyzer"]
    assert offered(sums)[0] == "calculator"


async def test_prompted_mode_chooses_an_mcp_tool(ollama_server: FakeOllama, mcp_http: HttpServer):
    ollama_server.add_model("gemma3", capabilities=("completion",))
    settings = make_settings(ollama_server, mcp_servers=http_servers(mcp_http),
                             max_offered_tools=20)
    ollama_server.enqueue_json({"tool": "lookup_note", "arguments": {"title": "groceries"}})
    ollama_server.enqueue_text("Eggs, milk and bread.")
    async with open_chat_service(settings) as service:
        events = await run_turn(service, "What is on my groceries note?", model="gemma3")
    assert [(type(e).__name__, e.name) for e in events if isinstance(e, ToolCall | ToolResult)] \
        == [("ToolCall", "lookup_note"), ("ToolResult", "lookup_note")]
    assert events[1].content == "eggs, milk, bread"
    choice, answer = ollama_server.chat_requests
    assert "- lookup_note(title: string): Read one of the user's notes by its title." in (
        choice["messages"][0]["content"])
    assert answer["messages"][-1] == {"role": "user",
                                      "content": "lookup_note gave this result:\neggs, milk, bread"}


def test_tools_endpoint_lists_every_tool_with_its_server(
    ollama_server: FakeOllama, mcp_http: HttpServer, tmp_path: Path
):
    down = f"http://127.0.0.1:{free_port()}/mcp"
    servers = http_servers(mcp_http) | {"archive": {"transport": "streamable_http", "url": down}}
    with serve(ollama_server, tmp_path, mcp_servers=servers, tool_timeout=5) as served:
        listed = Client(served.url, verbose=False).predict(api_name="/tools")
    assert listed[2] == {"name": "current_time", "server": "", "reachable": True,
                         "description": CLOCK.description}
    assert [(t["name"], t["server"], t["reachable"]) for t in listed[len(TOOL_NAMES):]] == [
        *((name, "notes", True) for name in MCP_NAMES), ("", "archive", False)]
    assert listed[-1]["description"].startswith("not reachable: ")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OLLAMASTACK_MCP_SERVERS", "{notes: 1}",
         "Invalid setting OLLAMASTACK_MCP_SERVERS: not valid JSON (Expecting property name "
         "enclosed in double quotes: line 1 column 2 (char 1))"),
        ("OLLAMASTACK_MCP_SERVERS", '{"notes": {"transport": "tcp", "url": "http://x"}}',
         "Invalid setting OLLAMASTACK_MCP_SERVERS: notes.transport: Input should be 'stdio', "
         "'streamable_http', 'streamable-http', 'http', 'sse' or 'websocket'"),
        ("OLLAMASTACK_MCP_SERVERS", '{"notes": {"transport": "stdio", "args": []}}',
         'Invalid setting OLLAMASTACK_MCP_SERVERS: notes: a "stdio" server needs a "command"'),
        ("OLLAMASTACK_MCP_SERVERS", '{"my notes": {"transport": "stdio", "command": "x"}}',
         "Invalid setting OLLAMASTACK_MCP_SERVERS: my notes.[key]: String should match pattern "
         "'^[A-Za-z0-9_-]{1,40}$'"),
        ("OLLAMASTACK_CONFIRM_TOOLS", "weather,rm -rf",
         "Invalid setting OLLAMASTACK_CONFIRM_TOOLS: tool names are letters, digits, _ and -, "
         "not 'rm -rf' (got 'weather,rm -rf')"),
    ],
)
def test_malformed_settings_name_the_variable(variable, value, message, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == message


def test_the_servers_file(monkeypatch, tmp_path: Path, script: Path):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "servers.json"
    monkeypatch.setenv("OLLAMASTACK_MCP_SERVERS_FILE", str(path))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == (f"Invalid setting OLLAMASTACK_MCP_SERVERS_FILE ({path}): "
                                 "cannot be read (No such file or directory)")
    path.write_text('{"notes": ')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == (f"Invalid setting OLLAMASTACK_MCP_SERVERS_FILE ({path}): "
                                 "not valid JSON (Expecting value: line 1 column 11 (char 10))")
    path.write_text(f'{{"notes": {{"transport": "stdio", "command": "{sys.executable}", '
                    f'"args": ["{script}", "stdio"], "env": {{"A": "1"}}}}}}')
    assert load_settings().mcp_connections == {"notes": {
        "transport": "stdio", "command": sys.executable, "args": [str(script), "stdio"],
        "env": {"A": "1"}}}


async def test_the_pages_status_line_names_a_server_that_is_down(
    ollama_server: FakeOllama, script: Path
):
    """The page's status line says which MCP server's tools are left out (until a refresh
    finds it), after what it says of Ollama and the model."""
    from ollamastack.agent.service_handle import ServiceHandle
    from ollamastack.web.ui.page import PageHandlers

    server = HttpServer(script, free_port())
    settings = make_settings(ollama_server, mcp_servers=http_servers(server), tool_timeout=5)
    handle = ServiceHandle(settings)
    try:
        status, _ = await PageHandlers(settings, handle).status(settings.model)
        assert status.endswith(
            " · MCP server notes is not reachable; its tools are left out.")
        server.start()
        try:
            await (await handle.get()).refresh_tools()
            status, _ = await PageHandlers(settings, handle).status(settings.model)
        finally:
            server.kill()
        assert "MCP server" not in status
    finally:
        await handle.close()
