"""One event bus per app: the chat service emits lifecycle events (`lifecycle.py`), and each
observer (metrics, usage records, webhooks) reads them from a queue of its own.

`emit` never waits and never raises: it puts the event in each subscriber's bounded queue
and returns (a full queue drops the event and counts it), and each subscriber runs in its
own task on the event loop, so a slow or failing one never slows a turn or the others. A
subscriber is one function (sync or async) and one line: `bus.subscribe(handler)`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # events a subscriber may be behind before new ones are dropped
CLOSE_SECONDS = 5.0  # how long closing waits for subscribers to catch up

Handler = Callable[[Any], Awaitable[None] | None]


@dataclass(eq=False)
class Subscription:
    """One subscriber: its handler, its queue and what happened to its events."""

    name: str
    handler: Handler
    limit: int
    accepts: Callable[[Any], bool] | None = None  # None: every event
    queue: deque = field(default_factory=deque)
    delivered: int = 0
    dropped: int = 0  # the queue was full
    failed: int = 0  # the handler raised (logged)
    busy: bool = False  # handling an event now
    _ready: asyncio.Event | None = None
    _idle: asyncio.Event | None = None  # set while the queue is empty and nothing is handled
    _task: asyncio.Task | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def depth(self) -> int:
        return len(self.queue)

    def offer(self, event: Any) -> None:
        if self.accepts is not None and not self.accepts(event):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: nobody would run the subscriber
            loop = None
        if loop is None or len(self.queue) >= self.limit:
            self.dropped += 1
            return
        self.queue.append(event)
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop, self._ready, self._idle = loop, asyncio.Event(), asyncio.Event()
            self._task = loop.create_task(self._work(), name=f"bus:{self.name}")
        self._idle.clear()  # type: ignore[union-attr]
        self._ready.set()  # type: ignore[union-attr]

    async def _work(self) -> None:
        ready, idle = self._ready, self._idle
        assert ready is not None and idle is not None
        while True:
            while self.queue:
                event = self.queue.popleft()
                self.busy = True
                try:
                    result = self.handler(event)
                    if inspect.isawaitable(result):
                        await result
                    self.delivered += 1
                except Exception:
                    self.failed += 1
                    log.exception("event subscriber %s failed on %s", self.name,
                                  type(event).__name__)
                finally:
                    self.busy = False
            ready.clear()
            idle.set()
            await ready.wait()

    async def drain(self) -> None:
        if self._task is not None and not self._task.done() and self._idle is not None:
            await self._idle.wait()

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class EventBus:
    """Fans each emitted event out to every subscriber's queue; made once per app."""

    def __init__(self, *, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.subscriptions: list[Subscription] = []

    def subscribe(
        self, handler: Handler, *, name: str = "", queue_size: int = 0,
        accepts: Callable[[Any], bool] | None = None,
    ) -> Subscription:
        """Call `handler(event)` for every event from now on (those `accepts` takes), in
        order, off the emitter's path; its exceptions are logged and counted (`failed`)."""
        subscription = Subscription(
            name or getattr(handler, "__qualname__", "subscriber"), handler,
            queue_size or self.queue_size, accepts,
        )
        self.subscriptions.append(subscription)
        return subscription

    def emit(self, event: Any) -> None:
        """Hand `event` to every subscriber; call it from the event loop. Never blocks."""
        for subscription in self.subscriptions:
            subscription.offer(event)

    async def drain(self, within: float = CLOSE_SECONDS) -> None:
        """Wait until every subscriber has handled what it was given (at most `within` s)."""
        try:
            async with asyncio.timeout(within):
                for subscription in self.subscriptions:
                    await subscription.drain()
        except TimeoutError:
            log.warning("event subscribers did not catch up within %g s", within)

    async def aclose(self, within: float = CLOSE_SECONDS) -> None:
        """Let subscribers catch up (at most `within` s), then stop them."""
        await self.drain(within)
        for subscription in self.subscriptions:
            await subscription.stop()
