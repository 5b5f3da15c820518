"""Logins: a limit on failed tries, each try in the audit log, cookies kept to this site.

Gradio answers `POST /login` itself (form fields `username` and `password`): 200 with two
session cookies, or 400 "Incorrect credentials.", as fast as a client can ask. `LoginGuard`
stands in front of it:
- after `OLLAMASTACK_LOGIN_ATTEMPTS` failures in a minute for one username, or from one client
  address, each further try must wait, 1 s, then twice as long after each failure (at most
  `LONGEST_WAIT`); a try that comes early gets 429 with Retry-After and the reason, which the
  login page shows (ours, in place of Gradio's: `login_page`);
- every try is recorded in the audit log as endpoint "login" (the password never is; the
  username only when it is one of the logins, since people type passwords into that field);
- Gradio's session cookie made for cross-site iframes (`SameSite=None`) is made `SameSite=Lax`.

The cookies are session cookies (no Max-Age): the browser drops them when it closes, and the
login they carry ends at logout or when the app restarts (Gradio keeps it in memory).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from ollamastack.web.audit import AuditLog
from ollamastack.web.login_page import with_login_page_sender
from ollamastack.web.proxies import client_host, relative_path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOGIN_PATHS = ("/login", "/login/")
LONGEST_WAIT = 300.0
QUEUE_SECONDS = 10.0  # how long a try waits for the tries ahead of it to be checked
FORM_BYTES = 64 * 1024  # a login form is a name and a password
MAX_KEYS = 10_000


@dataclass
class _Tries:
    failures: deque[float] = field(default_factory=deque)  # within the window
    strikes: int = 0  # failures past the limit, each doubling the wait
    not_before: float = 0.0
    pending: int = 0  # tries Gradio is still checking


class LoginLimiter:
    """At most `attempts` failed logins per `window` seconds for each key (a username, a
    client address); past that, each try waits 1 s, 2 s, 4 s... after the last failure.

    >>> now = 0.0
    >>> limiter = LoginLimiter(attempts=2, clock=lambda: now)
    >>> for _ in range(2):
    ...     limiter.begin(["ann"]), limiter.end(["ann"], ok=False)
    (0.0, None)
    (0.0, None)
    >>> limiter.begin(["ann"]), limiter.begin(["bob"])  # ann waits 1 s; bob is another key
    (1.0, 0.0)
    >>> now = 1.0; limiter.begin(["ann"]), limiter.end(["ann"], ok=False), limiter.begin(["ann"])
    (0.0, None, 2.0)
    >>> now = 50.0; limiter.begin(["ann"]), limiter.end(["ann"], ok=False), limiter.begin(["ann"])
    (0.0, None, 4.0)
    >>> now = 54.0; limiter.begin(["ann"]), limiter.end(["ann"], ok=True, forget=["ann"])
    (0.0, None)
    >>> limiter.begin(["ann"]), limiter.end(["ann"], ok=False)  # a login forgot the failures
    (0.0, None)
    >>> limiter.begin(["ann"])
    0.0
    """

    def __init__(
        self, attempts: int, window: float = 60.0, longest: float = LONGEST_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.longest = longest
        self._clock = clock
        self._tries: dict[str, _Tries] = {}

    def _wait(self, strikes: int) -> float:
        return min(2.0 ** (strikes - 1), self.longest) if strikes else 0.0

    def _current(self, key: str, now: float) -> _Tries:
        tries = self._tries.setdefault(key, _Tries())
        while tries.failures and tries.failures[0] <= now - self.window:
            tries.failures.popleft()
        if tries.strikes and now >= tries.not_before + self.window:
            tries.strikes = 0  # quiet for a window after the last wait: a fresh start
        return tries

    def begin(self, keys: Iterable[str]) -> float:
        """Seconds to wait before a try for all `keys`; 0.0: the try is counted as under way
        (end it with `end`). With failures near the limit, tries go one at a time."""
        now = self._clock()
        if len(self._tries) > MAX_KEYS:
            self._forget_idle(now)
        all_tries = [self._current(key, now) for key in keys]
        wait = 0.0
        for tries in all_tries:
            if now < tries.not_before:
                wait = max(wait, tries.not_before - now)
            elif tries.pending and len(tries.failures) + tries.pending >= self.attempts:
                wait = max(wait, 1.0)  # another try is being checked: its outcome counts first
        if wait == 0.0:
            for tries in all_tries:
                tries.pending += 1
        return wait

    def checking(self, keys: Iterable[str]) -> bool:
        """Whether the only thing holding a try back is another try still being checked (it
        then waits its turn, rather than being refused: many people may share an address)."""
        now = self._clock()
        return all(now >= self._current(key, now).not_before for key in keys)

    def end(self, keys: Iterable[str], *, ok: bool, forget: Iterable[str] = ()) -> None:
        """A try that `begin` let through is over: a failure counts for every key; a login
        forgets the `forget` keys (its username, not the address others may share)."""
        now = self._clock()
        for key in keys:
            tries = self._current(key, now)
            tries.pending = max(tries.pending - 1, 0)
            if not ok:
                tries.failures.append(now)
                if tries.strikes or len(tries.failures) >= self.attempts:
                    tries.strikes += 1  # until a quiet window, each failure doubles the wait
                    tries.not_before = now + self._wait(tries.strikes)
        for key in forget if ok else ():
            if not self._tries[key].pending:
                del self._tries[key]

    def _forget_idle(self, now: float) -> None:
        """Drop keys with nothing to remember, so many one-off tries cost no memory."""
        for key in list(self._tries):
            tries = self._current(key, now)
            if not (tries.pending or tries.strikes or tries.failures):
                del self._tries[key]


def same_site_lax(cookie: bytes) -> bytes:
    """A Set-Cookie value kept to this site: `SameSite=Lax` unless it says Strict.

    >>> same_site_lax(b"t=1; HttpOnly; Path=/; SameSite=none; Secure")
    b't=1; HttpOnly; Path=/; SameSite=Lax; Secure'
    >>> same_site_lax(b"t=1; Path=/"), same_site_lax(b"t=1; SameSite=Strict")
    (b't=1; Path=/; SameSite=Lax', b't=1; SameSite=Strict')
    """
    if re.search(rb";\s*samesite=(lax|strict)\s*(;|$)", cookie, flags=re.I):
        return cookie
    if re.search(rb";\s*samesite=", cookie, flags=re.I):
        return re.sub(rb"(;\s*)samesite=[^;]*", rb"\1SameSite=Lax", cookie, flags=re.I)
    return cookie + b"; SameSite=Lax"


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` once, then what the connection says (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def username_in(scope: Scope, body: bytes) -> str:
    """The `username` field of a login form (as Gradio strips it), or "" if there is none."""
    async def closed() -> Message:
        return {"type": "http.disconnect"}

    try:
        async with Request(scope, replaying(body, closed)).form(max_files=0) as form:
            name = form.get("username")
    except Exception:  # not a form: Gradio answers it with its own error
        return ""
    return name.strip() if isinstance(name, str) else ""


async def answer(
    send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A JSON reply `{"detail": ...}`, as Gradio's own errors look."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": body})


class LoginGuard:
    """ASGI middleware in front of Gradio's login (only when logins are set)."""

    def __init__(
        self, app: ASGIApp, limiter: LoginLimiter, audit_log: AuditLog, logins: Iterable[str]
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.audit_log = audit_log
        self.logins = frozenset(logins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["method"] == "POST" and relative_path(scope) in LOGIN_PATHS:
            await self.login(scope, receive, send)
        elif scope["method"] == "GET" and not relative_path(scope).startswith("/gradio_api/"):
            await self.app(scope, receive, with_login_page_sender(send))
        else:
            await self.app(scope, receive, send)

    async def login(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive, FORM_BYTES)
        if body is None:
            await answer(send, 413, "The login form is too large.")
            return
        username, client = await username_in(scope, body), client_host(scope)
        keys = [f"client:{client}", *([f"user:{username}"] if username else [])]
        user = username if username in self.logins else ""
        with self.audit_log.entry("login", user, client) as entry:
            queued = time.monotonic() + QUEUE_SECONDS
            while (wait := math.ceil(self.limiter.begin(keys))) and self.limiter.checking(keys):
                if time.monotonic() > queued:
                    break
                await asyncio.sleep(0.02)  # one at a time near the limit: its turn comes
            if wait:
                entry.outcome = "rate_limited"
                entry.error = f"Too many failed logins. Try again in {wait} s."
                await answer(send, 429, entry.error, [(b"retry-after", str(wait).encode())])
                return
            status = 0

            async def watched(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [
                        (k, same_site_lax(v) if k.lower() == b"set-cookie" else v)
                        for k, v in message.get("headers", [])
                    ]
                await send(message)

            try:
                await self.app(scope, replaying(body, receive), watched)
            finally:  # anything but a login counts as a failure
                self.limiter.end(keys, ok=status == 200, forget=keys[1:])
            if status == 400:
                entry.outcome, entry.error = "forbidden", "Incorrect credentials."
            elif status != 200:
                entry.outcome, entry.error = "error", f"HTTP {status}"
