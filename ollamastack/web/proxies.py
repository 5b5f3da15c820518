"""Who sent a request: whose X-Forwarded-For is believed, and who an MCP tool call is for.

uvicorn, which Gradio's `launch` starts, replaces a request's client address by the one in
X-Forwarded-For when the sender is in `FORWARDED_ALLOW_IPS`, an environment variable it reads
when the server is built; unset, it believes every loopback sender. Gradio's MCP server runs
each tool call through the app's own queue over loopback, forwarding the MCP caller's headers:
any MCP caller could name its own address, for the rate limit and the audit log.

- `uvicorn_trusting` hands uvicorn `OLLAMASTACK_TRUSTED_PROXIES` (empty: nobody) while the
  server is built, so only the configured proxies are believed.
- `McpCallers` marks each request to the MCP route with its sender's address and a secret of
  this process; Gradio's hop carries the mark on, and the request bearing it is counted as that
  sender's. A mark without the secret is dropped, so no client can forge one.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

UVICORN_VARIABLE = "FORWARDED_ALLOW_IPS"
MCP_PATH = "/gradio_api/mcp"
CALLER_HEADER = b"x-ollamastack-mcp-caller"


def proxy_errors(proxies: Iterable[str]) -> list[str]:
    """What is wrong with `OLLAMASTACK_TRUSTED_PROXIES`: each entry must be an IP address, a
    network, or `*` (any sender).

    >>> proxy_errors(["10.0.0.5", "172.18.0.0/16", "::1", "*"])
    []
    >>> proxy_errors(["nginx"])  # doctest: +ELLIPSIS
    ["Invalid setting OLLAMASTACK_TRUSTED_PROXIES: 'nginx' is not an IP address or a network ..."]
    """
    errors = []
    for entry in sorted(proxies):
        try:
            if entry != "*":
                ipaddress.ip_network(entry, strict=False)
        except ValueError:
            errors.append(
                f"Invalid setting OLLAMASTACK_TRUSTED_PROXIES: {entry!r} is not an IP address "
                "or a network (write 172.18.0.5 or 172.18.0.0/16; * believes any sender)"
            )
    return errors


@contextmanager
def uvicorn_trusting(proxies: Iterable[str]) -> Iterator[None]:
    """Servers built inside the block believe X-Forwarded-For from `proxies` only.

    uvicorn reads its list from the environment alone, when Gradio builds the server; the old
    value comes back afterwards (at once with `prevent_thread_lock`, else when serving ends).
    """
    wanted = ",".join(sorted(proxies))
    previous = os.environ.get(UVICORN_VARIABLE)
    if previous is not None and previous != wanted:
        log.warning(
            "%s=%s is not used: the app believes X-Forwarded-For only from "
            "OLLAMASTACK_TRUSTED_PROXIES (%s).", UVICORN_VARIABLE, previous, wanted or "empty",
        )
    os.environ[UVICORN_VARIABLE] = wanted
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(UVICORN_VARIABLE, None)
        else:
            os.environ[UVICORN_VARIABLE] = previous


def relative_path(scope: Scope) -> str:
    """The request's path below the app's root path.

    >>> relative_path({"path": "/app/login", "root_path": "/app"}), relative_path({"path": "/"})
    ('/login', '/')
    """
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path


def client_host(scope: Scope) -> str:
    """The client's address as uvicorn (and a trusted proxy) gave it, or ""."""
    client = scope.get("client")
    return str(client[0]) if client else ""


class McpCallers:
    """ASGI middleware: requests of Gradio's MCP hop count as the MCP caller's own."""

    def __init__(self, app: ASGIApp, secret: str | None = None) -> None:
        self.app = app
        self.secret = secret or secrets.token_urlsafe(32)

    def caller_in(self, mark: bytes) -> str | None:
        """The caller's address in a mark this process made, else None."""
        secret, _, host = mark.decode("latin-1").partition(" ")
        return host if host and secrets.compare_digest(secret, self.secret) else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != CALLER_HEADER]
        marks = [v for k, v in scope["headers"] if k == CALLER_HEADER]
        if relative_path(scope).startswith(MCP_PATH):
            mark = f"{self.secret} {client_host(scope)}".encode("latin-1")
            scope = {**scope, "headers": [*headers, (CALLER_HEADER, mark)]}
        elif marks:
            scope = {**scope, "headers": headers}
            if len(marks) == 1 and (caller := self.caller_in(marks[0])) is not None:
                scope["client"] = (caller, 0)
        await self.app(scope, receive, send)
