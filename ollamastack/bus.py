"""One event bus per app: the chat service emits lifecycle events (`lifecycle.py`) and the
edge one audit record per request, and each observer (metrics, usage records, webhooks, the
audit log) reads them from a queue of its own.

`emit` never waits and never raises: it puts the event in each subscriber's bounded queue
and returns (a full queue drops the event and counts it), and each subscriber runs in its
own task on the event loop, so a slow or failing one never slows a turn or the others. A
subscriber is one function (sync or async) and one line: `bus.subscribe(handler)`. Any
thread may emit (Gradio runs sync handlers on worker threads): such events reach the loop's
subscribers through the loop the bus was last emitted on.

A record that must never be lost (the audit log) takes `lossless=True`: its handler runs
on a thread of its own, whose queue grows rather than drop. Blocking the emitter instead
would stall the event loop, and with it every stream; a thread writes a file without
holding up the loop, takes events from Gradio's worker threads as well, and drains at
disk speed, far ahead of any request rate. `flush` waits for it; so does closing the bus,
and, for what is still queued when the interpreter exits, an exit hook.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # events a subscriber may be behind before new ones are dropped
CLOSE_SECONDS = 5.0  # how long closing waits for subscribers to catch up
IDLE_SECONDS = 10.0  # a lossless subscriber's thread ends after this long without events
BACKLOG_WARNING = 10_000  # a lossless queue this deep is logged (it never drops)

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


class LosslessSubscription:
    """A subscriber that sees every event: a sync handler on a thread of its own, fed from
    any thread, whose queue grows instead of dropping. The thread starts with the first event
    and ends once the queue has been empty `IDLE_SECONDS`, or at once when the bus closes."""

    def __init__(self, name: str, handler: Callable[[Any], None],
                 accepts: Callable[[Any], bool] | None = None) -> None:
        self.name, self.handler, self.accepts = name, handler, accepts
        self.queue: deque = deque()
        self.offered = 0  # events queued in all
        self.delivered = 0
        self.failed = 0  # the handler raised (logged)
        self.dropped = 0  # always: the same figures as every subscriber's (`/metrics`)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # an event was queued
        self._progress = threading.Condition(self._lock)  # an event was handled
        self._thread: threading.Thread | None = None
        self._closing = False
        _LIVE.add(self)

    @property
    def depth(self) -> int:
        return len(self.queue)

    def offer(self, event: Any) -> None:
        if self.accepts is not None and not self.accepts(event):
            return
        with self._lock:
            self.queue.append(event)
            self.offered += 1
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(
                    target=self._work, name=f"bus:{self.name}", daemon=True)
                self._thread.start()
            else:
                self._ready.notify()
        if len(self.queue) == BACKLOG_WARNING:
            log.warning("event subscriber %s is %d events behind", self.name, BACKLOG_WARNING)

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self.queue:
                        if (self._closing or not self._ready.wait(IDLE_SECONDS)) and (
                                not self.queue):
                            self._thread = None  # under the lock: `offer` starts a new one
                            return
                    event = self.queue.popleft()
                try:
                    self.handler(event)
                    failed = False
                except Exception:
                    failed = True
                    log.exception("event subscriber %s failed on %s", self.name,
                                  type(event).__name__)
                with self._lock:
                    if failed:
                        self.failed += 1
                    else:
                        self.delivered += 1
                    self._progress.notify_all()
        except BaseException:  # not the handler's `Exception`s: the next event starts anew
            with self._lock:
                self._thread = None
            raise

    def wait(self, count: int | None = None, timeout: float = CLOSE_SECONDS) -> bool:
        """Wait (at most `timeout` s) until `count` events in all, or every one offered so
        far, have been handled; whether they have. Blocks: not from the event loop."""
        with self._lock:
            target = self.offered if count is None else count
            return self._progress.wait_for(
                lambda: self.delivered + self.failed >= target, timeout)

    async def drain(self) -> None:
        await asyncio.to_thread(self.wait)

    async def stop(self) -> None:
        """Let the thread end once its queue is empty; an event offered later starts one."""
        with self._lock:
            self._closing = True
            self._ready.notify()


_LIVE: weakref.WeakSet[LosslessSubscription] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """What a lossless subscriber still holds when the interpreter exits is handled first
    (its thread is a daemon: it never keeps a finished program running)."""
    for subscription in list(_LIVE):
        subscription.wait()


class EventBus:
    """Fans each emitted event out to every subscriber's queue; made once per app."""

    def __init__(self, *, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.subscriptions: list[Subscription | LosslessSubscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # where it was last emitted on

    def subscribe(
        self, handler: Handler, *, name: str = "", queue_size: int = 0,
        accepts: Callable[[Any], bool] | None = None, lossless: bool = False,
    ) -> Subscription | LosslessSubscription:
        """Call `handler(event)` for every event from now on (those `accepts` takes), in
        order, off the emitter's path; its exceptions are logged and counted (`failed`).
        `lossless`: a sync handler on a thread of its own that is never dropped an event."""
        name = name or getattr(handler, "__qualname__", "subscriber")
        subscription: Subscription | LosslessSubscription
        if lossless:
            if inspect.iscoroutinefunction(handler):
                raise TypeError(f"a lossless subscriber runs on a thread: {name} is async")
            subscription = LosslessSubscription(name, handler, accepts)  # type: ignore[arg-type]
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
        """Lossless subscribers take `event` here; the others on the loop the bus was last
        emitted on, or drop it (counted) before there is one."""
        later = []
        for subscription in self.subscriptions:
            if isinstance(subscription, LosslessSubscription):
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
        """Wait until the lossless subscribers have handled every event emitted so far (at
        most `within` s); for a reader of what they write, from any thread but the loop's."""
        return all(s.wait(timeout=within) for s in self.subscriptions
                   if isinstance(s, LosslessSubscription))

    async def aclose(self, within: float = CLOSE_SECONDS) -> None:
        """Let subscribers catch up (at most `within` s), then stop them."""
        await self.drain(within)
        for subscription in self.subscriptions:
            await subscription.stop()


def _offer_each(subscriptions: list[Subscription], event: Any) -> None:
    for subscription in subscriptions:
        subscription.offer(event)
