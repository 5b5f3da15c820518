"""The plain REST API (`/api/v1`) over real HTTP: httpx against the launched app, raw bytes for
malformed bodies, the Ollama-protocol test server behind it."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from playwright.async_api import async_playwright, expect

from ollamastack.web.rest.door import body_limit
from tests.support.api_helpers import OllamaView, Served, run, serve, without_timings
from tests.support.ollama_server import FakeOllama, Reply
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
                  "messages_left_out": 0, "cached": False},
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


def test_a_body_over_the_limit_is_413_without_being_read_whole(
    http: httpx.Client, served: Served
) -> None:
    declared = post_raw(http, b"{}", "/api/v1/chat")  # a small body passes the door
    assert declared.status_code == 400
    limit = body_limit(served.settings)  # 1 MiB of messages and a 20 MB file as base64
    big = b'{"message": "' + b"x" * limit + b'"}'
    assert error(post_raw(http, big), 413) == {
        "type": "too_large", "message": f"The body is larger than {limit:,} bytes."}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"message": "'
        for _ in range(limit // 2**20 + 1):
            yield b"x" * 2**20
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


# -- tool calls that wait for the user's approval (OLLAMASTACK_CONFIRM_TOOLS) ------------

SUM = {"expression": "6*7"}
WAITING = ("This conversation is waiting for your approval to run the calculator tool: "
           "approve or deny it first.")
DENIED = ("User rejected the tool call for `calculator` with reason: the user declined to run "
          "it; answer without its result")


@pytest.fixture(scope="module")
def gated(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("gated"), confirm_tools="calculator") as app:
        yield app


@pytest.fixture
def gated_http(gated: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gated.url, timeout=30) as client:
        yield client


def approval(http: httpx.Client, conversation: str, **body: Any) -> httpx.Response:
    return http.post(f"/api/v1/conversations/{conversation}/approval", json=body)


def paused(http: httpx.Client, ollama: OllamaView, **headers: str) -> str:
    """A turn whose model calls the calculator, checked to stop there; its conversation."""
    ollama.enqueue_tool_call("calculator", SUM)
    answer = http.post("/api/v1/chat", json={"message": "What is 6*7?"}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body | {"stats": None} == {
        "conversation_id": body["conversation_id"], "content": "", "thinking": "",
        "tool_calls": [{"name": "calculator", "args": SUM, "result": None}],
        "model": "llama3.2", "stats": None,
        "pending_approval": {"name": "calculator", "args": SUM}}
    assert body["stats"]["model_calls"] == 1
    return body["conversation_id"]


def test_a_turn_stops_at_a_gated_tool_and_approving_runs_it(
    gated_http: httpx.Client, ollama: OllamaView
) -> None:
    conversation = paused(gated_http, ollama)
    assert len(ollama.chat_requests) == 1  # the tool did not run
    refused = gated_http.post("/api/v1/chat", json={
        "message": "Never mind", "conversation_id": conversation})
    assert error(refused, 409) == {"type": "conversation_busy", "message": WAITING}

    ollama.enqueue_text("6 times 7 is 42.")
    answer = approval(gated_http, conversation, approve=True)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body | {"stats": None} == {
        "conversation_id": conversation, "content": "6 times 7 is 42.", "thinking": "",
        "tool_calls": [{"name": "calculator", "args": SUM, "result": "42"}],
        "model": "llama3.2", "stats": None}  # no pending_approval: nothing waits
    assert body["stats"]["model_calls"] == 1
    assert ollama.chat_requests[-1]["messages"][-1] == {
        "role": "tool", "content": "42", "tool_name": "calculator"}
    assert [m["role"] for m in gated_http.get(f"/api/v1/conversations/{conversation}").json()
            ] == ["user", "assistant", "tool", "assistant"]
    assert error(approval(gated_http, conversation, approve=True), 400) == {
        "type": "invalid_request",
        "message": f"Nothing in conversation {conversation} is waiting for approval."}


def test_streamed_the_pause_is_the_last_event_and_a_denial_streams_the_rest(
    gated_http: httpx.Client, ollama: OllamaView
) -> None:
    ollama.enqueue_tool_call("calculator", SUM)
    asked = gated_http.post("/api/v1/chat", json={"message": "What is 6*7?", "stream": True})
    datas = [data for _, data in sse_frames(asked.text)]
    conversation = datas[0]["conversation_id"]
    base = {"conversation_id": conversation, "model": "llama3.2", "content": "",
            "thinking": "", "done": False, "stats": None}
    call = {"name": "calculator", "args": SUM}
    assert datas[:-1] == [base | {"tool_calls": []},
                          base | {"tool_calls": [call | {"result": None}]}]
    assert datas[-1] | {"stats": None} == base | {
        "tool_calls": [call | {"result": None}], "done": True,
        "pending_approval": {"name": "calculator", "args": SUM}}

    ollama.enqueue_text("I did not calculate it.")
    denied = approval(gated_http, conversation, approve=False, stream=True)
    assert denied.headers["content-type"].startswith("text/event-stream")
    frames = sse_frames(denied.text)
    assert {name for name, _ in frames} == {""}
    datas = [data for _, data in frames]
    refused = [call | {"result": DENIED}]
    assert datas[:-1] == [
        base | {"tool_calls": []},
        base | {"tool_calls": [call | {"result": None}]},
        base | {"tool_calls": refused},
        base | {"tool_calls": refused, "content": "I"},
        base | {"tool_calls": refused, "content": "I did"},
        base | {"tool_calls": refused, "content": "I did not"},
        base | {"tool_calls": refused, "content": "I did not calculate"},
        base | {"tool_calls": refused, "content": "I did not calculate it."},
    ]
    assert datas[-1] | {"stats": None} == base | {
        "tool_calls": refused, "content": "I did not calculate it.", "done": True}
    assert ollama.chat_requests[-1]["messages"][-1] == {
        "role": "tool", "content": DENIED, "tool_name": "calculator"}


@pytest.mark.parametrize(("conversation", "body", "status", "error_body"), [
    (UNKNOWN, {"approve": True}, 404, {
        "type": "not_found", "message": f"No conversation with id {UNKNOWN} was found."}),
    ("not-an-id", {"approve": True}, 400, {
        "type": "invalid_request", "message": NOT_A_SESSION, "field": "conversation_id"}),
    (UNKNOWN, {"approve": "yes"}, 400, {
        "type": "invalid_request", "field": "approve",
        "message": "approve: Input should be a valid boolean."}),
    (UNKNOWN, {}, 400, {"type": "invalid_request", "field": "approve",
                        "message": "approve: Field required."}),
    (UNKNOWN, {"approve": True, "session_id": UNKNOWN}, 400, {
        "type": "invalid_request", "field": "session_id",
        "message": "session_id: Extra inputs are not permitted."}),
])
def test_approvals_that_cannot_be_answered_are_refused_with_a_clear_error(
    gated_http: httpx.Client, conversation: str, body: dict[str, Any], status: int,
    error_body: dict[str, Any],
) -> None:
    assert error(approval(gated_http, conversation, **body), status) == error_body


def test_an_approval_while_the_conversation_answers_is_409(
    gated: Served, gated_http: httpx.Client, ollama: OllamaView
) -> None:
    conversation = paused(gated_http, ollama)
    ollama.add_model("gate")
    ollama.enqueue(Reply(content="42.", model="llama3.2", together=2))
    ollama.enqueue(Reply(content="Go.", model="gate", together=2))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(lambda: approval(gated_http, conversation, approve=True))
        ollama.wait_until(lambda: len(ollama.chat_requests) == 2)  # it answers now
        assert error(approval(gated_http, conversation, approve=False), 409) == {
            "type": "conversation_busy",
            "message": "This conversation is still answering: wait for it, or press Stop."}
        release(ollama)
        assert first.result().json()["content"] == "42."


def test_another_users_waiting_call_is_not_found_for_them(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path, auth="alice:pw1,bob:pw2",
               confirm_tools="calculator") as app, httpx.Client(
        base_url=app.url, timeout=30
    ) as http, OllamaView.of(ollama_server) as ollama:
        tokens = {user: Client(app.url, auth=(user, password), verbose=False).predict(
            "script", 0, api_name="/create_api_token")["token"]
            for user, password in (("alice", "pw1"), ("bob", "pw2"))}
        alice = {"authorization": f"Bearer {tokens['alice']}"}
        bob = {"authorization": f"Bearer {tokens['bob']}"}
        conversation = paused(http, ollama, **alice)
        assert error(http.post(f"/api/v1/conversations/{conversation}/approval",
                               json={"approve": True}, headers=bob), 404) == {
            "type": "not_found", "message": f"No conversation with id {conversation} was found."}
        assert len(ollama.chat_requests) == 1  # bob's answer ran nothing
        ollama.enqueue_text("42.")
        mine = http.post(f"/api/v1/conversations/{conversation}/approval",
                         json={"approve": True}, headers=alice)
        assert mine.json()["content"] == "42."


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
        "/api/v1/conversations/{conversation_id}/approval": ["post"],
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
        app.app.edge.audit_log.flush()  # the audit log is written by a bus subscriber
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
    """Simple requests; preflights and Gradio's own rule are in test_cors.py."""
    origin = {"origin": "https://tool.example"}
    assert "access-control-allow-origin" not in http.get("/api/v1/health", headers=origin).headers
    with serve(ollama_server, tmp_path, cors_origins="https://tool.example") as app:
        with httpx.Client(base_url=app.url, timeout=30) as cors:
            allowed = cors.get("/api/v1/health", headers=origin)
            assert allowed.headers["access-control-allow-origin"] == "https://tool.example"
            assert "X-Conversation-Id" in allowed.headers["access-control-expose-headers"]
            other = cors.get("/api/v1/health", headers={"origin": "https://x.example"})
            assert "access-control-allow-origin" not in other.headers


# -- turns answering at once: OLLAMASTACK_CONCURRENCY -----------------------------------------


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a state of the app that nothing announces."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the state never came"
        time.sleep(0.01)


def held(ollama: OllamaView, *texts: str) -> None:
    """Replies to llama3.2 chats that wait until one more chat, to the model "gate", reaches
    the test server (`release`): answers held open for as long as the test wants."""
    ollama.add_model("gate")
    count = len(texts) + 1
    for text in texts:
        ollama.enqueue(Reply(content=text, model="llama3.2", together=count))
    ollama.enqueue(Reply(content="Go.", model="gate", together=count))


def release(ollama: OllamaView) -> None:
    gate = {"model": "gate", "messages": [{"role": "user", "content": "go"}], "stream": False}
    assert httpx.post(f"{ollama.url}/api/chat", json=gate, timeout=30).status_code == 200


def openai_chat(url: str, text: str) -> str:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": text}]}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["choices"][0]["message"]["content"]


def rest_chat(url: str, text: str) -> str:
    answer = httpx.post(f"{url}/api/v1/chat", json={"message": text}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["content"]


def chat_audit(data_dir: Path) -> list[str]:
    """The outcomes of /api/v1/chat in the audit log so far."""
    audit = data_dir / "audit.jsonl"
    lines = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    return [line["outcome"] for line in lines if line["endpoint"] == "/api/v1/chat"]


def test_rest_and_openai_turns_share_the_concurrency_bound_and_wait_their_turn(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with OllamaView.of(ollama_server) as ollama, serve(
        ollama_server, tmp_path, concurrency=2
    ) as app, ThreadPoolExecutor(3) as pool:
        held(ollama, "First.", "Second.")
        ollama.enqueue(Reply(content="Third.", model="llama3.2"))
        first = pool.submit(rest_chat, app.url, "1")
        second = pool.submit(openai_chat, app.url, "2")
        ollama.wait_until(lambda: len(ollama.chat_requests) == 2)
        third = pool.submit(openai_chat, app.url, "3")
        turns = app.app.rest_turns
        eventually(lambda: turns.waiting == 1)  # it arrived, and waits
        assert (turns.answering, len(ollama.chat_requests), third.done()) == (2, 2, False)
        release(ollama)
        assert sorted([first.result(), second.result()]) == ["First.", "Second."]
        assert third.result() == "Third."  # it waited, and was not refused
        asked = [r["messages"][-1]["content"] for r in ollama.chat_requests]
        assert sorted(asked[:2]) == ["1", "2"] and asked[2:] == ["go", "3"]
        assert (turns.waiting, turns.answering) == (0, 0)


def test_a_client_that_hangs_up_while_waiting_never_runs_its_turn(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with OllamaView.of(ollama_server) as ollama, serve(
        ollama_server, tmp_path, concurrency=1
    ) as app, ThreadPoolExecutor(1) as pool:
        held(ollama, "First.")
        first = pool.submit(rest_chat, app.url, "1")
        ollama.wait_until(lambda: len(ollama.chat_requests) == 1)
        body = json.dumps({"message": "2", "conversation_id": ""}).encode()
        host, port = app.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as waiting:
            waiting.sendall(b"POST /api/v1/chat HTTP/1.1\r\nHost: " + host.encode()
                            + b"\r\nContent-Type: application/json\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
            eventually(lambda: app.app.rest_turns.waiting == 1)
        eventually(lambda: chat_audit(tmp_path) == ["stopped"])  # it gave its place up
        release(ollama)
        assert first.result() == "First."
        eventually(lambda: len(chat_audit(tmp_path)) == 2)
        assert chat_audit(tmp_path) == ["stopped", "ok"]
        assert [r["messages"][-1]["content"] for r in ollama.chat_requests] == ["1", "go"]
        assert (app.app.rest_turns.waiting, app.app.rest_turns.answering) == (0, 0)


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
            await expect(routes).to_have_count(10)
            shown = await routes.all_inner_texts()
        finally:
            await browser.close()
    assert sorted(set(shown)) == sorted({
        "/api/v1/chat", "/api/v1/health", "/api/v1/models", "/api/v1/models/{name}",
        "/api/v1/conversations", "/api/v1/conversations/{conversation_id}",
        "/api/v1/conversations/{conversation_id}/approval", "/v1/models",
        "/v1/chat/completions"})
    assert requested == [f"{served.url}/api/v1/docs", f"{served.url}/api/v1/openapi.json"]
