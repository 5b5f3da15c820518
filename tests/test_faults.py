"""What Ollama and the tools do wrong, as one table driven through the named API (over HTTP)
and through the page's send handler: each fault ends the turn with a clear error, keeps what
had streamed marked as interrupted, leaves a conversation the next turn can build on, and
the next turn works without a restart.

Elsewhere: the same faults at the core in test_chat.py; Ollama down at the page's first use,
a missing model and Stop in test_ui.py; Stop in the real browser in test_browser.py; a
killed app process in test_crash.py.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from gradio_client import Client

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import DEFAULT_SYSTEM_PROMPT, Settings
from ollamastack.web.api_schema import history_entries, message_entry
from ollamastack.web.ui.chat import ChatHandlers
from tests.support.api_helpers import OllamaView, Served, app_settings, growing, run, serve
from tests.support.chat_helpers import closed_port_url
from tests.support.ollama_server import FakeOllama
from tests.support.weather_server import WeatherServer

REQUEST_TIMEOUT = 1.0  # seconds of silence from Ollama before a turn gives up
TOOL_TIMEOUT = 0.5


def unreachable(url: str) -> str:
    return (
        f"Ollama is not reachable at {url}. Start it with `ollama serve` "
        "(or `docker compose up ollama`), or point OLLAMA_HOST at a running server."
    )


def connection_lost(url: str) -> str:
    return (
        f"The connection to Ollama at {url} was lost in the middle of the answer "
        "(did the server stop or crash?). Try again."
    )


def silent(url: str) -> str:
    return (
        f"Ollama at {url} sent nothing for {REQUEST_TIMEOUT:g} s (the model may still be "
        "loading). Try again, or raise OLLAMASTACK_REQUEST_TIMEOUT."
    )


def reported(text: str) -> Callable[[str], str]:
    return lambda url: f"Ollama reported an error: {text}"


CALL = {"name": "calculator", "args": {"expression": "6*7"}}
OOM = "model requires more system memory (9.6 GiB) than is available (3.1 GiB)"
RUNNER = "llama runner process has terminated: signal: killed"


class Fault(NamedTuple):
    id: str
    script: Callable[[FakeOllama], None]  # what Ollama does to the second turn
    error: Callable[[str], str]  # what the client is told, given Ollama's URL
    partial: str = ""  # the part of the answer that streamed before it went wrong
    tool_round: bool = False  # the fault struck after a calculator round (6*7 = 42)


FAULTS = [
    Fault("gone-between-turns", lambda s: s.stop(), unreachable),
    Fault("500-out-of-memory", lambda s: s.enqueue_error(500, OOM), reported(OOM)),
    Fault("500-runner-crashed", lambda s: s.enqueue_error(500, RUNNER), reported(RUNNER)),
    Fault("error-inside-the-stream",
          lambda s: s.enqueue_stream_error(RUNNER, text="The capital of France", after_chunks=2),
          reported(RUNNER), partial="The capital"),
    Fault("cut-mid-stream", lambda s: s.enqueue_cut("The answer is cut here", after_chunks=3),
          connection_lost, partial="The answer is"),
    Fault("cut-after-a-tool-round",
          lambda s: (s.enqueue_tool_call("calculator", {"expression": "6*7"}),
                     s.enqueue_cut("The result is 42", after_chunks=2)),
          connection_lost, partial="The result", tool_round=True),
    Fault("silent-longer-than-the-timeout",
          lambda s: s.enqueue_text("Too late.", first_byte_delay=3 * REQUEST_TIMEOUT), silent),
]  # fmt: skip


# What the page says of each, in plain words (the error's own text goes under "Details").
PLAIN_WORDS = {
    "gone-between-turns": "Ollama is not answering, so this message got no reply.",
    "500-out-of-memory": "Ollama could not answer this message.",
    "500-runner-crashed": "Ollama could not answer this message.",
    "error-inside-the-stream": "Ollama could not answer this message.",
    "cut-mid-stream": "The connection to Ollama broke in the middle of the answer.",
    "cut-after-a-tool-round": "The connection to Ollama broke in the middle of the answer.",
    "silent-longer-than-the-timeout": "The model took too long to start answering.",
}


def expected_history(fault: Fault, url: str) -> list[dict[str, Any]]:
    """/history after a good turn, the faulty one and the good one after it."""
    tool_round = [
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": "42", "name": "calculator"},
    ]
    return [
        {"role": "user", "content": "Hello", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "You said: Hello"},
        {"role": "user", "content": "Tell me", "branch": 1, "branches": 1},
        *(tool_round if fault.tool_round else []),
        {"role": "assistant", "content": fault.partial, "interrupted": fault.error(url)},
        {"role": "user", "content": "Again?", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "You said: Again?"},
    ]


def expected_request(fault: Fault) -> list[dict[str, Any]]:
    """What the turn after the fault sends Ollama: a valid conversation, no open tool call."""
    tool_round = [
        {"role": "assistant", "tool_calls": [
            {"function": {"name": "calculator", "arguments": {"expression": "6*7"}}}
        ]},
        {"role": "tool", "content": "42", "tool_name": "calculator"},
    ]  # fmt: skip
    return [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "You said: Hello"},
        {"role": "user", "content": "Tell me"},
        *(tool_round if fault.tool_round else []),
        {"role": "assistant", **({"content": fault.partial} if fault.partial else {})},
        {"role": "user", "content": "Again?"},
    ]


def recover(server: FakeOllama) -> None:
    if server._thread is None:  # "gone": Ollama comes back, on the same address
        server.start()


# -- through the named API ------------------------------------------------------


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("data")
    with serve(shared_server, data, request_timeout=REQUEST_TIMEOUT) as served:
        yield served


@pytest.mark.parametrize("fault", [pytest.param(f, id=f.id) for f in FAULTS])
def test_a_fault_through_the_api_is_reported_kept_and_the_next_turn_works(
    client: Client, ollama: OllamaView, fault: Fault
) -> None:
    session = client.predict("Hello", api_name="/chat")["session_id"]
    fault.script(ollama.server)
    outputs, error = run(client, "Tell me", session, api_name="/chat")
    assert error == fault.error(ollama.url)
    assert [o["content"] for o in outputs if o["content"]] == growing(fault.partial)

    recover(ollama.server)
    assert client.predict("Again?", session, api_name="/chat")["content"] == "You said: Again?"
    assert client.predict(session, api_name="/history") == expected_history(fault, ollama.url)
    assert ollama.chat_requests[-1]["messages"] == expected_request(fault)


def test_ollama_not_running_at_start_then_up_without_a_restart(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    ollama_server.stop()  # its address is known, and nothing listens there
    url = ollama_server.url
    with serve(ollama_server, tmp_path) as app:
        client = Client(app.url, verbose=False)
        down = {"status": "unavailable", "ollama_url": url, "ollama_version": "", "models": 0,
                "default_model": "llama3.2", "embedded_model": ""}
        assert client.predict(api_name="/health") == down
        assert run(client, "Anyone there?", api_name="/chat") == ([], unreachable(url))
        assert client.predict(api_name="/sessions") == []  # nothing was said: nothing kept

        ollama_server.start()
        assert client.predict(api_name="/health")["status"] == "ok"
        answer = client.predict("Now?", api_name="/chat")
        assert answer["content"] == "You said: Now?"
        assert client.predict(answer["session_id"], api_name="/history") == [
            {"role": "user", "content": "Now?", "branch": 1, "branches": 1},
            {"role": "assistant", "content": "You said: Now?"},
        ]


# -- through the page's send handler ------------------------------------------------


@pytest.fixture
def settings(ollama_server: FakeOllama, tmp_path: Path) -> Settings:
    return app_settings(ollama_server, tmp_path, request_timeout=REQUEST_TIMEOUT)


@pytest.fixture
async def handle(settings: Settings) -> AsyncIterator[ServiceHandle]:
    handle = ServiceHandle(settings)
    yield handle
    await handle.close()


@pytest.fixture
def page(settings: Settings, handle: ServiceHandle) -> ChatHandlers:
    return ChatHandlers(settings, handle, update_interval=0)


async def send(page: ChatHandlers, message: str, session_id: str = "") -> list[Any]:
    updates = page.send(message, [], session_id, [], "", 0.7, "", True)
    return [update async for update in updates]


def session_of(updates: list[Any]) -> str:
    return next(u.session_id for u in updates if isinstance(u.session_id, str))


@pytest.mark.parametrize("fault", [pytest.param(f, id=f.id) for f in FAULTS])
async def test_a_fault_on_the_page_is_reported_kept_and_the_next_turn_works(
    page: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, fault: Fault
) -> None:
    session = session_of(await send(page, "Hello"))
    fault.script(ollama_server)
    error = fault.error(ollama_server.url)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        updates = await send(page, "Tell me", session)
    assert [str(w.message) for w in warned if w.category is UserWarning] == []  # no toast
    # said once, in the chat: plain words after what streamed, the error's text in Details
    note = f"⚠ {PLAIN_WORDS[fault.id]} Press Retry to ask again."
    answer = f"{fault.partial}\n\n{note}" if fault.partial else note
    assert [(m.content, m.metadata) for m in updates[-1].chat[-2:]] == [
        (answer, {}), (f"```text\n{error}\n```", {"title": "Details", "status": "done"}),
    ]
    assert updates[-1].streaming is False

    recover(ollama_server)
    again = await send(page, "Again?", session)
    assert again[-1].chat[-1].content.startswith("You said: Again?\n\n<sub>")
    core = await handle.get()
    stored = await core.history(session)
    assert history_entries(stored, await core.branches(session)) == expected_history(
        fault, ollama_server.url)
    assert ollama_server.chat_requests[-1]["messages"] == expected_request(fault)


# -- a tool that fails: the model reads why, and the turn completes -----------------

OFFLINE = "Error: the weather service could not be reached (All connection attempts failed); " \
    "try again later."


class ToolFault(NamedTuple):
    id: str
    script: Callable[[WeatherServer], None]
    result: str  # what the model reads as the tool's answer
    offline: bool = False  # the weather URLs point where nothing listens


TOOL_FAULTS = [
    ToolFault("weather-offline", lambda w: None, OFFLINE, offline=True),
    ToolFault("weather-times-out", lambda w: setattr(w, "delay", 30),
              f"Error: the weather service did not answer within {TOOL_TIMEOUT:g} seconds; "
              "try again later."),
    ToolFault("weather-answers-500", lambda w: setattr(w, "status", 500),
              "Error: the weather service answered with HTTP 500; try again later."),
]  # fmt: skip


@pytest.fixture
def weather() -> Iterator[WeatherServer]:
    with WeatherServer() as server:
        yield server


def tool_settings(fault: ToolFault, weather: WeatherServer) -> dict[str, Any]:
    """The settings of an app whose weather tool meets `fault`."""
    base = closed_port_url() if fault.offline else weather.url
    fault.script(weather)
    return {
        "tool_timeout": TOOL_TIMEOUT,
        "weather_geocoding_url": f"{base}/v1/search",
        "weather_forecast_url": f"{base}/v1/forecast",
    }


def tool_turn(ollama: FakeOllama) -> None:
    ollama.enqueue_tool_call("weather", {"location": "Paris"})
    ollama.enqueue_text("The weather service is not answering.")


@pytest.mark.parametrize("fault", [pytest.param(f, id=f.id) for f in TOOL_FAULTS])
def test_a_failing_tool_through_the_api_becomes_its_answer_and_the_turn_completes(
    ollama_server: FakeOllama, weather: WeatherServer, tmp_path: Path, fault: ToolFault
) -> None:
    tool_turn(ollama_server)
    with serve(ollama_server, tmp_path, **tool_settings(fault, weather)) as app:
        outputs, error = run(Client(app.url, verbose=False), "Weather in Paris?",
                             api_name="/chat")
    assert error is None
    call = {"name": "weather", "args": {"location": "Paris"}, "result": fault.result}
    assert (outputs[-1]["content"], outputs[-1]["tool_calls"], outputs[-1]["done"]) == (
        "The weather service is not answering.", [call], True
    )
    assert ollama_server.chat_requests[-1]["messages"][-1] == {
        "role": "tool", "content": fault.result, "tool_name": "weather"
    }


@pytest.mark.parametrize("fault", [pytest.param(f, id=f.id) for f in TOOL_FAULTS])
async def test_a_failing_tool_on_the_page_becomes_its_answer_and_the_turn_completes(
    ollama_server: FakeOllama, weather: WeatherServer, tmp_path: Path, fault: ToolFault
) -> None:
    settings = app_settings(ollama_server, tmp_path, **tool_settings(fault, weather))
    handle = ServiceHandle(settings)
    try:
        tool_turn(ollama_server)
        updates = await send(ChatHandlers(settings, handle, update_interval=0), "Weather?")
        stored = await (await handle.get()).history(session_of(updates))
    finally:
        await handle.close()
    assert [message_entry(m) for m in stored] == [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"name": "weather", "args": {"location": "Paris"}}]},
        {"role": "tool", "content": fault.result, "name": "weather"},
        {"role": "assistant", "content": "The weather service is not answering."},
    ]  # fmt: skip
    assert updates[-1].chat[-1].content.startswith("The weather service is not answering.")
