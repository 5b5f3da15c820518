"""Evidence for the causes the benchmark names, measured in this process.

- `session_state_cost`: Gradio builds a `SessionState` for every new session hash (each REST
  call without one, each browser tab, each `gradio_client.Client`), rendering the config of
  every block of the Blocks (the app's renders a block's when first used); it keeps up to
  `state_session_capacity` (10,000) of them.
- `agent_profile`: cProfile of the agent's own hot path (no Gradio), unpaced, by own time.
- `ttft_breakdown`: where the app's time to first token goes, stage by stage, at one session.
"""

from __future__ import annotations

import cProfile
import pstats
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from bench import load
from bench.fake_ollama import RemoteOllama
from bench.profile import Frame
from bench.sides import AgentSide, Session, SseSide, app_call

IDLE = {"<method 'poll' of 'select.epoll' objects>", "<method 'select' of 'select.epoll' objects>"}


def session_state_cost(settings: Any) -> dict[str, Any]:
    """Time and memory of one Gradio `SessionState` for the app's Blocks (as the app builds
    it, and as Gradio's own `__init__` would) and for the relay's."""
    import gradio as gr
    from gradio.state_holder import SessionState

    from ollamastack.web import gradio_patches
    from ollamastack.web.app import build_app

    async def relay(message: str, model: str) -> Any:
        yield message

    def eager(blocks: Any) -> Any:
        state = SessionState.__new__(SessionState)
        gradio_patches._gradio_init(state, blocks)
        return state

    with gr.Blocks() as bare:
        gr.api(relay, api_name="relay")
    app = build_app(settings).blocks  # installs the app's lazy SessionState
    found = {}
    for name, blocks, build in (("App", app, SessionState), ("App, Gradio's own", app, eager),
                                ("Relay", bare, SessionState)):
        build(blocks)
        started, n = time.perf_counter(), 100
        for _ in range(n):
            build(blocks)
        seconds = (time.perf_counter() - started) / n
        tracemalloc.start()
        kept = [build(blocks) for _ in range(50)]
        size = tracemalloc.get_traced_memory()[0] / len(kept)
        tracemalloc.stop()
        found[name] = {"blocks": len(blocks.blocks), "ms": seconds * 1000, "kib": size / 1024}
    return found


async def agent_profile(settings: Any, fake: RemoteOllama, sessions: int, seconds: float,
                        out: Path) -> tuple[str, float]:
    """The agent unpaced under cProfile: its top functions by own time, and tokens/s."""
    side = await AgentSide(settings).open()
    try:
        await load.warm_up(side, fake, sessions)
        profiler = cProfile.Profile()
        profiler.enable()
        result = await load.ceiling(side, fake, sessions, seconds)
        profiler.disable()
    finally:
        await side.close()
    profiler.dump_stats(out)
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    own = {key: row[2] for key, row in stats.items() if key[2] not in IDLE}
    total = sum(own.values())
    layers: Counter[str] = Counter()
    for (path, _, _), seconds in own.items():
        layers[Frame("", path).layer if path != "~" else "C builtins"] += seconds
    hot = sorted(((seconds, key) for key, seconds in own.items() if key[0] != "~"), reverse=True)
    tokens = sum(result.tokens_per_session)
    line = (
        f"{total * 1e6 / max(tokens, 1):.0f} µs of CPU per token under the profiler. By layer: "
        + ", ".join(f"{layer} {seconds / total:.0%}" for layer, seconds in layers.most_common(6))
        + ". Hottest: "
        + ", ".join(f"`{_short(path)}:{function}` {seconds / total:.0%}"
                    for seconds, (path, _, function) in hot[:5])
        + "."
    )
    return line, result.total_tps


def _short(path: str) -> str:
    """
    >>> _short("/x/site-packages/langchain_core/messages/ai.py")
    'langchain_core/messages/ai.py'
    >>> _short("~")
    '~'
    """
    return path.split("site-packages/")[-1].split("/lib/python3.11/")[-1]


STAGES = [  # (mark, what the time since the previous mark went to)
    ("queued", "POST /gradio_api/call/chat until Gradio queued the job"),
    ("picked", "until the queue picked it up"),
    ("handler", "Gradio before the handler: the per-session state, inputs"),
    ("core", "NamedApi.chat until the core: edge, audit entry, service"),
    ("started", "stream_turn until Started: validation, session index, capabilities"),
    ("token", "until the graph's first token: LangGraph, LangChain, Ollama's first chunk"),
    ("sent", "until Gradio handed that chunk to the SSE stream"),
    ("client", "until the client read it"),
]


def ttft_breakdown(settings: Any, fake: RemoteOllama, turns: int = 6) -> list[tuple[str, float]]:
    """Where the app's time to first token goes at one session: the app served in this
    process with Gradio's and the core's methods wrapped to note when a turn reaches them.
    Returns (stage, median ms) in order; the app code itself is not changed."""
    import asyncio

    import gradio.blocks
    import gradio.queueing

    from ollamastack.agent.service import ChatService
    from ollamastack.events import Started, TextDelta
    from ollamastack.web.app import build_app, launch

    marks: dict[str, float] = {}

    def note(name: str) -> None:
        marks.setdefault(name, time.perf_counter())

    def before(owner: Any, attr: str, name: str) -> tuple[Any, str, Any]:
        original = getattr(owner, attr)

        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            note(name)
            return await original(*args, **kwargs)

        setattr(owner, attr, wrapped)
        return owner, attr, original

    original_push = gradio.queueing.Queue.push

    async def push(*args: Any, **kwargs: Any) -> Any:
        result = await original_push(*args, **kwargs)
        note("queued")
        return result

    original_send = gradio.queueing.Queue.send_message

    def send(queue: Any, event: Any, message: Any) -> Any:
        if type(message).__name__ == "ProcessGeneratingMessage":
            note("sent")
        return original_send(queue, event, message)

    original_turn = ChatService.stream_turn

    async def stream_turn(*args: Any, **kwargs: Any) -> Any:
        note("core")
        async for event in original_turn(*args, **kwargs):
            if isinstance(event, Started):
                note("started")
            elif isinstance(event, TextDelta):
                note("token")
            yield event

    patched = [
        before(gradio.queueing.Queue, "process_events", "picked"),
        before(gradio.blocks.Blocks, "preprocess_data", "handler"),
        (gradio.queueing.Queue, "push", original_push),
        (gradio.queueing.Queue, "send_message", original_send),
        (ChatService, "stream_turn", original_turn),
    ]
    gradio.queueing.Queue.push = push  # type: ignore[method-assign]
    gradio.queueing.Queue.send_message = send  # type: ignore[method-assign]
    ChatService.stream_turn = stream_turn  # type: ignore[method-assign]
    app = build_app(settings)
    try:
        _, url, _ = launch(app, settings, prevent_thread_lock=True, quiet=True)
        async def measure() -> list[dict[str, float]]:
            side = SseSide("App", url.rstrip("/"), "chat", app_call)
            runs = []
            try:
                await load.warm_up(side, fake, 1)
                fake.set_token_rate(100)
                for t in range(turns):
                    fake.script([(load.model_of(0), load.ANSWER, False)])
                    marks.clear()
                    posted = time.perf_counter()
                    timed = await side.turn(Session(0, load.model_of(0)), f"Question {t}")
                    if timed.ttft is not None:
                        marks["client"] = posted + timed.ttft
                        runs.append({k: (v - posted) * 1000 for k, v in marks.items()})
            finally:
                await side.close()
            return runs

        runs = asyncio.run(measure())
    finally:
        app.blocks.close()
        for owner, attr, original in patched:
            setattr(owner, attr, original)
    found, previous = [], 0.0
    for name, what in STAGES:
        values = sorted(r[name] for r in runs if name in r)
        if values:
            at = values[len(values) // 2]
            found.append((what, at - previous))
            previous = at
    return found
