"""A bus subscriber on a thread of its own (`EventBus.subscribe(thread=True)`, and the
lossless audit log): fed from any thread, woken only from sleep, optionally handed batches."""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CLOSE_SECONDS = 5.0  # how long closing waits for subscribers to catch up
IDLE_SECONDS = 10.0  # a subscriber's thread ends after this long without events
BACKLOG_WARNING = 10_000  # a lossless queue this deep is logged (it never drops)


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
