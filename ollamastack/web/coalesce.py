"""Streaming at a frame rate: the chat service's events grouped into frames, at most ~20 a second.

Sending the whole answer so far after every token costs a client update per token (Gradio
diffs, serialises and queues each one), so the API and the page send one update per frame:
the events that arrived since the previous frame. An event that may not wait (the first of
a run of text, a tool step, the end) closes its frame at once; a delta that may wait closes it
once `interval` has passed since the previous frame, and a frame held back goes out when its
time comes even if the stream has paused meanwhile. Frames keep the events' order, none is
dropped, and the last one holds the stream's last event.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, suppress
from typing import Any, Generic, TypeVar

from ollamastack.events import TextDelta, ThinkingDelta

FRAME_SECONDS = 0.05  # at most ~20 updates a second while tokens stream

T = TypeVar("T")
Stamped = tuple[float, T]  # an item, and the clock when it arrived
MayWait = Callable[[Any, Any], bool]  # (previous item or None, item) -> may it wait?


def same_run(previous: object, event: object) -> bool:
    """A text or thinking delta after one of its kind may wait; the first of a run (the first
    token, say), a tool step and the end go at once.

    >>> same_run(TextDelta("a"), TextDelta("b")), same_run(None, TextDelta("b"))
    (True, False)
    >>> same_run(TextDelta("a"), ThinkingDelta("b"))
    False
    """
    return isinstance(event, (TextDelta, ThinkingDelta)) and type(event) is type(previous)


def any_delta(previous: object, event: object) -> bool:
    """Any text or thinking delta may wait; only tool steps, the start and the end go at once.

    >>> any_delta(None, TextDelta("b")), any_delta(TextDelta("a"), None)
    (True, False)
    """
    return isinstance(event, (TextDelta, ThinkingDelta))


async def frames(
    items: AsyncIterator[T],
    interval: float,
    *,
    may_wait: MayWait = same_run,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[list[Stamped[T]]]:
    """`items` in frames, each item stamped with `clock()` when it arrived.

    With `interval` 0 or less every item is a frame of its own, read as the caller asks.
    Otherwise a task reads `items` ahead of the caller, so that a frame held back can go
    out on time while `items` waits; closing the frames (or cancelling the caller) cancels
    that task and closes `items` before it returns. An error `items` raises is raised after
    the frames before it.
    """
    if interval <= 0:
        async with aclosing(items):  # type: ignore[type-var]
            async for item in items:
                yield [(clock(), item)]
        return
    framer = _Framer[T](interval, may_wait, clock)
    reader = asyncio.create_task(framer.read(items))
    try:
        while (frame := await framer.next()) is not None:
            yield frame
    finally:
        if not reader.done():
            reader.cancel()
        with suppress(asyncio.CancelledError):
            await reader  # `items` closed: a cancelled turn is stored before this returns


class _Framer(Generic[T]):
    """The frames of one stream: filled by `read` as items come, emptied by `next`."""

    def __init__(self, interval: float, may_wait: MayWait, clock: Callable[[], float]) -> None:
        self.interval, self.may_wait, self.clock = interval, may_wait, clock
        self.closed: deque[list[Stamped[T]]] = deque()
        self.open: list[Stamped[T]] = []
        self.previous: T | None = None
        self.sent = -math.inf  # `clock` when the last frame closed
        self.due = -math.inf  # the loop's time by which a held frame goes out
        self.ended = False
        self.error: Exception | None = None
        self.changed = asyncio.Event()

    async def read(self, items: AsyncIterator[T]) -> None:
        try:
            async with aclosing(items):  # type: ignore[type-var]
                async for item in items:
                    now = self.clock()
                    self.open.append((now, item))
                    if not self.may_wait(self.previous, item) or now - self.sent >= self.interval:
                        self._close(now)
                    self.previous = item
        except Exception as error:
            self.error = error
        self.ended = True
        self.changed.set()

    def _close(self, now: float) -> None:
        self.closed.append(self.open)
        self.open = []
        self.sent = now
        self.due = asyncio.get_running_loop().time() + self.interval
        self.changed.set()

    async def next(self) -> list[Stamped[T]] | None:
        """The next frame, once it closes or its time comes; None at the end."""
        loop = asyncio.get_running_loop()
        while not self.closed:
            if self.ended:
                if self.open:
                    self.closed.append(self.open)
                    self.open = []
                    break
                if self.error is not None:
                    raise self.error
                return None
            self.changed.clear()
            if not self.open:
                await self.changed.wait()
            elif (wait := self.due - loop.time()) <= 0:
                self._close(self.clock())  # held back while the stream paused: its time came
            else:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), wait)
        return self.closed.popleft()
