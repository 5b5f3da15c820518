"""The plain REST API (`/api/v1`) over real HTTP: httpx against the launched app, raw bytes for
malformed bodies, the Ollama-protocol test server behind it."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from playwright.async_api import async_playwright, expect

from tests.support.api_helpers import OllamaView, Served, run, serve, without_timings
from tests.support.ollama_server import FakeOllama
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

NOT_A_SESSION = "The session id must be a UUID4 as returned by the server."
UNKNOWN = "5f0c3d2e-8b1a-4c6d-9e7f-0a1b2c3d4e5f"


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("data")) as served:
        yield served


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def post_raw(http: httpx.Client, body: bytes, path: str = "/api/v1/chat") -> httpx.Response:
    return http.post(path, content=body, headers={"content-type": "application/json"})


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    return response.json()["error"]


def sse_frames(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Each server-sent event as (event name, data)."""
    frames = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        frames.append((fields.get("event", ""), json.loads(fields["data"])))
    return frames


# -- chat ---------------------------------------------------------------------


def test_chat_answers_json_and_remembers_the_conversation_by_its_id(
    http: httpx.Client, ollama: OllamaView
) -> None:
    ollama.enqueue_text("Nice to meet you, Ada.")
    first = http.post("/api/v1/chat", json={"message": "My name is Ada."})
    assert first.status_code == 200, first.text
    answer = first.json()
    conversation = answer["conversation_id"]
    assert without_timings({**answer, "done": False}) == {
        "conversation_id": conversation, "content": "Nice to meet you, Ada.", "thinking": "",
        "tool_calls": [], "model": "llama3.2", "done": False,
        "stats": {"prompt_tokens": answer["stats"]["prompt_tokens"], "completion_tokens": 5,
                  "tokens_per_second": 100.0, "model_calls": 1, "done_reason": "stop",
                  "messages_left_out": 0},
    }

    ollama.enqueue_text("You are Ada.")
    second = http.post("/api/v1/chat", json={
        "message": "What is my name?", "conversation_id": conversation, "temperature": 0.2,
        "system_prompt": "Be brief.",
    })
    assert second.json()["content"] == "You are Ada."
    assert ollama.chat_requests[1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert ollama.chat_requests[1]["options"]["temperature"] == 0.2
    assert http.get(f"/api/v1/conversations/{conversation}").json() == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
        {"role": "assistant", "content": "You are Ada."},
    ]
    listed = http.get("/api/v1/conversations").json()
    expected = {"conversation_id": conversation, "title": "My name is Ada."}
    assert expected.items() <= listed[0].items()

    deleted = http.delete(f"/api/v1/conversations/{conversation}")
    assert deleted.json() == {"conversation_id": conversation, "deleted": True}
    gone = error(http.get(f"/api/v1/conversations/{conversation}"), 404)
    assert gone == {"type": "not_found",
                    "message": f"No conversation with id {conversation} was found."}


def test_chat_streams_server_sent_events_ending_with_done_and_stats(
    http: httpx.Client, ollama: OllamaView
) -> None:
    ollama.enqueue_tool_call("calculator", {"expression": "6 * 7"})
    ollama.enqueue_text("It is 42.")
    response = http.post("/api/v1/chat", json={"message": "6 times 7?", "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = sse_frames(response.text)
    assert {name for name, _ in frames} == {""}
    datas = [data for _, data in frames]
    conversation = datas[0]["conversation_id"]
    call = {"name": "calculator", "args": {"expression": "6 * 7"}}
    base = {"conversation_id": conversation, "model": "llama3.2", "thinking": "",
            "done": False, "stats": None}
    assert datas[:-1] == [
        base | {"content": "", "tool_calls": []},
        base | {"content": "", "tool_calls": [call | {"result": None}]},
        base | {"content": "", "tool_calls": [call | {"result": "42"}]},
        base | {"content": "It", "tool_calls": [call | {"result": "42"}]},
        base | {"content": "It is", "tool_calls": [call | {"result": "42"}]},
        base | {"content": "It is 42.", "tool_calls": [call | {"result": "42"}]},
    ]
    last = datas[-1]
    assert (last["done"], last["content"], last["stats"]["model_calls"]) == (True, "It is 42.", 2)


def test_an_ollama_failure_mid_stream_is_the_streams_last_event(
    http: httpx.Client, ollama: OllamaView
) -> None:
    ollama.enqueue_stream_error("runner crashed", text="Hello", after_chunks=1)
    response = http.post("/api/v1/chat", json={"message": "Hi", "stream": True})
    frames = sse_frames(response.text)
    assert frames[-1] == ("error", {"error": {
        "type": "ollama_error", "message": "Ollama reported an error: runner crashed"}})
    assert frames[-2][1]["content"] == "Hello"


def test_closing_a_stream_stops_the_turn_and_keeps_what_streamed(
    http: httpx.Client, ollama: OllamaView
) -> None:
    ollama.server.token_rate = 10  # 4 s of answer: the close lands mid-stream
    text = " ".join(f"w{i}" for i in range(40))
    ollama.enqueue_text(text)
    with http.stream("POST", "/api/v1/chat", json={"message": "Count", "stream": True}) as r:
        for line in r.iter_lines():  # the answer's first two words, then the client goes
            if line.startswith("data: ") and len((seen := json.loads(line[6:]))["content"]
                                                 .split()) >= 2:
                break
    assert seen["content"] == "w0 w1"
    conversation = seen["conversation_id"]
    deadline = time.monotonic() + 5
    while len(history := http.get(f"/api/v1/conversations/{conversation}").json()) < 2:
        assert time.monotonic() < deadline, history
        time.sleep(0.05)
    assert history[1]["interrupted"] == "stopped by the user"
    assert len(history[1]["content"].split()) < 40
    ollama.server.token_rate = None


# -- validation: one source for the named API and REST --------------------------------


@pytest.mark.parametrize(("body", "field", "message"), [
    (b'{"message": "hi", "temperature": 5}', "temperature",
     "The temperature must be a number from 0 to 2."),
    (b'{"message": "hi", "temperature": NaN}', "temperature",
     "The temperature must be a number from 0 to 2."),
    (b'{"message": "   "}', "message", "The message is empty."),
    (b'{"message": "a\\u0000b"}', "message",
     "The message contains a NUL character, which is not allowed."),
    (b'{"message": "' + b"x" * 4001 + b'"}', "message",
     "The message is 4001 characters long; the limit is 4000."),
    (b'{"message": "hi", "conversation_id": "../../etc"}', "conversation_id", NOT_A_SESSION),
    (b'{"message": "hi", "model": "../../etc/passwd"}', "model",
     "'../../etc/passwd' is not a valid model name (letters, digits, '.', '-', '_', '/' and "
     "one ':tag')."),
])
def test_rest_and_the_named_api_refuse_the_same_inputs_with_the_same_words(
    http: httpx.Client, served: Served, body: bytes, field: str, message: str
) -> None:
    assert error(post_raw(http, body), 400) == {
        "type": "invalid_request", "message": message, "field": field}
    values = json.loads(body)
    arguments = [values["message"], values.get("conversation_id", ""), values.get("model", ""),
                 values.get("temperature")]
    client = Client(served.url, verbose=False)
    if values.get("temperature") != values.get("temperature"):  # NaN: gradio_client refuses
        return
    assert run(client, *arguments, api_name="/chat") == ([], message)


@pytest.mark.parametrize(("body", "error_body"), [
    (b'{"message": "hi"', {"type": "invalid_json", "message":
                           "The body is not valid JSON: Expecting ',' delimiter."}),
    (b'{"message": 42}', {"type": "invalid_request", "field": "message",
                          "message": "message: Input should be a valid string."}),
    (b'{"message": "hi", "temperature": "hot"}', {
        "type": "invalid_request", "field": "temperature",
        "message": "temperature: Input should be a valid number."}),
    (b'{"message": "hi", "stream": "yes"}', {
        "type": "invalid_request", "field": "stream",
        "message": "stream: Input should be a valid boolean."}),
    (b'{"message": "hi", "session": "x"}', {
        "type": "invalid_request", "field": "session",
        "message": "session: Extra inputs are not permitted."}),
    (b'["hi"]', {"type": "invalid_request", "message": "The body: Input should be a valid "
                 "dictionary or object to extract fields from."}),
    (b"", {"type": "invalid_request", "message": "The body is empty: send a JSON object."}),
])
def test_malformed_bodies_are_400_naming_the_field(
    http: httpx.Client, body: bytes, error_body: dict[str, Any]
) -> None:
    assert error(post_raw(http, body), 400) == error_body


def test_a_body_over_the_limit_is_413_without_being_read_whole(http: httpx.Client) -> None:
    declared = post_raw(http, b"{}", "/api/v1/chat")  # a small body passes the door
    assert declared.status_code == 400
    big = b'{"message": "' + b"x" * (2**20) + b'"}'
    assert error(post_raw(http, big), 413) == {
        "type": "too_large", "message": "The body is larger than 1,048,576 bytes."}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"message": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    streamed = http.post("/api/v1/chat", content=chunks(),
                         headers={"content-type": "application/json"})
    assert error(streamed, 413)["type"] == "too_large"


def test_unknown_and_malformed_conversations(http: httpx.Client) -> None:
    for method in ("GET", "DELETE"):
        missing = http.request(method, f"/api/v1/conversations/{UNKNOWN}")
        assert error(missing, 404)["message"] == f"No conversation with id {UNKNOWN} was found."
        bad = http.request(method, "/api/v1/conversations/not-an-id")
        assert error(bad, 400) == {"type": "invalid_request", "message": NOT_A_SESSION,
                                   "field": "conversation_id"}
    chat = http.post("/api/v1/chat", json={"message": "hi", "conversation_id": UNKNOWN})
    assert error(chat, 404)["type"] == "not_found"


def test_unknown_routes_and_methods_answer_in_the_same_error_shape(http: httpx.Client) -> None:
    assert error(http.get("/api/v1/nothing"), 404) == {
        "type": "not_found", "message": "GET /api/v1/nothing: Not Found."}
    assert error(http.put("/api/v1/chat"), 405) == {
        "type": "method_not_allowed", "message": "PUT /api/v1/chat: Method Not Allowed."}


def test_health_and_models(http: httpx.Client, served: Served) -> None:
    assert http.get("/api/v1/health").json() == {
        "status": "ok", "ollama_url": served.settings.ollama_host, "ollama_version": "0.12.6",
        "models": 1, "default_model": "llama3.2", "embedded_model": ""}
    assert http.get("/api/v1/models").json() == [{
        "name": "llama3.2:latest", "size": 2019393189, "parameter_size": "3.2B",
        "quantization": "Q4_K_M", "capabilities": ["completion", "tools"], "embedded": False}]


# -- documentation -------------------------------------------------------------------


def test_openapi_lists_every_route_and_the_docs_page_needs_no_other_host(
    http: httpx.Client,
) -> None:
    spec = http.get("/api/v1/openapi.json").json()
    assert {path: sorted(item) for path, item in spec["paths"].items()} == {
        "/api/v1/chat": ["post"],
        "/api/v1/health": ["get"],
        "/api/v1/models": ["get"],
        "/api/v1/models/{name}": ["delete"],
        "/api/v1/conversations": ["get"],
        "/api/v1/conversations/{conversation_id}": ["delete", "get"],
        "/v1/models": ["get"],
        "/v1/chat/completions": ["post"],
    }
    page = http.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert re.findall(r"""(?:src|href)=["']?([^"' >]+)""", page.text) == ["openapi.json"]
    assert "//" not in re.sub(r"<!--.*?-->", "", page.text.split("<script>")[1])
    assert "connect-src 'self'" in page.headers["content-security-policy"]


# -- apps of their own: rate limit, Ollama down, server errors, CORS --------------------


def test_rate_limit_is_429_with_retry_after(ollama_server: FakeOllama, tmp_path: Path) -> None:
    with serve(ollama_server, tmp_path, rate_limit=1) as app, httpx.Client(
        base_url=app.url, timeout=30
    ) as http:
        ollama_server.enqueue_text("One.")
        assert http.post("/api/v1/chat", json={"message": "1"}).status_code == 200
        refused = http.post("/api/v1/chat", json={"message": "2"})
        assert error(refused, 429)["type"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        lines = (tmp_path / "audit.jsonl").read_text().splitlines()
        outcomes = [json.loads(line)["outcome"] for line in lines
                    if json.loads(line)["endpoint"] == "/api/v1/chat"]
        assert outcomes == ["ok", "rate_limited"]


def test_ollama_unreachable_is_503_with_the_reason(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    ollama_server.stop()  # its port now refuses connections
    with serve(ollama_server, tmp_path) as app, httpx.Client(
        base_url=app.url, timeout=30
    ) as http:
        answer = http.post("/api/v1/chat", json={"message": "hi"})
        body = error(answer, 503)
        assert body["type"] == "unavailable"
        assert body["message"].startswith("Ollama is not reachable at ")
        assert http.get("/api/v1/health").json()["status"] == "unavailable"


def test_an_unexpected_error_is_500_with_an_id_found_in_the_log(
    ollama_server: FakeOllama, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    with serve(ollama_server, blocker) as app, httpx.Client(base_url=app.url, timeout=30) as http:
        with caplog.at_level(logging.ERROR):
            answer = http.get("/api/v1/conversations")
        body = error(answer, 500)
        found = re.fullmatch(
            r"Something went wrong on the server \(error id ([0-9a-f]{12})\); see its log\.",
            body["message"])
        assert found, body
        logged = [r for r in caplog.records if found.group(1) in r.getMessage()]
        assert logged and logged[0].exc_info is not None  # the traceback is in the log


def test_cors_is_off_by_default_and_allows_only_the_configured_origins(
    ollama_server: FakeOllama, tmp_path: Path, http: httpx.Client
) -> None:
    """Simple requests only: Gradio's own CORS middleware, outside ours, answers preflights."""
    origin = {"origin": "https://tool.example"}
    assert "access-control-allow-origin" not in http.get("/api/v1/health", headers=origin).headers
    with serve(ollama_server, tmp_path, cors_origins="https://tool.example") as app:
        with httpx.Client(base_url=app.url, timeout=30) as cors:
            allowed = cors.get("/api/v1/health", headers=origin)
            assert allowed.headers["access-control-allow-origin"] == "https://tool.example"
            assert "X-Conversation-Id" in allowed.headers["access-control-expose-headers"]
            other = cors.get("/api/v1/health", headers={"origin": "https://x.example"})
            assert "access-control-allow-origin" not in other.headers


# -- the docs page in a browser ------------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed")
async def test_the_docs_page_renders_every_route_and_asks_no_other_host(served: Served) -> None:
    requested: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.on("request", lambda r: requested.append(r.url))
            await page.goto(f"{served.url}/api/v1/docs")
            routes = page.locator("section h2 code")
            await expect(routes).to_have_count(9)
            shown = await routes.all_inner_texts()
        finally:
            await browser.close()
    assert sorted(set(shown)) == sorted({
        "/api/v1/chat", "/api/v1/health", "/api/v1/models", "/api/v1/models/{name}",
        "/api/v1/conversations", "/api/v1/conversations/{conversation_id}", "/v1/models",
        "/v1/chat/completions"})
    assert requested == [f"{served.url}/api/v1/docs", f"{served.url}/api/v1/openapi.json"]
