"""Hostile and malformed input, as one table run through the core, the named API and the
page's send handler: each case gets a clear error and nothing is stored. A new case is one
line of `CASES`.

Model names to pull or delete (`PULLS`) go through /pull_model, /delete_model and the Models
tab: outside Ollama's name grammar or naming a registry not in OLLAMASTACK_MODEL_REGISTRIES,
nothing reaches Ollama.

Calculator inputs built to hang or eat memory reach the calculator through the model (a
scripted tool call): the tool refuses at once and the turn completes.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import pytest
from gradio_client import Client

from ollamastack import validation
from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import ServiceHandle, open_chat_service
from ollamastack.errors import OllamaStackError
from ollamastack.events import TurnError
from ollamastack.settings import Settings
from ollamastack.web.ui.chat import ChatHandlers, TurnUpdate
from ollamastack.web.ui.models import ModelsHandlers
from tests.support.api_helpers import OllamaView, Served, run, run_raw, serve
from tests.support.chat_helpers import assistant_calls, make_settings, run_turn, tool_message
from tests.support.ollama_server import FakeOllama

LIMIT = 4000  # OLLAMASTACK_MAX_MESSAGE_CHARS of every app here (the default)
EXISTING = "<existing>"  # stands for a session the test has just created
UNKNOWN = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
NOT_A_SESSION = "The session id must be a UUID4 as returned by the server."
TEMPERATURE = "The temperature must be a number from 0 to 2."
SKIP = gr.skip()


def bad_model(name: str) -> str:
    rule = "(letters, digits, '.', '-', '_', '/' and one ':tag')"
    return f"{name!r} is not a valid model name {rule}."


def bad_registry(host: str, allowed: str = "hf.co/, huggingface.co/ or registry.ollama.ai/") -> str:
    return (
        f"The model registry {host!r} is not allowed here; "
        f"a model name may start with {allowed}, or name no registry."
    )


def too_large(size: str) -> str:
    return f"Error: the result is too large ({size}; the limit is 3,000 digits)."


class Case(NamedTuple):
    id: str
    fields: dict[str, Any]  # /chat's arguments over a plain "Hello"; or {"calculator": expr}
    error: str  # what the client is told; for a calculator case, what the model reads
    page: bool = True  # False: the page's components never hand its handler such a value


CASES = [
    Case("empty", {"message": ""}, "The message is empty."),
    Case("whitespace", {"message": " \n\t "}, "The message is empty."),
    Case("zero-width", {"message": "\u200b\u200c\u200d\u2060\ufeff"}, "The message is empty."),
    Case("invisible", {"message": "\u00a0\u180e\u2028\u3000\u3164\u034f\ufe0f\u202e"},
         "The message is empty."),
    Case("too-long", {"message": "x" * (LIMIT + 1)},
         f"The message is {LIMIT + 1} characters long; the limit is {LIMIT}."),
    Case("nul", {"message": "a\x00b"},
         "The message contains a NUL character, which is not allowed."),
    Case("lone-surrogate", {"message": "a\ud800b"},
         "The message is not valid Unicode (lone surrogate)."),
    Case("message-number", {"message": 123}, "The message must be text.", page=False),
    Case("message-null", {"message": None}, "The message must be text.", page=False),
    Case("session-path", {"session_id": "../../etc/passwd"}, NOT_A_SESSION),
    Case("session-sql", {"session_id": "' OR 1=1 --"}, NOT_A_SESSION),
    Case("session-10000-chars", {"session_id": "a" * 10_000}, NOT_A_SESSION),
    Case("session-uuid1", {"session_id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}, NOT_A_SESSION),
    Case("session-list", {"session_id": ["x"]}, NOT_A_SESSION, page=False),
    Case("session-unknown", {"session_id": UNKNOWN},
         f"No conversation with id {UNKNOWN} was found."),
    Case("model-not-installed", {"model": "nosuchmodel"},
         "Model 'nosuchmodel' is not installed in Ollama. "
         "Pull it with `ollama pull nosuchmodel` or from the Models tab."),
    Case("model-path", {"model": "../../etc/passwd"}, bad_model("../../etc/passwd")),
    Case("model-url", {"model": "http://evil.example/m"}, bad_model("http://evil.example/m")),
    Case("model-option", {"model": "llama3.2 --verbose"}, bad_model("llama3.2 --verbose")),
    Case("model-metadata-address", {"model": "169.254.169.254/latest/meta-data"},
         bad_registry("169.254.169.254")),
    Case("temperature-nan", {"temperature": math.nan}, TEMPERATURE),
    Case("temperature-inf", {"temperature": math.inf}, TEMPERATURE),
    Case("temperature-negative", {"temperature": -1}, TEMPERATURE),
    Case("temperature-3", {"temperature": 3}, TEMPERATURE),
    Case("temperature-1-and-400-zeros", {"temperature": 10**400}, TEMPERATURE),  # no float
    Case("temperature-text", {"temperature": "abc"}, TEMPERATURE),
    Case("temperature-bool", {"temperature": True}, TEMPERATURE),
    Case("temperature-in-a-session", {"session_id": EXISTING, "temperature": "hot"}, TEMPERATURE),
    Case("system-prompt-too-long", {"system_prompt": "p" * 8001},
         "The system prompt is 8001 characters long; the limit is 8000."),
    Case("system-prompt-object", {"system_prompt": {"a": 1}}, "The system prompt must be text.",
         page=False),
    Case("calculator-power-tower", {"calculator": "9**9**9**9"},
         too_large("about 369,693,100 digits")),
    Case("calculator-10-digits-of-digits", {"calculator": "10**10**10"},
         too_large("about 10,000,000,000 digits")),
    Case("calculator-float-overflow", {"calculator": "2.0 ** 10**10"},
         "Error: the result is too large (overflow)."),
    Case("calculator-factorial", {"calculator": "factorial(10**6)"},
         "Error: factorial() takes a whole number from 0 to 1,000."),
    Case("calculator-nesting", {"calculator": "(" * 240 + "1" + ")" * 240},
         "Error: the expression is not valid arithmetic (too many nested parentheses)."),
    Case("calculator-unary-chain", {"calculator": "-" * 400 + "1"},
         "Error: the expression is nested too deeply (more than 200 levels)."),
    Case("calculator-10000-chars", {"calculator": "1+" * 5000 + "1"},
         "Error: the expression is too long (10,001 characters; the limit is 500)."),
]  # fmt: skip

METADATA = "169.254.169.254"  # the cloud metadata service a pull must not make Ollama fetch
PULLS = [
    (f"{METADATA}/latest/meta-data", bad_registry(METADATA)),
    (f"{METADATA}/meta-data", bad_registry(METADATA)),  # a host before a name, no namespace
    (f"{METADATA}:80/latest/meta-data:x", bad_registry(f"{METADATA}:80")),
    ("2852039166/latest/meta-data", bad_registry("2852039166")),  # that address as a number
    ("fd00::1/ns/model", bad_registry("fd00::1")),
    ("localhost:11434/ns/model", bad_registry("localhost:11434")),
    ("evil.example/model", bad_registry("evil.example")),
    ("hf.co.evil.example/ns/model", bad_registry("hf.co.evil.example")),
    ("http://evil.example/m", bad_model("http://evil.example/m")),
    ("hf.co/model", bad_model("hf.co/model")),  # a registry needs a namespace too
    ("hf.co/name.space/model", bad_model("hf.co/name.space/model")),  # no dot in a namespace
    ("a/b/c/d", bad_model("a/b/c/d")),
    ("model:", bad_model("model:")),
    ("-model", bad_model("-model")),
    ("model:tag:tag", bad_model("model:tag:tag")),
    ("m" * 81, bad_model("m" * 60)),  # Ollama's limit: 80 for a name, namespace or tag
    ("model:" + "t" * 81, bad_model(("model:" + "t" * 81)[:60])),
    ("", bad_model("")),
]
PULL_CASES = [
    pytest.param(name, error, id=re.sub(r"[^\w./-]+", "_", name[:40]) or "empty")
    for name, error in PULLS
]
MANAGING = ("/api/pull", "/api/delete")

REFUSED = [pytest.param(c, id=c.id) for c in CASES if "calculator" not in c.fields]
ON_THE_PAGE = [pytest.param(c, id=c.id) for c in CASES if "calculator" not in c.fields and c.page]
CALCULATOR = [pytest.param(c, id=c.id) for c in CASES if "calculator" in c.fields]
TOOL_SECONDS = 5.0  # a refused expression costs milliseconds; this only catches a hang


def chat_arguments(case: Case, existing: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "message": "Hello", "session_id": "", "model": "", "temperature": None,
        "system_prompt": "",
    } | case.fields
    if arguments["session_id"] == EXISTING:
        arguments["session_id"] = existing
    return arguments


def gradio_client_can_send(arguments: dict[str, Any]) -> bool:
    """gradio_client posts with httpx, whose JSON has no NaN and must encode as UTF-8."""
    try:
        json.dumps(arguments, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


# -- the core --------------------------------------------------------------


@pytest.fixture
async def service(ollama_server: FakeOllama) -> AsyncIterator[ChatService]:
    async with open_chat_service(make_settings(ollama_server, max_message_chars=LIMIT)) as chat:
        yield chat


@pytest.mark.parametrize("case", REFUSED)
async def test_the_core_refuses_it_before_storing_anything(
    service: ChatService, ollama_server: FakeOllama, case: Case
) -> None:
    existing = (await run_turn(service, "First message"))[-1].session_id
    sessions, history = await service.sessions(), await service.history(existing)
    chats = len(ollama_server.chat_requests)
    arguments = chat_arguments(case, existing)
    message = arguments.pop("message")

    try:
        events = [event async for event in service.stream_turn(message, **arguments)]
    except OllamaStackError as raised:
        error: OllamaStackError = raised
    else:
        (event,) = events  # refused before the turn started: no Started
        assert isinstance(event, TurnError)
        error = event.error

    assert str(error) == case.error
    assert len(ollama_server.chat_requests) == chats
    assert await service.sessions() == sessions
    assert await service.history(existing) == history


# -- the named API, over HTTP -----------------------------------------------


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("data")) as served:
        yield served


@pytest.mark.parametrize("case", REFUSED)
def test_the_api_refuses_it_before_storing_anything(
    served: Served, client: Client, ollama: OllamaView, case: Case
) -> None:
    existing = client.predict("First message", api_name="/chat")["session_id"]
    sessions = client.predict(api_name="/sessions")
    history = client.predict(existing, api_name="/history")
    chats = len(ollama.chat_requests)
    arguments = chat_arguments(case, existing)

    if gradio_client_can_send(arguments):
        outputs, error = run(client, api_name="/chat", **arguments)
    else:  # NaN, Infinity, a lone surrogate: as curl or a hand-written client sends them
        outputs, error = run_raw(served.url, "/chat", list(arguments.values()))

    assert (outputs, error) == ([], case.error)
    assert len(ollama.chat_requests) == chats
    assert client.predict(api_name="/sessions") == sessions
    assert client.predict(existing, api_name="/history") == history


@pytest.mark.parametrize(("name", "error"), PULL_CASES)
@pytest.mark.parametrize("endpoint", ["/pull_model", "/delete_model"])
def test_the_api_refuses_a_model_name_outside_the_grammar_or_the_registries(
    client: Client, ollama: OllamaView, endpoint: str, name: str, error: str
) -> None:
    assert run(client, name, api_name=endpoint) == ([], error)
    assert [r.path for r in ollama.requests if r.path in MANAGING] == []


def test_the_api_pulls_from_the_registries_of_the_setting_only(
    shared_server: FakeOllama, tmp_path: Path
) -> None:
    """The allow-list is the setting's; Ollama matches names ignoring case, so case is kept."""
    assert Settings(_env_file=None).registries == validation.DEFAULT_REGISTRIES  # type: ignore[call-arg]
    ours = "models.example.com/team/Model:Q4_K_M"
    with OllamaView.of(shared_server) as ollama, serve(
        shared_server, tmp_path, model_registries="Models.Example.com"
    ) as app:
        client = Client(app.url, verbose=False)
        outputs, error = run(client, ours, api_name="/pull_model")
        assert (error, outputs[-1]["status"]) == (None, "success")
        hf = "hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M"
        assert run(client, hf, api_name="/pull_model") == (
            [], bad_registry("hf.co", "models.example.com/")
        )
        assert client.predict(ours, api_name="/delete_model") == {"name": ours, "deleted": True}
        assert [(r.path, r.body["model"]) for r in ollama.requests if r.path in MANAGING] == [
            ("/api/pull", ours), ("/api/delete", ours)
        ]


@pytest.mark.parametrize("case", CALCULATOR)
def test_hostile_calculator_input_through_the_api_ends_in_a_tool_error_not_a_hang(
    client: Client, ollama: OllamaView, case: Case
) -> None:
    expression = case.fields["calculator"]
    ollama.enqueue_tool_call("calculator", {"expression": expression})  # then "You said: …"
    started = time.monotonic()
    outputs, error = run(client, "Compute it", api_name="/chat")
    assert time.monotonic() - started < TOOL_SECONDS

    assert error is None
    final = outputs[-1]
    call = {"name": "calculator", "args": {"expression": expression}, "result": case.error}
    assert (final["content"], final["tool_calls"], final["done"]) == (
        "You said: Compute it", [call], True
    )
    assert ollama.chat_requests[1]["messages"][-2:] == [
        assistant_calls(("calculator", {"expression": expression})),
        tool_message(case.error),
    ]


# -- the page's handlers ------------------------------------------------------


@pytest.fixture
def settings(ollama_server: FakeOllama, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None, ollama_host=ollama_server.url, data_dir=tmp_path, model="llama3.2",
        max_message_chars=LIMIT, embedded=False,
    )  # type: ignore[call-arg]


@pytest.fixture
async def handle(settings: Settings) -> AsyncIterator[ServiceHandle]:
    handle = ServiceHandle(settings)
    yield handle
    await handle.close()


@pytest.fixture
def page(settings: Settings, handle: ServiceHandle) -> ChatHandlers:
    return ChatHandlers(settings, handle, update_interval=0)


async def send(page: ChatHandlers, arguments: dict[str, Any]) -> list[Any]:
    """Everything the send handler streamed, as Gradio would hand it the page's values."""
    updates = page.send(
        arguments["message"], [], arguments["session_id"], [], arguments["model"],
        arguments["temperature"], arguments["system_prompt"], True,
    )
    return [update async for update in updates]


@pytest.mark.parametrize("case", ON_THE_PAGE)
async def test_the_page_refuses_it_before_storing_anything(
    page: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, case: Case
) -> None:
    first = await send(page, chat_arguments(Case("", {"message": "First message"}, ""), ""))
    existing = next(u.session_id for u in first if isinstance(u.session_id, str))
    core = await handle.get()
    sessions, history = await core.sessions(), await core.history(existing)
    chats = len(ollama_server.chat_requests)
    arguments = chat_arguments(case, existing)

    if not arguments["message"].strip():  # the box is empty: nothing is sent, nothing said
        assert await send(page, arguments) == [TurnUpdate()]
    else:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            updates = await send(page, arguments)
        assert [str(w.message) for w in warned if w.category is UserWarning] == []  # no toast
        last = updates[-1]
        assert last.streaming is False
        if last.notice != SKIP:  # refused before the turn: said over the box, message kept
            assert (html.unescape(last.notice["value"]), last.box) == (
                f"⚠ {case.error}",
                {"__type__": "update", "value": {"text": arguments["message"], "files": []},
                 "submit_btn": "Send",
                 "stop_btn": False},
            )
        else:  # refused by Ollama: said once in the chat, the error's text under "Details"
            said = last.chat[-1]
            assert (said.metadata["title"], said.content) == (
                "Details", f"```text\n{case.error}\n```")

    assert len(ollama_server.chat_requests) == chats
    assert await core.sessions() == sessions
    assert await core.history(existing) == history


def row_button(action: str, model: str) -> gr.EventData:
    """What a button of the Models tab's table sends (its `ROW_ACTIONS`)."""
    return gr.EventData(None, {"action": action, "model": model})


@pytest.mark.parametrize(("name", "error"), PULL_CASES)
async def test_the_models_tab_refuses_a_model_name_outside_the_grammar_or_the_registries(
    handle: ServiceHandle, ollama_server: FakeOllama, name: str, error: str
) -> None:
    tab = ModelsHandlers(handle)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # said once, on the page: no toast
        pulled = [update async for update in tab.pull(name)]
        deleted = await tab.delete(row_button("confirm", name))  # a forged row button
    assert html.unescape(pulled[-1][0]) == (
        f'<div class="pull-progress" role="alert"><span>{error}</span></div>')
    assert html.unescape(deleted[1]) == (
        f'<div class="models-notice" role="alert"><span>Could not delete {name}: {error}'
        "</span></div>")
    assert [r.path for r in ollama_server.requests if r.path in MANAGING] == []


async def test_the_models_tab_pulls_from_the_registries_of_the_setting_only(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    custom = Settings(
        _env_file=None, ollama_host=ollama_server.url, data_dir=tmp_path, model="llama3.2",
        embedded=False, model_registries="models.example.com",
    )  # type: ignore[call-arg]
    handle = ServiceHandle(custom)
    try:
        tab = ModelsHandlers(handle)
        ours, hf = "models.example.com/team/model:1b", "hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M"
        pulled = [update async for update in tab.pull(ours)]
        refused = [update async for update in tab.pull(hf)]
        deleted = await tab.delete(row_button("confirm", ours))
    finally:
        await handle.close()

    assert html.unescape(pulled[-1][0]) == (
        f'<div class="pull-progress" role="status"><span>{ours} is installed: press “Use in '
        "chat” in its row to chat with it.</span></div>")
    error = bad_registry("hf.co", "models.example.com/")
    assert html.unescape(refused[-1][0]) == (
        f'<div class="pull-progress" role="alert"><span>{error}</span></div>')
    assert deleted[1] == (
        f'<div class="models-notice" role="status"><span>{ours} was deleted.</span></div>')
    assert [(r.path, r.body["model"]) for r in ollama_server.requests if r.path in MANAGING] == [
        ("/api/pull", ours), ("/api/delete", ours)
    ]


@pytest.mark.parametrize("case", CALCULATOR)
async def test_hostile_calculator_input_on_the_page_ends_in_a_tool_error_not_a_hang(
    page: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, case: Case
) -> None:
    expression = case.fields["calculator"]
    ollama_server.enqueue_tool_call("calculator", {"expression": expression})
    started = time.monotonic()
    updates = await send(page, chat_arguments(Case("", {"message": "Compute it"}, ""), ""))
    assert time.monotonic() - started < TOOL_SECONDS

    session = next(u.session_id for u in updates if isinstance(u.session_id, str))
    stored = await (await handle.get()).history(session)
    assert [(type(m).__name__, m.text) for m in stored] == [
        ("HumanMessage", "Compute it"),
        ("AIMessage", ""),
        ("ToolMessage", case.error),
        ("AIMessage", "You said: Compute it"),
    ]
    assert updates[-1].chat[-1].content.startswith("You said: Compute it")
