"""Webhooks: a signed POST of each lifecycle event to every `OLLAMASTACK_WEBHOOK_URL`.

Each URL is a subscriber of the event bus with its own bounded queue, so a slow or dead
receiver holds back only its own deliveries, never a turn or another receiver; what its full
queue drops, and what still fails after the retries, is counted (`/metrics`).

The body is the event's JSON (`lifecycle.payload`: `type`, `time`, `session_id`, `user`,
`model` and its figures; message text only with `OLLAMASTACK_LOG_CONTENT`), signed with
`X-OllamaStack-Signature: sha256=<hex HMAC-SHA256 of the body with OLLAMASTACK_WEBHOOK_SECRET>`
when a secret is set. A receiver checks it over the raw body, as `signature` computes it.

Deliveries run on the server's event loop, so their CPU is the turns' CPU: each URL keeps one
HTTP/1.1 keep-alive connection (`Connection`) on asyncio streams, and h11 frames each POST
and reads its reply. That costs about 0.25 ms of CPU a POST, 0.1 ms more than the
hand-written framing it replaced and 0.55 ms less than httpx (BENCHMARKS-events.md, side by
side: 0.89-0.91 ms a turn with every event where that took 0.61-0.76; 0.49-0.52 with
turn.completed only, on the 0.5 target, where it took 0.39-0.40). h11 is kept all the same:
receivers are anyone's servers, and on a kept-alive connection one reply misread shifts every
status after it, and with them the retries and the counts (the hand-written parser took a
head that is not HTTP for a 200). A URL that the environment sends through a proxy
(`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, less `NO_PROXY`, as httpx reads them) goes through
httpx, which speaks to proxies.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import ssl
import urllib.request
from functools import partial
from typing import Any

import h11
import httpx

from ollamastack.bus import EventBus, LosslessSubscription, Subscription
from ollamastack.lifecycle import EVENT_TYPES, payload
from ollamastack.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-OllamaStack-Signature"
TIMEOUT = 5.0  # seconds per delivery attempt
RETRIES = 3  # attempts after the first
BACKOFF = 0.5  # seconds before the first retry; doubled before each next one
QUEUE_SIZE = 500  # deliveries a receiver may be behind before new ones are dropped
LIFECYCLE = frozenset(EVENT_TYPES)  # what webhooks may send: not the audit log's records
# what a failed attempt raises: refused, reset, TLS, DNS (OSError); a reply that is not
# HTTP or is cut short (h11's RemoteProtocolError); too slow (TimeoutError); through httpx
FAILURES = (OSError, h11.RemoteProtocolError, TimeoutError, httpx.HTTPError)


def signature(body: bytes, secret: str) -> str:
    """The header's value for `body`.

    >>> signature(b'{"type": "turn.completed"}', "s3cret")[:20]
    'sha256=03a97abab8525'
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def proxied(url: str) -> bool:
    """Whether the environment sends `url` through a proxy (read as httpx reads it)."""
    proxies = urllib.request.getproxies_environment()
    parsed = httpx.URL(url)
    if not (proxies.get(parsed.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(parsed.host, proxies)


class Connection:
    """One keep-alive HTTP/1.1 connection to a URL's server, for one POST at a time (a URL's
    deliveries come one after another from its subscriber); opened again when the server
    has closed it, and closed after any failure. h11 does the HTTP: it frames the request,
    reads the reply whatever its framing, and says whether the connection may be used again."""

    def __init__(
        self, url: str, *, timeout: float = TIMEOUT, tls: ssl.SSLContext | None = None
    ) -> None:
        """`timeout`: seconds for one POST, connecting included; `tls`: for https (httpx's
        default: the authorities it trusts)."""
        parsed = httpx.URL(url)
        self.timeout = timeout
        https = parsed.scheme == "https"
        self.host, self.port = parsed.host, parsed.port or (443 if https else 80)
        self.tls = (tls or httpx.create_ssl_context()) if https else None
        self.target = parsed.raw_path
        self.fields = [(b"Host", parsed.netloc)]
        if parsed.username or parsed.password:  # as httpx sends a URL's credentials
            basic = base64.b64encode(f"{parsed.username}:{parsed.password}".encode())
            self.fields.append((b"Authorization", b"Basic " + basic))
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.http = h11.Connection(h11.CLIENT)  # a new one with each connection
        self.loop: asyncio.AbstractEventLoop | None = None
        self.opened = 0  # connections made, for tests and curious readers
        self.heard = False  # the server has sent something since the last request

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST `body`; the reply's status. Raises one of `FAILURES`."""
        fields = [*self.fields, *headers.items(), ("Content-Length", str(len(body)))]
        request = h11.Request(method="POST", target=self.target, headers=fields)
        try:
            async with asyncio.timeout(self.timeout):
                if self._usable():
                    try:
                        return await self._exchange(request, body)
                    except (ConnectionError, h11.RemoteProtocolError):
                        if self.heard:
                            raise  # it had begun to answer: that was the answer
                    # the server closed it while idle, before we noticed: on a new one
                await self._open()
                return await self._exchange(request, body)
        except BaseException:
            self.close()
            raise

    def _usable(self) -> bool:
        if self.streams is None or self.loop is not asyncio.get_running_loop():
            self.streams = None  # one made on another loop cannot be used (or closed) here
            return False
        reader, writer = self.streams
        if reader.at_eof() or writer.is_closing():
            self.close()
            return False
        return True

    async def _open(self) -> None:
        self.close()
        self.streams = await asyncio.open_connection(self.host, self.port, ssl=self.tls)
        self.http = h11.Connection(h11.CLIENT)
        self.loop = asyncio.get_running_loop()
        self.opened += 1

    async def _exchange(self, request: h11.Request, body: bytes) -> int:
        """Send the request, read the whole reply (past any 1xx); its status."""
        assert self.streams is not None
        reader, writer = self.streams
        http = self.http
        self.heard = False
        sent = (http.send(request), http.send(h11.Data(data=body)), http.send(h11.EndOfMessage()))
        writer.write(b"".join(filter(None, sent)))
        await writer.drain()
        status = 0
        while not isinstance(event := http.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                self.heard = self.heard or bool(data)
                http.receive_data(data)  # b"": the server closed the connection
            elif isinstance(event, h11.Response):
                status = event.status_code
            # else a 1xx (InformationalResponse) or a piece of the body: nothing to keep
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()  # kept alive: ready for the next POST
        else:  # "Connection: close", HTTP/1.0, or a body that ended with the connection
            self.close()
        return status

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


class Webhooks:
    """Delivers the events `settings.webhook_event_types` names (all lifecycle events when
    empty)."""

    def __init__(
        self, settings: Settings, *, timeout: float = TIMEOUT, retries: int = RETRIES,
        backoff: float = BACKOFF, queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.urls = settings.webhook_urls
        self.types = settings.webhook_event_types or LIFECYCLE
        self.secret = settings.webhook_secret
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.queue_size = queue_size
        self.delivered = 0
        self.failed = 0
        self.subscriptions: list[Subscription | LosslessSubscription] = []
        self.proxied = {url for url in self.urls if proxied(url)}
        tls = (httpx.create_ssl_context()  # the certificates httpx trusts (certifi's, or
               if any(url.startswith("https:") for url in self.urls) else None)  # SSL_CERT_*)
        self.connections = {url: Connection(url, timeout=timeout, tls=tls)
                            for url in self.urls if url not in self.proxied}
        self._client: httpx.AsyncClient | None = None  # for the proxied URLs

    def subscribe(self, bus: EventBus) -> None:
        """One bus subscriber per URL."""
        for index, url in enumerate(self.urls, 1):
            self.subscriptions.append(bus.subscribe(
                partial(self.deliver, url), name=f"webhook {index}",
                queue_size=self.queue_size, accepts=self.wants,
            ))

    def wants(self, event: Any) -> bool:
        return getattr(event, "TYPE", "") in self.types

    def counts(self) -> dict[str, int]:
        dropped = sum(s.dropped for s in self.subscriptions)
        return {"delivered": self.delivered, "failed": self.failed, "dropped": dropped}

    async def deliver(self, url: str, event: Any) -> None:
        """POST `event` to `url`; retried on a connection error, a timeout, 408, 429 or a 5xx,
        waiting `backoff` s, then twice as long before each next try."""
        body = json.dumps(payload(event)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "OllamaStack-Webhook"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(body, self.secret)
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                status = await self._post(url, body, headers)
            except FAILURES as error:
                reason = f"{type(error).__name__}: {error}"
                continue
            if status < 300:
                self.delivered += 1
                return
            reason = f"HTTP {status}"
            if status < 500 and status not in (408, 429):
                break  # the receiver refuses this one: asking again changes nothing
        self.failed += 1
        log.warning("webhook %s: %s not delivered (%s)", url, event.TYPE, reason)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if url not in self.proxied:
            return await self.connections[url].post(body, headers)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return (await self._client.post(url, content=body, headers=headers)).status_code

    async def aclose(self) -> None:
        for connection in self.connections.values():
            connection.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
