"""The event bus (order, bounded queues, failing and slow subscribers) and the lifecycle
events a real chat service emits on it, turn by turn."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import pytest

from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.bus import EventBus, ThreadSubscription
from ollamastack.events import Started
from ollamastack.lifecycle import (
    ConversationDeleted,
    ModelDeleted,
    ModelPulled,
    ToolCalled,
    TurnCompleted,
    TurnFailed,
    TurnStarted,
)
from tests.support.chat_helpers import make_settings
from tests.support.ollama_server import FakeOllama


async def test_each_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    first: list[int] = []
    second: list[int] = []

    async def slow(event: int) -> None:
        await asyncio.sleep(0.001)
        second.append(event)

    bus.subscribe(first.append)
    bus.subscribe(slow)
    for number in range(50):
        bus.emit(number)
    await bus.drain()
    assert first == second == list(range(50))
    assert [s.delivered for s in bus.subscriptions] == [50, 50]
    await bus.aclose()


async def test_a_full_queue_drops_new_events_and_counts_them() -> None:
    bus = EventBus()
    seen: list[int] = []
    subscription = bus.subscribe(seen.append, queue_size=3)
    for number in range(5):
        bus.emit(number)  # nothing runs between these: the queue holds 3
    await bus.drain()
    assert seen == [0, 1, 2]
    assert (subscription.dropped, subscription.depth) == (2, 0)
    bus.emit(5)  # room again
    await bus.aclose()
    assert seen == [0, 1, 2, 5]


async def test_a_failing_subscriber_is_logged_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[int] = []

    def broken(event: int) -> None:
        if event == 1:
            raise ValueError("broken subscriber")
        seen.append(event * 10)

    failing = bus.subscribe(broken, name="broken")
    bus.subscribe(seen.append, name="fine")
    with caplog.at_level(logging.ERROR, logger="ollamastack.bus"):
        for number in range(3):
            bus.emit(number)  # never raises
        await bus.aclose()
    assert sorted(seen) == [0, 0, 1, 2, 20]
    assert (failing.failed, failing.delivered) == (1, 2)
    [record] = caplog.records
    assert record.getMessage() == "event subscriber broken failed on int"
    assert "broken subscriber" in record.exc_text


async def test_emit_never_waits_for_a_slow_subscriber() -> None:
    bus = EventBus()
    release = asyncio.Event()

    async def stuck(event: Any) -> None:
        await release.wait()

    bus.subscribe(stuck)
    began = time.perf_counter()
    for number in range(100):
        bus.emit(number)
    assert time.perf_counter() - began < 0.05
    release.set()
    await bus.aclose()


def test_an_emit_outside_an_event_loop_is_dropped_and_counted_not_raised() -> None:
    bus = EventBus()
    subscription = bus.subscribe(print)
    bus.emit("from a thread without a loop")
    assert (subscription.dropped, subscription.depth) == (1, 0)


async def test_accepts_chooses_what_reaches_the_queue() -> None:
    bus = EventBus()
    seen: list[int] = []
    subscription = bus.subscribe(seen.append, queue_size=2, accepts=lambda n: n % 2 == 0)
    for number in range(4):
        bus.emit(number)
    await bus.aclose()
    assert (seen, subscription.dropped) == ([0, 2], 0)


def test_a_lossless_subscriber_takes_every_event_from_any_thread_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No loop anywhere, four threads emitting at once, a slow handler that fails now and
    then, and far more events than a bounded queue holds: none is dropped."""
    bus = EventBus(queue_size=10)
    seen: list[tuple[int, int]] = []

    def slow(event: tuple[int, int]) -> None:
        time.sleep(0.0001)
        if event[1] == 7:
            raise ValueError("broken record")
        seen.append(event)

    subscription = bus.subscribe(slow, name="records", lossless=True)
    assert isinstance(subscription, ThreadSubscription)
    emitters = [threading.Thread(target=lambda t=t: [bus.emit((t, n)) for n in range(500)])
                for t in range(4)]
    with caplog.at_level(logging.ERROR, logger="ollamastack.bus"):
        for emitter in emitters:
            emitter.start()
        for emitter in emitters:
            emitter.join()
        assert bus.flush()  # every event emitted so far has been handled
    for thread in range(4):
        assert [n for t, n in seen if t == thread] == [n for n in range(500) if n != 7]
    assert (subscription.delivered, subscription.failed, subscription.dropped) == (1996, 4, 0)
    assert subscription.depth == 0
    assert [r.getMessage() for r in caplog.records] == [
        "event subscriber records failed on tuple"] * 4


async def test_closing_the_bus_hands_a_lossless_subscriber_everything_first() -> None:
    bus = EventBus()
    seen: list[int] = []
    release = threading.Event()

    def stuck(number: int) -> None:
        release.wait(5)
        seen.append(number)

    bus.subscribe(stuck, lossless=True)
    for number in range(3):
        bus.emit(number)
    asyncio.get_running_loop().call_later(0.1, release.set)  # the handler is stuck until then
    await bus.aclose()
    assert seen == [0, 1, 2]
    bus.emit(3)  # after closing: a new thread takes it
    assert bus.flush() and seen == [0, 1, 2, 3]


def test_a_batch_subscriber_takes_what_came_within_its_linger_as_one_list() -> None:
    """A burst becomes one call (one transaction for usage rows); the counts are per event,
    and a bounded one counts the events in hand against its limit."""
    bus = EventBus()
    batches: list[list[int]] = []
    release = threading.Event()

    def write(events: list[int]) -> None:
        batches.append(events)
        release.wait(5)

    subscription = bus.subscribe(write, thread=True, batch=True, linger=0.2, queue_size=5)
    for number in range(3):  # within the linger: together
        bus.emit(number)
    time.sleep(0.4)  # the first batch is in hand, its handler held
    for number in range(3, 10):  # 3 in hand + 2 queued fill the limit of 5
        bus.emit(number)
    release.set()
    assert bus.flush()
    assert batches == [[0, 1, 2], [3, 4]]
    assert (subscription.delivered, subscription.dropped, subscription.failed) == (5, 5, 0)


def test_a_lossless_subscriber_is_a_plain_function() -> None:
    async def handler(event: Any) -> None:
        pass

    with pytest.raises(TypeError, match="a thread's subscriber is a plain function: handler"):
        EventBus().subscribe(handler, name="handler", lossless=True)


async def test_an_emit_from_a_worker_thread_reaches_the_loops_subscribers() -> None:
    """Gradio runs sync handlers on worker threads: their events are queued on the loop."""
    bus = EventBus()
    seen: list[str] = []
    subscription = bus.subscribe(seen.append)
    bus.emit("on the loop")
    await asyncio.to_thread(bus.emit, "from a worker thread")  # handed over before it returns
    await bus.aclose()
    assert seen == ["on the loop", "from a worker thread"]
    assert subscription.dropped == 0


@pytest.fixture
async def observed(ollama_server: FakeOllama) -> AsyncIterator[tuple[ChatService, list]]:
    """A chat service on a bus, and what reaches a subscriber of it."""
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append)
    async with open_chat_service(make_settings(ollama_server)) as service:
        service.bus = bus
        yield service, seen
    await bus.aclose()


def without_time(event: Any) -> dict[str, Any]:
    fields = asdict(event)
    assert fields.pop("time") > 0
    for key in ("seconds", "time_to_first_token"):  # wall-clock: checked by the tests
        fields.pop(key, None)
    return {"event": type(event).__name__, **fields}


async def test_a_turn_with_a_tool_emits_started_tool_called_completed(
    observed: tuple[ChatService, list], ollama_server: FakeOllama
) -> None:
    service, seen = observed
    ollama_server.enqueue_tool_call("calculator", {"expression": "6 * 7"})
    ollama_server.enqueue_text("It is 42.")
    events = [e async for e in service.stream_turn("6 times 7?", user="ann")]
    await service.bus.drain()  # type: ignore[union-attr]
    session = events[0].session_id
    started, tool, completed = seen
    assert isinstance(tool, ToolCalled) and 0 <= tool.seconds < 5
    assert isinstance(completed, TurnCompleted) and 0 < completed.seconds < 30
    assert completed.time_to_first_token is not None
    assert [without_time(e) for e in seen] == [
        {"event": "TurnStarted", "session_id": session, "user": "ann", "model": "llama3.2",
         "message": None},
        {"event": "ToolCalled", "session_id": session, "user": "ann", "model": "llama3.2",
         "tool": "calculator", "outcome": "ok"},
        {"event": "TurnCompleted", "session_id": session, "user": "ann", "model": "llama3.2",
         "prompt_tokens": events[-1].stats.prompt_tokens, "completion_tokens": 3 + 1,
         "tools": ("calculator",), "cached": False, "paused": False, "answer": None},
    ]
    assert isinstance(started, TurnStarted)


async def test_a_failed_a_stopped_and_a_refused_turn(
    observed: tuple[ChatService, list], ollama_server: FakeOllama
) -> None:
    service, seen = observed
    ollama_server.enqueue_error(500, "model runner crashed")
    [e async for e in service.stream_turn("fail", user="ann")]
    ollama_server.token_rate = 5
    ollama_server.enqueue_text("one two three four five six")
    stream = service.stream_turn("stop me", user="ann")
    assert isinstance(await anext(stream), Started)
    await anext(stream)  # the first words
    await stream.aclose()  # Stop
    with pytest.raises(Exception, match="message"):
        [e async for e in service.stream_turn("", user="ann")]  # refused: not a turn
    await service.bus.drain()  # type: ignore[union-attr]
    kinds = [(type(e).__name__, getattr(e, "kind", "")) for e in seen]
    assert kinds == [("TurnStarted", ""), ("TurnFailed", "OllamaError"),
                     ("TurnStarted", ""), ("TurnFailed", "stopped")]
    assert "model runner crashed" in seen[1].error
    assert [e.outcome for e in seen if isinstance(e, TurnFailed)] == ["error", "stopped"]


async def test_models_and_deleted_conversations_are_events_too(
    observed: tuple[ChatService, list], ollama_server: FakeOllama
) -> None:
    service, seen = observed
    [step async for step in service.pull_model("mistral:7b", "ann")]
    await service.delete_model("mistral:7b", "ann")
    session = await service.new_session("ann")
    await service.delete_session(session, "ann")
    await service.bus.drain()  # type: ignore[union-attr]
    assert [(type(e), getattr(e, "model", ""), e.user) for e in seen] == [
        (ModelPulled, "mistral:7b", "ann"), (ModelDeleted, "mistral:7b", "ann"),
        (ConversationDeleted, "", "ann"),
    ]
    assert seen[-1].session_id == session


async def test_with_log_content_the_texts_come_along(ollama_server: FakeOllama) -> None:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append)
    async with open_chat_service(make_settings(ollama_server, log_content=True)) as service:
        service.bus = bus
        ollama_server.enqueue_text("Hello there!")
        [e async for e in service.stream_turn("a question")]
        await bus.aclose()
    assert (seen[0].message, seen[-1].answer) == ("a question", "Hello there!")
