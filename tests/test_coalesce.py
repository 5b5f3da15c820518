"""Frames: a stream of the core's events at most ~20 updates a second, the first token at once,
a held frame sent on time while the stream pauses, and a stopped stream closed at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from itertools import count

import pytest

from ollamastack.events import Done, Started, TextDelta, ToolCall, ToolResult
from ollamastack.web.coalesce import any_delta, frames

START, DONE = Started("s1"), Done("s1")


def ticks(step: float) -> Callable[[], float]:
    """A clock that advances `step` seconds each time it is read."""
    readings = count()
    return lambda: next(readings) * step


async def scripted(*steps: object, log: list[str] | None = None) -> AsyncIterator[object]:
    """Yield each step; an `asyncio.Event` step waits for it to be set instead."""
    try:
        for step in steps:
            if isinstance(step, asyncio.Event):
                await step.wait()
            else:
                yield step
    finally:
        if log is not None:
            log.append("closed")


async def collect(stream: AsyncIterator[list[tuple[float, object]]]) -> list[list[object]]:
    return [[item for _, item in frame] async for frame in stream]


def words(*texts: str) -> list[TextDelta]:
    return [TextDelta(t) for t in texts]


async def test_without_an_interval_each_event_is_a_frame_stamped_as_it_came() -> None:
    stream = frames(scripted(START, *words("a", "b"), DONE), 0, clock=ticks(0.5))
    assert [frame async for frame in stream] == [
        [(0.0, START)], [(0.5, TextDelta("a"))], [(1.0, TextDelta("b"))], [(1.5, DONE)]
    ]


async def test_deltas_wait_for_the_frame_the_first_token_and_tool_steps_do_not() -> None:
    call, result = ToolCall("c1", "calculator", {}), ToolResult("c1", "calculator", "4")
    # every read of the clock is 20 ms on: with 50 ms frames, every third delta closes one
    events = [START, *words("a", "b", "c", "d", "e", "f"), call, result, *words("g", "h"), DONE]
    got = await collect(frames(scripted(*events), 0.05, clock=ticks(0.02)))
    assert got == [
        [START],
        words("a"),  # the first of a run of text: at once
        words("b", "c", "d"),  # 20, 40, 60 ms after the last frame
        [*words("e", "f"), call],  # a tool call goes at once, with what was held
        [result],
        words("g"),  # the first token after the tool
        [*words("h"), DONE],  # the end goes at once, with the rest
    ]


async def test_with_any_delta_even_the_first_token_waits_for_its_frame() -> None:
    events = [START, *words("a", "b", "c", "d"), DONE]
    got = await collect(frames(scripted(*events), 0.05, may_wait=any_delta, clock=ticks(0.02)))
    assert got == [[START], words("a", "b", "c"), [*words("d"), DONE]]


async def test_a_held_frame_goes_out_on_time_while_the_stream_pauses() -> None:
    pause = asyncio.Event()
    log: list[str] = []
    # the clock stands still: only the frame's time coming can send "b"
    stream = frames(scripted(START, *words("a", "b"), pause, DONE, log=log), 0.05,
                    clock=lambda: 0.0)
    got = []
    async with asyncio.timeout(5):
        async for frame in stream:
            got.append([item for _, item in frame])
            if got[-1] == words("b"):
                assert not pause.is_set()  # sent while the stream still waits
                pause.set()
    assert got == [[START], words("a"), words("b"), [DONE]]
    assert log == ["closed"]


async def test_an_error_comes_after_the_frames_before_it() -> None:
    async def failing() -> AsyncIterator[object]:
        yield START
        yield TextDelta("a")
        yield TextDelta("b")
        raise RuntimeError("the stream broke")

    got = []
    with pytest.raises(RuntimeError, match="the stream broke"):
        async for frame in frames(failing(), 0.05, clock=ticks(0.01)):
            got.append([item for _, item in frame])
    assert got == [[START], words("a"), words("b")]


@pytest.mark.parametrize("interval", [0, 0.05])
async def test_closing_the_frames_closes_the_stream_before_it_returns(interval: float) -> None:
    never = asyncio.Event()
    log: list[str] = []
    stream = frames(scripted(START, TextDelta("a"), never, log=log), interval)
    assert [item for _, item in await anext(stream)] == [START]
    await stream.aclose()
    assert log == ["closed"]


async def test_cancelling_the_reader_of_frames_closes_the_stream_before_it_ends() -> None:
    never = asyncio.Event()
    log: list[str] = []
    first = asyncio.Event()

    async def read() -> None:
        async for _ in frames(scripted(START, never, log=log), 0.05):
            first.set()

    task = asyncio.create_task(read())
    await first.wait()
    task.cancel()  # as Gradio does on Stop or when the client goes away
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["closed"]
