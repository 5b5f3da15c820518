"""Plain HTTP around the Gradio app: a health route outside the queue, and security headers."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ollamastack.engines.types import Health
from ollamastack.errors import OllamaStackError
from ollamastack.settings import Settings

if TYPE_CHECKING:
    from ollamastack.agent.service_handle import ServiceHandle

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
# What the page may load, and from where: only this origin ('self' is whatever origin the
# browser sees, so a share link or nginx in front works). A message that gets markup past the
# chat's sanitizer still cannot make the browser fetch an image, font or media from another
# host, post a form elsewhere, frame anything or move the page's base URL. Each allowance is
# what Gradio 6 itself needs, found in Chromium (tests/test_browser.py runs under it):
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    # inline: the page's config and boot scripts; eval: gr.HTML renders its templates with
    # `new Function` (the Models tab's pull progress)
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",  # Svelte's style attributes, the theme's <style>
    "img-src 'self' data: blob:",  # data: the theme's icons; blob: local previews
    "font-src 'self' data:",  # data: KaTeX's fonts, inlined in its stylesheet
    "media-src 'self'",
    "connect-src 'self'",
    "frame-src 'none'",
    "object-src 'none'",
    "form-action 'self'",  # the login page posts to /login
    "base-uri 'self'",  # Gradio's page sets <base href="./">
    "frame-ancestors 'self'",
])
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]


OLLAMA_HOST_NAMED = "the address in OLLAMA_HOST"
OLLAMA_DOWN = (
    "Ollama is not reachable. Start it with `ollama serve` (or `docker compose up ollama`), "
    "or point OLLAMA_HOST at a running server."
)


def is_loopback(client: str) -> bool:
    """Whether a request's address is this machine's.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("::ffff:127.0.0.1")
    (True, True, True)
    >>> is_loopback("192.0.2.7"), is_loopback(""), is_loopback("testclient")
    (False, False, False)
    """
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def sees_internals(settings: Settings, user: str, client: str) -> bool:
    """Whether a request may see where Ollama runs and which version: an administrator (with
    login, a login in OLLAMASTACK_ADMIN_USERS, or any login when it names none, as for
    managing models), or a request from this machine. Through a share link every visitor
    arrives from loopback (the tunnel's local end), so then loopback counts for nothing.

    >>> local = Settings(_env_file=None)
    >>> sees_internals(local, "", "127.0.0.1"), sees_internals(local, "", "192.0.2.7")
    (True, False)
    >>> sees_internals(Settings(_env_file=None, share=True), "", "127.0.0.1")
    False
    >>> team = Settings(_env_file=None, auth="ann:pw1,bob:pw2", admin_users="ann", share=True)
    >>> sees_internals(team, "ann", "127.0.0.1"), sees_internals(team, "bob", "127.0.0.1")
    (True, False)
    >>> sees_internals(Settings(_env_file=None, auth="ann:pw1"), "ann", "192.0.2.7")
    True
    """
    admin = bool(settings.logins and user) and (not settings.admins or user in settings.admins)
    return admin or (not settings.share and is_loopback(client))


def without_address(text: str, *urls: str) -> str:
    """`text` (an error's message) naming none of `urls` (Ollama's), for those who may not
    see them.

    >>> url = "http://10.0.0.5:11434"
    >>> without_address(f"Ollama at {url} sent nothing for 5 s.", url)
    'Ollama at the address in OLLAMA_HOST sent nothing for 5 s.'
    >>> without_address("[Errno 113] 10.0.0.5: no route to host", url)[:25]
    'Ollama is not reachable. '
    >>> without_address("Ollama at http://ollama:11434 sent nothing. Try `ollama serve`.",
    ...                 "http://ollama:11434")  # a one-word host (compose) tells nothing
    'Ollama at the address in OLLAMA_HOST sent nothing. Try `ollama serve`.'
    """
    hosts = []
    for url in urls:
        parts = urlsplit(url)
        for shown in (url, url.rstrip("/"), parts.netloc):
            if shown:
                text = text.replace(shown, OLLAMA_HOST_NAMED)
        if parts.hostname and ("." in parts.hostname or ":" in parts.hostname):
            hosts.append(parts.hostname)  # an IP address or a domain
    rest = text.replace(OLLAMA_HOST_NAMED, "")
    if any(host in rest for host in hosts):
        return OLLAMA_DOWN  # an error of another kind, naming the host its own way
    return text


def public_reason(health: Health) -> str:
    """Why Ollama is unavailable, naming no address (`/healthz` answers anyone)."""
    return without_address(health.error or OLLAMA_DOWN, health.url)


async def reported_health(
    handle: ServiceHandle, settings: Settings, user: str, client: str
) -> dict[str, Any]:
    """The `/health` body for this caller (the named API and REST alike); never raises: a
    chat service or Ollama that fails reads as Ollama unavailable (the cause goes to the log)."""
    try:
        health = await (await handle.get()).engines.health()
    except Exception:
        log.exception("health check failed")
        health = Health(False, settings.ollama_host)
    return health_body(health, internals=sees_internals(settings, user, client))


def health_body(health: Health, *, internals: bool) -> dict[str, Any]:
    """The JSON of the `/health` API endpoint; Ollama's address and version only for those
    who may see them (`sees_internals`), empty for the others."""
    return {
        "status": "ok" if health.reachable else "unavailable",
        "ollama_url": health.url if internals else "",
        "ollama_version": health.version if internals else "",
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
    The route answers anyone, without login: the status and reason only, no address.
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
    if result.reachable:
        return {"status": "ok"}
    return unavailable(public_reason(result))


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
