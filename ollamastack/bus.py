"""One event bus per app: the chat service emits lifecycle events (`lifecycle.py`) and the
edge one audit record per request, and each observer (metrics, usage records, webhooks, the
audit log) reads them from a queue of its own.

`emit` never waits and never raises: it puts the event in each subscriber's bounded queue
and returns (a full queue drops the event and counts it), and each subscriber runs in its
own task on the event loop, so a slow or failing one never slows a turn or the others. A
subscriber is one function (sync or async) and one line: `bus.subscribe(handler)`. Any
thread may emit (Gradio runs sync handlers on worker threads): such events reach the loop's
subscribers through the loop the bus was last emitted on.

A subscriber that blocks (a file, a socket) takes `thread=True`: its sync handler runs on a
thread of its own, with a bounded queue like the others. That costs a turn less CPU than a
task on the loop for each event (no futures, no wake-ups through the selector: a webhook's
POST on a blocking socket takes under a third of its asyncio cost, BENCHMARKS-events.md;
`bus_thread.py`),
and takes events from Gradio's worker threads as well. A record that must never be lost
(the audit log) takes `lossless=True`: a thread whose queue grows rather than drop, since
blocking the emitter instead would stall the event loop, and with it every stream; it drains
at disk speed, far ahead of any request rate. `flush` waits for it; so does closing the bus,
and, for what is still queued when the interpreter exits, an exit hook.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ollamastack.bus_thread import CLOSE_SECONDS, ThreadSubscription

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # events a subscriber may be behind before new ones are dropped

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
        self.subscriptions: list[Subscription | ThreadSubscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # where it was last emitted on

    def subscribe(
        self, handler: Handler, *, name: str = "", queue_size: int = 0,
        accepts: Callable[[Any], bool] | None = None, thread: bool = False,
        lossless: bool = False, batch: bool = False, linger: float = 0.0,
    ) -> Subscription | ThreadSubscription:
        """Call `handler(event)` for every event from now on (those `accepts` takes), in
        order, off the emitter's path; its exceptions are logged and counted (`failed`).
        `thread`: a sync handler on a thread of its own; `lossless`: one that is never
        dropped an event; `batch`, `linger`: one handed lists (`ThreadSubscription`)."""
        name = name or getattr(handler, "__qualname__", "subscriber")
        subscription: Subscription | ThreadSubscription
        if thread or lossless:
            if inspect.iscoroutinefunction(handler):
                raise TypeError(f"a thread's subscriber is a plain function: {name} is async")
            subscription = ThreadSubscription(  # type: ignore[arg-type]
                name, handler, accepts, None if lossless else queue_size or self.queue_size,
                batch=batch, linger=linger)
        else:
            subscription = Subscription(name, handler, queue_size or self.queue_size, accepts)
        self.subscriptions.append(subscription)
        return subscription

    def emit(self, event: Any) -> None:
        """Hand `event` to every subscriber, from the event loop or any thread. Never blocks."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # a thread without one (Gradio runs sync handlers on some)
            self._emit_from_thread(event)
            return
        for subscription in self.subscriptions:
            subscription.offer(event)

    def _emit_from_thread(self, event: Any) -> None:
        """Threads' subscribers take `event` here; the others on the loop the bus was last
        emitted on, or drop it (counted) before there is one."""
        later = []
        for subscription in self.subscriptions:
            if isinstance(subscription, ThreadSubscription):
                subscription.offer(event)
            elif subscription.accepts is None or subscription.accepts(event):
                later.append(subscription)
        if not later:
            return
        try:
            if self._loop is None:
                raise RuntimeError("no event loop yet")
            self._loop.call_soon_threadsafe(_offer_each, later, event)
        except RuntimeError:  # none yet, or closed
            for subscription in later:
                subscription.dropped += 1

    async def drain(self, within: float = CLOSE_SECONDS) -> None:
        """Wait until every subscriber has handled what it was given (at most `within` s)."""
        try:
            async with asyncio.timeout(within):
                for subscription in self.subscriptions:
                    await subscription.drain()
        except TimeoutError:
            log.warning("event subscribers did not catch up within %g s", within)

    def flush(self, within: float = CLOSE_SECONDS) -> bool:
        """Wait until the threads' subscribers have handled every event queued so far (at
        most `within` s); for a reader of what they write, from any thread but the loop's."""
        return all(s.wait(timeout=within) for s in self.subscriptions
                   if isinstance(s, ThreadSubscription))

    async def aclose(self, within: float = CLOSE_SECONDS) -> None:
        """Let subscribers catch up (at most `within` s), then stop them."""
        await self.drain(within)
        for subscription in self.subscriptions:
            await subscription.stop()


def _offer_each(subscriptions: list[Subscription], event: Any) -> None:
    for subscription in subscriptions:
        subscription.offer(event)
