"""The OpenAI-compatible routes through the official `openai` package, unchanged, against the
launched app (and raw HTTP where the package hides what is sent)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from gradio_client import Client

from ollamastack.settings import DEFAULT_SYSTEM_PROMPT
from tests.support.api_helpers import OllamaView, Served, serve
from tests.support.ollama_server import FakeOllama

SYSTEM = {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("data")) as served:
        yield served


@pytest.fixture
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)


def conversations(served: Served) -> list[dict]:
    return httpx.get(f"{served.url}/api/v1/conversations").json()


def test_a_completion_is_the_agents_final_answer_with_usage_and_nothing_is_kept(
    client: openai.OpenAI, served: Served, ollama: OllamaView
) -> None:
    before = conversations(served)
    ollama.enqueue_tool_call("calculator", {"expression": "6 * 7"})
    ollama.enqueue_text("It is 42.")
    completion = client.chat.completions.create(
        model="llama3.2", temperature=0.3, user="ignored-field",
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "What is 6 times 7?"}],
    )
    assert completion.object == "chat.completion" and completion.model == "llama3.2"
    assert [(c.index, c.message.role, c.message.content, c.finish_reason)
            for c in completion.choices] == [(0, "assistant", "It is 42.", "stop")]
    prompt = sum(len(str(m.get("content") or "").split())
                 for r in ollama.chat_requests for m in r["messages"])
    assert completion.usage.model_dump(include={"prompt_tokens", "completion_tokens",
                                                "total_tokens"}) == {
        "prompt_tokens": prompt, "completion_tokens": 4, "total_tokens": prompt + 4}  # 1 + 3
    assert ollama.chat_requests[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 6 times 7?"}]
    assert ollama.chat_requests[0]["options"]["temperature"] == 0.3
    assert conversations(served) == before  # nothing stored without X-Conversation-Id


def test_streaming_sends_the_text_as_it_comes_then_the_finish_and_done(
    client: openai.OpenAI, ollama: OllamaView
) -> None:
    ollama.enqueue_text("Streamed reply here.")
    stream = client.chat.completions.create(
        model="llama3.2", stream=True, messages=[{"role": "user", "content": "Hi"}])
    chunks = list(stream)
    assert [(c.choices[0].delta.role, c.choices[0].delta.content, c.choices[0].finish_reason)
            for c in chunks] == [
        ("assistant", "", None), (None, "Streamed", None), (None, " reply", None),
        (None, " here.", None), (None, None, "stop")]
    assert chunks[-1].usage.completion_tokens == 3
    assert len({c.id for c in chunks}) == 1


def test_a_stream_closed_early_leaves_no_conversation_behind(
    client: openai.OpenAI, served: Served, ollama: OllamaView
) -> None:
    before = conversations(served)
    ollama.server.token_rate = 10  # 4 s of answer: the close lands mid-stream
    ollama.enqueue_text(" ".join(f"w{i}" for i in range(40)))
    stream = client.chat.completions.create(
        model="llama3.2", stream=True, messages=[{"role": "user", "content": "Count"}])
    for chunk in stream:
        if chunk.choices[0].delta.content:
            break
    assert len(conversations(served)) == len(before) + 1  # the turn's own, while it runs
    stream.close()
    deadline = time.monotonic() + 5
    while (now := conversations(served)) != before:
        assert time.monotonic() < deadline, now
        time.sleep(0.05)


def test_the_raw_stream_ends_with_done(served: Served, ollama: OllamaView) -> None:
    ollama.enqueue_text("Yes.")
    body = {"model": "llama3.2", "stream": True, "messages": [{"role": "user", "content": "?"}]}
    answer = httpx.post(f"{served.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.endswith("data: [DONE]\n\n")


def test_earlier_messages_reach_the_model_when_nothing_is_stored(
    client: openai.OpenAI, ollama: OllamaView
) -> None:
    ollama.enqueue_text("You are Ann.")
    client.chat.completions.create(model="llama3.2", messages=[
        {"role": "user", "content": "I am Ann."},
        {"role": "assistant", "content": "Hello Ann."},
        {"role": "user", "content": [{"type": "text", "text": "Who am I?"}]},
    ])
    assert ollama.chat_requests[0]["messages"] == [SYSTEM, {"role": "user", "content": (
        "Earlier in this conversation:\nuser: I am Ann.\nassistant: Hello Ann.\n\nWho am I?")}]


def test_a_named_conversation_is_stored_and_remembered(
    client: openai.OpenAI, served: Served, ollama: OllamaView
) -> None:
    ollama.enqueue_text("Hello Ann.")
    first = httpx.post(f"{served.url}/api/v1/chat", json={"message": "I am Ann."}, timeout=30)
    conversation = first.json()["conversation_id"]
    ollama.enqueue_text("You are Ann.")
    raw = client.chat.completions.with_raw_response.create(
        model="llama3.2", messages=[{"role": "user", "content": "Who am I?"}],
        extra_headers={"X-Conversation-Id": conversation})
    assert raw.headers["x-conversation-id"] == conversation
    assert raw.parse().choices[0].message.content == "You are Ann."
    history = httpx.get(f"{served.url}/api/v1/conversations/{conversation}").json()
    assert [m["content"] for m in history] == [
        "I am Ann.", "Hello Ann.", "Who am I?", "You are Ann."]


def test_models_are_listed_and_an_unknown_model_is_an_openai_404(
    client: openai.OpenAI,
) -> None:
    assert [(m.id, m.object, m.owned_by) for m in client.models.list()] == [
        ("llama3.2:latest", "model", "ollama")]
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nosuch", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 404
    assert caught.value.body == {
        "message": "Model 'nosuch' is not installed in Ollama. Pull it with `ollama pull "
                   "nosuch` or from the Models tab.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}


def test_bad_requests_are_openai_400s(client: openai.OpenAI, served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="llama3.2", temperature=7,
                                       messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["message"] == "The temperature must be a number from 0 to 2."
    with pytest.raises(openai.BadRequestError) as last:
        client.chat.completions.create(model="llama3.2",
                                       messages=[{"role": "assistant", "content": "x"}])
    assert last.value.body["message"] == (
        'The last of the messages must be the user\'s (role "user").')
    raw = httpx.post(f"{served.url}/v1/chat/completions", content=b'{"model": "m", "messages": [',
                     headers={"content-type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"


def test_with_login_the_api_key_is_a_personal_token(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path, auth="ann:pw-ann") as app:
        ann = Client(app.url, auth=("ann", "pw-ann"), verbose=False)
        token = ann.predict("editor", 0, api_name="/create_api_token")["token"]
        ollama_server.enqueue_text("Hi Ann.")
        good = openai.OpenAI(base_url=f"{app.url}/v1", api_key=token, max_retries=0)
        reply = good.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content == "Hi Ann."
        bad = openai.OpenAI(base_url=f"{app.url}/v1", api_key="osk_wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.models.list()
        assert caught.value.body["message"] == "The API token is unknown, revoked or expired."


def test_max_tokens_reaches_ollama_as_num_predict(
    client: openai.OpenAI, ollama: OllamaView
) -> None:
    client.chat.completions.create(
        model="llama3.2", max_tokens=12, messages=[{"role": "user", "content": "Hi"}]
    )
    client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
    capped, free = ollama.chat_requests
    assert capped["options"]["num_predict"] == 12
    assert "num_predict" not in free["options"]


# -- tools that wait for a person's approval (OLLAMASTACK_CONFIRM_TOOLS) ------------------

SUM = {"expression": "6*7"}
NOT_ASKED = ('The calculator tool (arguments {"expression": "6*7"}) runs only once you approve '
             "it, which this OpenAI-compatible API cannot ask for, so it did not run. Send the "
             "message on the page or to POST /api/v1/chat to approve it there.")


@pytest.fixture(scope="module")
def gated(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("gated"), confirm_tools="calculator") as app:
        yield app


@pytest.fixture
def gated_client(gated: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gated.url}/v1", api_key="unused", max_retries=0)


def test_a_gated_tool_ends_the_answer_saying_so_and_nothing_runs_or_waits(
    gated_client: openai.OpenAI, gated: Served, ollama: OllamaView
) -> None:
    before = conversations(gated)
    ollama.enqueue_tool_call("calculator", SUM, text="Let me calculate.")
    completion = gated_client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "What is 6*7?"}])
    assert [(c.message.content, c.finish_reason) for c in completion.choices] == [
        (f"Let me calculate.\n\n{NOT_ASKED}", "stop")]
    assert len(ollama.chat_requests) == 1  # the tool never ran
    assert conversations(gated) == before  # the waiting call went with its conversation

    ollama.enqueue_tool_call("calculator", SUM)
    stream = gated_client.chat.completions.create(
        model="llama3.2", stream=True, messages=[{"role": "user", "content": "6*7?"}])
    assert [(c.choices[0].delta.content, c.choices[0].finish_reason) for c in stream] == [
        ("", None), (NOT_ASKED, None), (None, "stop")]
    assert conversations(gated) == before


def test_in_a_stored_conversation_the_call_waits_for_the_rest_api(
    gated_client: openai.OpenAI, gated: Served, ollama: OllamaView
) -> None:
    ollama.enqueue_text("Hello.")
    first = httpx.post(f"{gated.url}/api/v1/chat", json={"message": "Hi"}, timeout=30)
    conversation = first.json()["conversation_id"]
    kept = {"X-Conversation-Id": conversation}
    ollama.enqueue_tool_call("calculator", SUM)
    stream = gated_client.chat.completions.create(
        model="llama3.2", stream=True, extra_headers=kept,
        messages=[{"role": "user", "content": "What is 6*7?"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream) == (
        'The calculator tool (arguments {"expression": "6*7"}) runs only once you approve it: '
        f"approve or deny it on the page or with POST /api/v1/conversations/{conversation}"
        "/approval. Until then this conversation takes no new message.")

    with pytest.raises(openai.ConflictError) as caught:
        gated_client.chat.completions.create(
            model="llama3.2", extra_headers=kept,
            messages=[{"role": "user", "content": "Never mind"}])
    assert caught.value.body["message"] == (
        "This conversation is waiting for your approval to run the calculator tool: approve "
        "or deny it first.")
    assert len(ollama.chat_requests) == 2  # neither the tool nor the refused turn ran

    ollama.enqueue_text("It is 42.")
    approved = httpx.post(f"{gated.url}/api/v1/conversations/{conversation}/approval",
                          json={"approve": True}, timeout=30)
    assert approved.json()["tool_calls"] == [
        {"name": "calculator", "args": SUM, "result": "42"}]
    assert approved.json()["content"] == "It is 42."
