"""A per-user sliding-window limit on messages, so one client cannot monopolise the GPU."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable

from ollamastack.errors import RateLimited

MAX_KEYS = 10_000


class RateLimiter:
    """At most `limit` events per `window` seconds for each key (user or client address).

    >>> clock = iter([0.0, 1.0, 2.0, 61.0]).__next__
    >>> limiter = RateLimiter(limit=2, window=60, clock=clock)
    >>> limiter.hit("alice"); limiter.hit("alice")
    >>> limiter.hit("alice")
    Traceback (most recent call last):
    ...
    ollamastack.errors.RateLimited: Too many messages: the limit is 2 a minute. Try again in 58 s.
    >>> limiter.hit("alice")  # at 61 s the first message has left the window
    """

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def hit(self, key: str) -> None:
        """Count one event for `key`, or raise `RateLimited` saying when to try again."""
        if self.limit <= 0:
            return
        now = self._clock()
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            wait = math.ceil(hits[0] + self.window - now)
            raise RateLimited(self.limit, self.window, wait)
        hits.append(now)
        if len(self._hits) > MAX_KEYS:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        """Drop keys with no event in the window, so many one-off clients cost no memory."""
        idle = [key for key, hits in self._hits.items() if hits[-1] <= now - self.window]
        for key in idle:
            del self._hits[key]
