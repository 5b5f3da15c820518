"""The named API over HTTP, as its users call it: gradio_client against the launched app,
with the Ollama-protocol test server behind it."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from itertools import groupby, islice, pairwise
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError

from ollamastack.settings import DEFAULT_SYSTEM_PROMPT
from ollamastack.web.coalesce import FRAME_SECONDS
from tests.support.api_helpers import (
    OllamaView,
    Served,
    chunk,
    growing,
    run,
    run_raw,
    serve,
    stats,
    without_timings,
)
from tests.support.ollama_server import FakeModel, FakeOllama

SYSTEM = {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
NOT_A_SESSION = "The session id must be a UUID4 as returned by the server."
REQ = "required"


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app, sending a /chat dict after every event: the tests below check each one."""
    with serve(shared_server, tmp_path_factory.mktemp("data"), concurrency=4) as served:
        served.app.api.update_interval = 0
        yield served


@pytest.fixture
def in_frames(served: Served) -> Iterator[float]:
    """The app as it ships: /chat sends at most one dict per frame while text streams."""
    served.app.api.update_interval = FRAME_SECONDS
    try:
        yield FRAME_SECONDS
    finally:
        served.app.api.update_interval = 0


def eventually(fetch: Callable[[], Any], *, until: Callable[[Any], Any], n: Any) -> Any:
    """Poll `fetch()` until `until(value) == n`: for state the server settles after a reply."""
    deadline = time.monotonic() + 5
    while until(value := fetch()) != n:
        assert time.monotonic() < deadline, value
        time.sleep(0.02)
    return value


def chat(client: Client, *args: Any) -> list[dict]:
    outputs, error = run(client, *args, api_name="/chat")
    assert error is None
    return outputs


def cancel_after_three_tokens(
    client: Client, ollama: OllamaView, message: str
) -> tuple[list[dict], str, str]:
    """Cancel a /chat after its third dict: (the dicts seen, the session, the whole answer).

    Each dict holds one more token (10 tokens/s is slower than a frame), and Ollama's stream
    is cut before this returns.
    """
    ollama.server.token_rate = 10  # 4 s of answer: the cancel lands mid-stream even on a busy CI
    text = " ".join(f"w{i}" for i in range(40))
    ollama.enqueue_text(text)
    job = client.submit(message, api_name="/chat")
    seen = list(islice(job, 3))
    job.cancel()
    assert [o["content"] for o in seen] == growing(text)[:3]
    ollama.wait_until(lambda: ollama.requests[-1].disconnected)  # Ollama's stream was cut
    return seen, seen[0]["session_id"], text


# -- the contract -----------------------------------------------------------


def test_the_api_page_lists_every_endpoint_with_its_parameters(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    parameters = {
        name: [
            (p["parameter_name"], p["parameter_default"] if p["parameter_has_default"] else REQ)
            for p in e["parameters"]
        ]
        for name, e in endpoints.items()
    }
    assert parameters == {
        "/chat": [
            ("message", REQ),
            ("session_id", ""),
            ("model", ""),
            ("temperature", None),
            ("system_prompt", ""),
            ("files", None),
        ],
        "/approve_tool": [("session_id", REQ), ("approve", REQ)],
        "/tools": [("refresh", True)],
        "/models": [],
        "/health": [],
        "/history": [("session_id", REQ)],
        "/sessions": [],
        "/delete_session": [("session_id", REQ)],
        "/search_conversations": [("query", REQ)],
        "/rename_session": [("session_id", REQ), ("title", REQ)],
        "/edit_message": [("session_id", REQ), ("message_index", REQ), ("message", REQ)],
        "/switch_branch": [("session_id", REQ), ("message_index", REQ), ("branch", REQ)],
        "/pull_model": [("name", REQ)],
        "/delete_model": [("name", REQ)],
        "/usage": [("days", 7)],
    }
    assert endpoints["/chat"]["description"].startswith("Send a message to the agent")


# -- chat -------------------------------------------------------------------


def test_chat_streams_the_answer_and_continues_the_session_with_memory(
    client: Client, ollama: OllamaView
) -> None:
    ollama.enqueue_text("Nice to meet you, Ada.")
    first = chat(client, "My name is Ada.")
    session = first[0]["session_id"]
    assert [*first[:-1], without_timings(first[-1])] == [
        *(chunk(session, text) for text in growing("Nice to meet you, Ada.")),
        chunk(
            session,
            "Nice to meet you, Ada.",
            done=True,
            stats=stats(ollama.chat_requests, completion_tokens=5),
        ),
    ]

    ollama.enqueue_text("You are Ada.")
    second = chat(client, "What is my name?", session)
    assert [*second[:-1], without_timings(second[-1])] == [
        *(chunk(session, text) for text in growing("You are Ada.")),
        chunk(
            session,
            "You are Ada.",
            done=True,
            stats=stats(ollama.chat_requests[1:], completion_tokens=3),
        ),
    ]
    assert [r["messages"] for r in ollama.chat_requests] == [
        [SYSTEM, {"role": "user", "content": "My name is Ada."}],
        [
            SYSTEM,
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": "What is my name?"},
        ],
    ]
    assert client.predict(session, api_name="/history") == [
        {"role": "user", "content": "My name is Ada.", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "You are Ada."},
    ]


def test_chat_passes_model_temperature_and_system_prompt_to_ollama(
    client: Client, ollama: OllamaView
) -> None:
    ollama.add_model("phi3:mini", capabilities=("completion",))
    ollama.enqueue_text("Ahoy!")
    outputs = chat(client, "Hello", "", "phi3:mini", 0.2, "Talk like a pirate.")
    assert outputs[-1]["content"] == "Ahoy!"
    choice, request = ollama.chat_requests  # prompted tools: a JSON choice ("none"), then it
    assert choice["format"]["anyOf"][0]["properties"]["tool"] == {"const": "none"}
    assert (request["model"], request["options"]["temperature"], request["messages"][0]) == (
        "phi3:mini",
        0.2,
        {"role": "system", "content": "Talk like a pirate."},
    )
    assert not request.get("tools")  # the model cannot call tools, so none are offered


def test_chat_shows_each_tool_call_with_its_arguments_and_result(
    client: Client, ollama: OllamaView
) -> None:
    ollama.enqueue_tool_call("calculator", {"expression": "6 * 7"})
    ollama.enqueue_text("6 times 7 is 42.")
    outputs = chat(client, "What is 6 times 7?")
    session = outputs[0]["session_id"]
    call = {"name": "calculator", "args": {"expression": "6 * 7"}}
    answered = [call | {"result": "42"}]
    assert [*outputs[:-1], without_timings(outputs[-1])] == [
        chunk(session, tool_calls=[call | {"result": None}]),
        chunk(session, tool_calls=answered),
        *(chunk(session, text, tool_calls=answered) for text in growing("6 times 7 is 42.")),
        chunk(
            session,
            "6 times 7 is 42.",
            tool_calls=answered,
            done=True,
            stats=stats(ollama.chat_requests, completion_tokens=1 + 5),
        ),
    ]
    # the model read the tool's result
    assert ollama.chat_requests[1]["messages"][-1] == {
        "role": "tool", "content": "42", "tool_name": "calculator"
    }
    assert client.predict(session, api_name="/history") == [
        {"role": "user", "content": "What is 6 times 7?", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "42", "name": "calculator"},
        {"role": "assistant", "content": "6 times 7 is 42."},
    ]


def test_chat_streams_a_thinking_models_reasoning_apart_from_the_answer(
    client: Client, ollama: OllamaView
) -> None:
    ollama.add_model("qwen3", capabilities=("completion", "tools", "thinking"))
    ollama.enqueue_thinking_text(thinking="Two plus two is four.", text="4")
    outputs = chat(client, "What is 2+2?", "", "qwen3")
    session = outputs[0]["session_id"]
    reasoning = "Two plus two is four."
    assert [o["thinking"] for o in outputs] == [*growing(reasoning), reasoning, reasoning]
    assert [o["content"] for o in outputs] == ["", "", "", "", "", "4", "4"]
    assert ollama.chat_requests[0]["think"] is True
    assert client.predict(session, api_name="/history")[-1] == {"role": "assistant", "content": "4"}


def test_cancelling_a_chat_keeps_what_streamed_marked_as_stopped(
    client: Client, ollama: OllamaView
) -> None:
    seen, session, text = cancel_after_three_tokens(client, ollama, "Count to twelve")

    history = eventually(lambda: client.predict(session, api_name="/history"), until=len, n=2)
    stored = history[1]["content"]
    assert stored in growing(text) and stored.startswith(seen[-1]["content"])
    assert history == [
        {"role": "user", "content": "Count to twelve", "branch": 1, "branches": 1},
        {"role": "assistant", "content": stored, "interrupted": "stopped by the user"},
    ]
    ollama.server.token_rate = None  # and the conversation goes on
    assert chat(client, "Go on", session)[-1]["content"] == "You said: Go on"
    assert ollama.chat_requests[-1]["messages"][1:] == [
        {"role": "user", "content": "Count to twelve"},
        {"role": "assistant", "content": stored},
        {"role": "user", "content": "Go on"},
    ]


def test_chat_streams_in_frames_first_token_at_once_and_the_whole_answer_last(
    client: Client, ollama: OllamaView, in_frames: float
) -> None:
    ollama.server.token_rate = 200  # 60 tokens in 0.3 s: about 6 frames, not 60 updates
    text = " ".join(f"w{i}" for i in range(60))
    ollama.enqueue_text(text)
    outputs, error = run(client, "Count", api_name="/chat")
    assert error is None
    session = outputs[0]["session_id"]

    assert outputs[0] == chunk(session, "w0")  # the first token is not held back
    assert without_timings(outputs[-1]) == chunk(
        session, text, done=True, stats=stats(ollama.chat_requests, 60, token_rate=200)
    )
    contents = [o["content"] for o in outputs[:-1]]
    assert all(c in growing(text) for c in contents), contents  # whole tokens, in order
    assert contents == sorted(set(contents), key=contents.index)  # each dict says more
    assert 3 <= len(outputs) <= 12, contents  # ~0.3 s in 50 ms frames, and the first and last


def test_chat_in_frames_sends_what_streamed_before_a_failure(
    client: Client, ollama: OllamaView, in_frames: float
) -> None:
    ollama.enqueue_stream_error("model runner crashed", text="Half an answer", after_chunks=2)
    outputs, error = run(client, "Tell me", api_name="/chat")
    assert error == "Ollama reported an error: model runner crashed"
    assert [o["content"] for o in outputs] == ["Half", "Half an"]  # the held token too


def test_cancelling_a_chat_in_frames_keeps_what_streamed_marked_as_stopped(
    client: Client, ollama: OllamaView, in_frames: float
) -> None:
    seen, session, _ = cancel_after_three_tokens(client, ollama, "Count to forty")

    history = eventually(lambda: client.predict(session, api_name="/history"), until=len, n=2)
    assert history[1]["interrupted"] == "stopped by the user"
    assert history[1]["content"].startswith(seen[-1]["content"])


def test_rest_calls_leave_no_gradio_session_state_behind(
    served: Served, client: Client, ollama: OllamaView
) -> None:
    holder = served.app.blocks.server_app.state_holder
    client.predict(api_name="/health")  # gradio_client names its session: Gradio keeps it
    before = set(holder.session_data)
    for i in range(5):
        outputs, error = run_raw(served.url, "/chat", [f"Hello {i}", "", "", None, ""])
        assert error is None and outputs[-1]["done"] is True
    outputs, error = run_raw(served.url, "/health", [])
    assert error is None and outputs[-1]["status"] == "ok"
    # each REST call's made-up session is gone, once its result stream has ended on the server
    eventually(lambda: set(holder.session_data), until=lambda s: s == before, n=True)
    assert client.predict(api_name="/health")["status"] == "ok"  # the named one still works


# -- validation (what /chat refuses is in test_bad_input.py) ----------------

MALFORMED_SESSIONS = ["../../etc/passwd", "' OR 1=1 --", "a" * 10_000]
BAD_MODEL = "{!r} is not a valid model name (letters, digits, '.', '-', '_', '/' and one ':tag')."


@pytest.mark.parametrize("bad", MALFORMED_SESSIONS)
@pytest.mark.parametrize("endpoint", ["/history", "/delete_session"])
def test_session_endpoints_refuse_malformed_ids(client: Client, endpoint: str, bad: str) -> None:
    assert run(client, bad, api_name=endpoint) == ([], NOT_A_SESSION)


# -- sessions ---------------------------------------------------------------


def test_sessions_lists_conversations_newest_first_and_delete_removes_one(
    client: Client, ollama: OllamaView
) -> None:
    older = chat(client, "First conversation")[0]["session_id"]
    newer = chat(client, "Second conversation")[0]["session_id"]
    listed = client.predict(api_name="/sessions")
    assert [(s["session_id"], s["title"]) for s in listed[:2]] == [
        (newer, "Second conversation"),
        (older, "First conversation"),
    ]
    assert listed[0]["created_at"] <= listed[0]["updated_at"]

    assert client.predict(older, api_name="/delete_session") == {
        "session_id": older,
        "deleted": True,
    }
    assert older not in [s["session_id"] for s in client.predict(api_name="/sessions")]
    gone = f"No conversation with id {older} was found."
    assert run(client, older, api_name="/history") == ([], gone)
    assert run(client, "Hello again", older, api_name="/chat") == ([], gone)


def test_history_and_sessions_survive_a_restart_on_the_same_data_directory(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    ollama_server.enqueue_tool_call("calculator", {"expression": "2 + 2"})
    ollama_server.enqueue_text("It is 4.")
    with serve(ollama_server, tmp_path) as first:
        before = Client(first.url, verbose=False)
        session = before.predict("What is 2 + 2?", api_name="/chat")["session_id"]
        history = before.predict(session, api_name="/history")
        sessions = before.predict(api_name="/sessions")

    with serve(ollama_server, tmp_path) as second:
        after = Client(second.url, verbose=False)
        assert after.predict(session, api_name="/history") == history == [
            {"role": "user", "content": "What is 2 + 2?", "branch": 1, "branches": 1},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"name": "calculator", "args": {"expression": "2 + 2"}}],
            },
            {"role": "tool", "content": "4", "name": "calculator"},
            {"role": "assistant", "content": "It is 4."},
        ]
        assert after.predict(api_name="/sessions") == sessions
        assert [s["title"] for s in sessions] == ["What is 2 + 2?"]
        # and the restored conversation continues with its memory
        after.predict("And times 3?", session, api_name="/chat")
    assert ollama_server.chat_requests[-1]["messages"][1:] == [
        {"role": "user", "content": "What is 2 + 2?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"function": {"name": "calculator", "arguments": {"expression": "2 + 2"}}}
            ],
        },
        {"role": "tool", "content": "4", "tool_name": "calculator"},
        {"role": "assistant", "content": "It is 4."},
        {"role": "user", "content": "And times 3?"},
    ]


def test_with_login_each_user_reaches_only_their_own_sessions(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path, auth="alice:pw1,bob:pw2") as app:
        alice = Client(app.url, auth=("alice", "pw1"), verbose=False)
        bob = Client(app.url, auth=("bob", "pw2"), verbose=False)
        session = alice.predict("My secret is 42.", api_name="/chat")["session_id"]
        chats_before = len(ollama_server.chat_requests)

        gone = f"No conversation with id {session} was found."
        assert run(bob, session, api_name="/history") == ([], gone)
        assert run(bob, "What is the secret?", session, api_name="/chat") == ([], gone)
        assert run(bob, session, api_name="/delete_session") == ([], gone)
        assert bob.predict(api_name="/sessions") == []
        assert len(ollama_server.chat_requests) == chats_before

        assert [s["session_id"] for s in alice.predict(api_name="/sessions")] == [session]
        assert alice.predict(session, api_name="/history") == [
            {"role": "user", "content": "My secret is 42.", "branch": 1, "branches": 1},
            {"role": "assistant", "content": "You said: My secret is 42."},
        ]
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            Client(app.url, verbose=False)
        with pytest.raises(ValueError, match="Could not login"):
            Client(app.url, auth=("bob", "pw1"), verbose=False)


# -- models and health ------------------------------------------------------


def test_models_lists_installed_models_with_details(client: Client, ollama: OllamaView) -> None:
    ollama.add_model(
        "gemma3:12b",
        capabilities=("completion", "tools", "thinking"),
        size=5_225_376_047,
        parameter_size="12.2B",
        quantization="Q4_K_M",
    )
    assert client.predict(api_name="/models") == [
        {
            "name": "gemma3:12b",
            "size": 5_225_376_047,
            "parameter_size": "12.2B",
            "quantization": "Q4_K_M",
            "capabilities": ["completion", "tools", "thinking"],
            "embedded": False,
        },
        {
            "name": "llama3.2:latest",
            "size": FakeModel.size,
            "parameter_size": "3.2B",
            "quantization": "Q4_K_M",
            "capabilities": ["completion", "tools"],
            "embedded": False,
        },
    ]


def test_health_reports_ollama_down_and_back_and_chat_recovers_without_a_restart(
    client: Client, ollama: OllamaView
) -> None:
    up = {"status": "ok", "ollama_url": ollama.url, "ollama_version": "0.12.6", "models": 1,
          "default_model": "llama3.2", "embedded_model": ""}
    assert client.predict(api_name="/health") == up
    session = chat(client, "Are you there?")[0]["session_id"]

    ollama.stop()
    assert client.predict(api_name="/health") == {
        "status": "unavailable",
        "ollama_url": ollama.url,
        "ollama_version": "",
        "models": 0,
        "default_model": "llama3.2",
        "embedded_model": "",
    }
    unreachable = (
        f"Ollama is not reachable at {ollama.url}. Start it with `ollama serve` "
        "(or `docker compose up ollama`), or point OLLAMA_HOST at a running server."
    )
    assert run(client, "Still there?", session, api_name="/chat") == ([], unreachable)
    assert run(client, api_name="/models") == ([], unreachable)

    ollama.start()
    assert client.predict(api_name="/health") == up
    assert chat(client, "Back again?", session)[-1]["content"] == "You said: Back again?"
    assert client.predict(session, api_name="/history") == [
        {"role": "user", "content": "Are you there?", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "You said: Are you there?"},
        {"role": "user", "content": "Still there?", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "", "interrupted": unreachable},
        {"role": "user", "content": "Back again?", "branch": 1, "branches": 1},
        {"role": "assistant", "content": "You said: Back again?"},
    ]


def test_pull_model_streams_progress_then_the_model_is_installed(
    client: Client, ollama: OllamaView
) -> None:
    outputs, error = run(client, "qwen3:8b", api_name="/pull_model")
    assert error is None
    layers = [("model", FakeModel.size - 2_000), ("template", 1_429), ("params", 571)]
    expected = [{"status": "pulling manifest", "completed": 0, "total": 0}]
    for layer, total in layers:
        digest = hashlib.sha256(f"qwen3:8b/{layer}".encode()).hexdigest()[:12]
        expected += [
            {"status": f"pulling {digest}", "completed": total * step // 4, "total": total}
            for step in range(5)
        ]
    expected += [
        {"status": status, "completed": 0, "total": 0}
        for status in ("verifying sha256 digest", "writing manifest", "success")
    ]
    assert outputs == expected
    statuses = [status for status, _ in groupby(o["status"] for o in outputs)]
    assert len(statuses) == 7 and statuses[-1] == "success"
    assert [m["name"] for m in client.predict(api_name="/models")] == [
        "qwen3:8b",
        "llama3.2:latest",
    ]
    assert [r.body for r in ollama.requests if r.path == "/api/pull"] == [
        {"model": "qwen3:8b", "insecure": False, "stream": True}
    ]


def test_pull_model_reports_a_name_the_registry_does_not_have(
    client: Client, ollama: OllamaView
) -> None:
    outputs, error = run(client, "missing-model", api_name="/pull_model")
    assert outputs == [{"status": "pulling manifest", "completed": 0, "total": 0}]
    assert error == "Ollama reported an error: pull model manifest: file does not exist"
    assert run(client, "../../etc", api_name="/pull_model") == ([], BAD_MODEL.format("../../etc"))
    assert [r.path for r in ollama.requests if r.path == "/api/pull"] == ["/api/pull"]


def test_delete_model_removes_it_from_ollama(client: Client, ollama: OllamaView) -> None:
    ollama.add_model("mistral:7b")
    assert client.predict("mistral:7b", api_name="/delete_model") == {
        "name": "mistral:7b",
        "deleted": True,
    }
    assert [m["name"] for m in client.predict(api_name="/models")] == ["llama3.2:latest"]
    assert [(r.method, r.body) for r in ollama.requests if r.path == "/api/delete"] == [
        ("DELETE", {"model": "mistral:7b"})
    ]
    assert run(client, "mistral:7b", api_name="/delete_model") == (
        [],
        "Model 'mistral:7b' is not installed in Ollama. "
        "Pull it with `ollama pull mistral:7b` or from the Models tab.",
    )


# -- concurrency ------------------------------------------------------------


def test_two_sessions_stream_at_the_same_time(client: Client, ollama: OllamaView) -> None:
    ollama.server.token_rate = 20  # 6 tokens: about 0.3 s per answer
    messages = ["one two three four", "five six seven eight"]
    ollama.server.together = 2  # both answered once both requests reached Ollama
    arrivals: dict[str, list[tuple[float, dict]]] = {m: [] for m in messages}

    def stream(message: str) -> None:
        for output in client.submit(message, api_name="/chat"):
            arrivals[message].append((time.monotonic(), output))

    threads = [threading.Thread(target=stream, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    for message in messages:
        outputs = [output for _, output in arrivals[message]]
        assert [o["content"] for o in outputs] == [
            *growing(f"You said: {message}"),
            f"You said: {message}",
        ]
        assert outputs[-1]["done"] is True
    first, second = ([t for t, _ in arrivals[m]] for m in messages)
    # each stream got chunks while the other was still streaming
    assert first[0] < second[-1] and second[0] < first[-1], (first, second)
    merged = sorted((t, m) for m in messages for t, _ in arrivals[m])
    switches = sum(1 for a, b in pairwise(merged) if a[1] != b[1])
    assert switches >= 3, merged
