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
POST on a blocking socket takes about a tenth of its asyncio cost, BENCHMARKS-events.md),
and takes events from Gradio's worker threads as well. A record that must never be lost
(the audit log) takes `lossless=True`: a thread whose queue grows rather than drop, since
blocking the emitter instead would stall the event loop, and with it every stream; it drains
at disk speed, far ahead of any request rate. `flush` waits for it; so does closing the bus,
and, for what is still queued when the interpreter exits, an exit hook.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import threading
import time
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


class ThreadSubscription:
    """A sync handler on a thread of its own, fed from any thread. With a `limit` it may be
    that many events behind, counting those in hand, before new ones are dropped; without
    (lossless) its queue grows instead. The thread starts with the first event and ends once
    the queue has been empty `IDLE_SECONDS`, or at once when the bus closes; it is woken only
    from sleep, never while it works. With `batch` the handler takes a list: what came within
    `linger` s of the event that woke it (one transaction for a burst's rows)."""

    def __init__(self, name: str, handler: Callable[[Any], None],
                 accepts: Callable[[Any], bool] | None = None, limit: int | None = None,
                 *, batch: bool = False, linger: float = 0.0) -> None:
        self.name, self.handler, self.accepts, self.limit = name, handler, accepts, limit
        self.batch, self.linger = batch, linger
        self.queue: deque = deque()
        self.offered = 0  # events queued in all
        self.delivered = 0
        self.failed = 0  # the handler raised (logged)
        self.dropped = 0  # the queue was full (never, lossless)
        self.busy = 0  # events in hand now
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # an event was queued
        self._progress = threading.Condition(self._lock)  # an event was handled
        self._thread: threading.Thread | None = None
        self._asleep = False  # waiting for `_ready`: an offer wakes it
        self._closing = False
        _LIVE.add(self)

    @property
    def depth(self) -> int:
        return len(self.queue)

    def offer(self, event: Any) -> None:
        if self.accepts is not None and not self.accepts(event):
            return
        with self._lock:
            if self.limit is not None and len(self.queue) + self.busy >= self.limit:
                self.dropped += 1
                return
            self.queue.append(event)
            self.offered += 1
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(
                    target=self._work, name=f"bus:{self.name}", daemon=True)
                self._thread.start()
            elif self._asleep:
                self._ready.notify()
        if len(self.queue) == BACKLOG_WARNING:
            log.warning("event subscriber %s is %d events behind", self.name, BACKLOG_WARNING)

    def _work(self) -> None:
        try:
            while events := self._take():
                try:
                    self.handler(events if self.batch else events[0])
                    failed = False
                except Exception:
                    failed = True
                    log.exception("event subscriber %s failed on %s", self.name,
                                  type(events[0]).__name__)
                with self._lock:
                    if failed:
                        self.failed += len(events)
                    else:
                        self.delivered += len(events)
                    self.busy = 0
                    self._progress.notify_all()
        except BaseException:  # not the handler's `Exception`s: the next event starts anew
            with self._lock:
                self._thread, self.busy = None, 0
            raise

    def _take(self) -> list:
        """The next event (a list of one), or with `batch` all that came within `linger`;
        [] when the thread should end (idle, or the bus closed and nothing is left)."""
        with self._lock:
            while not self.queue:
                if self._closing:
                    self._thread = None  # under the lock: `offer` starts a new one
                    return []
                self._asleep = True
                woken = self._ready.wait(IDLE_SECONDS)
                self._asleep = False
                if not woken and not self.queue:
                    self._thread = None
                    return []
            if not self.batch:
                self.busy = 1
                return [self.queue.popleft()]
        if self.linger:
            time.sleep(self.linger)  # the rest of a burst joins this batch
        with self._lock:
            events = list(self.queue)
            self.queue.clear()
            self.busy = len(events)
            return events

    def wait(self, count: int | None = None, timeout: float = CLOSE_SECONDS) -> bool:
        """Wait (at most `timeout` s) until `count` events in all, or every one queued so
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


_LIVE: weakref.WeakSet[ThreadSubscription] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """What a lossless subscriber still holds when the interpreter exits is handled first
    (its thread is a daemon: it never keeps a finished program running)."""
    for subscription in list(_LIVE):
        if subscription.limit is None:
            subscription.wait()


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
