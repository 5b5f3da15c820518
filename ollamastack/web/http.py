"""Plain HTTP around the Gradio app: a health route outside the queue, and security headers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ollamastack.engines.types import Health
from ollamastack.errors import OllamaStackError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
# /healthz answers within this, whatever the database or Ollama do: well under the image's
# HEALTHCHECK (a 4 s request in a 5 s timeout), which must only fail when this process does.
HEALTH_SECONDS = 2.0
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", b"frame-ancestors 'self'"),
]


def health_body(health: Health) -> dict[str, Any]:
    """The JSON both `/healthz` and the `/health` API endpoint answer."""
    return {
        "status": "ok" if health.reachable else "unavailable",
        "ollama_url": health.url,
        "ollama_version": health.version,
        "models": health.models,
        "default_model": health.default_model,
        "embedded_model": health.embedded_model,
    }


def unavailable(reason: str) -> dict[str, Any]:
    """`/healthz` when the chat service could not tell: why, for the person reading it.

    >>> unavailable("No answer within 2 s.")
    {'status': 'unavailable', 'reason': 'No answer within 2 s.'}
    """
    return {"status": "unavailable", "reason": reason}


def failure_reason(error: Exception) -> str:
    """What `/healthz` says of an error: our typed errors' own words; for anything else only
    its kind (the route is public; the details go to the log).

    >>> failure_reason(OllamaStackError("The database is not reachable."))
    'The database is not reachable.'
    >>> failure_reason(TimeoutError("couldn't get a connection after 30.00 sec"))
    "The chat service could not be opened (TimeoutError); see the app's log."
    """
    if isinstance(error, OllamaStackError):
        return str(error)
    return f"The chat service could not be opened ({type(error).__name__}); see the app's log."


async def health_answer(
    health: Callable[[], Awaitable[Health]], within: float = HEALTH_SECONDS
) -> dict[str, Any]:
    """The JSON of `/healthz`, `within` seconds at most; never raises (but cancellation).

    "ok" when Ollama answers; "unavailable" with a `reason` when it does not, when the chat
    service (its database) cannot be opened, or when finding out takes longer than `within`.
    A chat service still opening goes on opening in the background (`ServiceHandle` shields
    it), so a later request finds it open.
    """
    deadline = asyncio.timeout(within)
    try:
        async with deadline:
            result = await health()
    except Exception as error:
        if deadline.expired():
            return unavailable(
                f"No answer within {within:g} s from the chat service: its database or Ollama "
                "is slow or unreachable. The app keeps trying."
            )
        typed = isinstance(error, OllamaStackError)
        log.warning("health check: %s", error, exc_info=not typed)
        return unavailable(failure_reason(error))
    body = health_body(result)
    if not result.reachable:
        body["reason"] = result.error or f"Ollama is not reachable at {result.url}."
    return body


class HealthAndHeaders:
    """Answers `GET /healthz` without the Gradio queue; adds security headers to every reply.

    `/healthz` always answers 200 with JSON while this process serves HTTP: its `status` says
    whether chats can be served. A 5xx would tell Docker and nginx that this replica is broken
    when a database or Ollama that every replica shares is down; nginx would then take all of
    them out, and with them the page that tells people what is wrong.
    """

    def __init__(
        self, app: ASGIApp, health: Callable[[], Awaitable[Health]],
        timeout: float = HEALTH_SECONDS,
    ) -> None:
        self.app = app
        self.health = health
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await self._answer_health(send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _answer_health(self, send: Send) -> None:
        body = json.dumps(await health_answer(self.health, self.timeout)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *SECURITY_HEADERS,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
