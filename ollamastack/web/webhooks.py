"""Webhooks: a signed POST of each lifecycle event to every `OLLAMASTACK_WEBHOOK_URL`.

Each URL is a subscriber of the event bus with its own bounded queue, so a slow or dead
receiver holds back only its own deliveries, never a turn or another receiver; what its full
queue drops, and what still fails after the retries, is counted (`/metrics`).

The body is the event's JSON (`lifecycle.payload`: `type`, `time`, `session_id`, `user`,
`model` and its figures; message text only with `OLLAMASTACK_LOG_CONTENT`), signed with
`X-OllamaStack-Signature: sha256=<hex HMAC-SHA256 of the body with OLLAMASTACK_WEBHOOK_SECRET>`
when a secret is set. A receiver checks it over the raw body, as `signature` computes it.

Each URL's deliveries run on a thread of its own (`bus.subscribe(thread=True)`), over one
HTTP/1.1 keep-alive connection on a blocking socket (`hook_connection.py`): cheaper in CPU,
which the threads share with the turns, than any client on the event loop. A URL that the
environment sends through a proxy (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
less `NO_PROXY`, as httpx reads them) goes through httpx, which speaks to proxies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import urllib.request
from functools import partial
from typing import Any

import httpx

from ollamastack.bus import EventBus, Subscription, ThreadSubscription
from ollamastack.lifecycle import EVENT_TYPES, payload
from ollamastack.settings import Settings
from ollamastack.web.hook_connection import FAILURES as CONNECTION_FAILURES
from ollamastack.web.hook_connection import TIMEOUT, Connection

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-OllamaStack-Signature"
RETRIES = 3  # attempts after the first
BACKOFF = 0.5  # seconds before the first retry; doubled before each next one
QUEUE_SIZE = 500  # deliveries a receiver may be behind before new ones are dropped
LIFECYCLE = frozenset(EVENT_TYPES)  # what webhooks may send: not the audit log's records
FAILURES = (*CONNECTION_FAILURES, httpx.HTTPError)  # what a failed attempt raises


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
        self.subscriptions: list[Subscription | ThreadSubscription] = []
        self.proxied = {url for url in self.urls if proxied(url)}
        tls = (httpx.create_ssl_context()  # the certificates httpx trusts (certifi's, or
               if any(url.startswith("https:") for url in self.urls) else None)  # SSL_CERT_*)
        self.connections = {url: Connection(url, timeout=timeout, tls=tls)
                            for url in self.urls if url not in self.proxied}
        self._client: httpx.Client | None = None  # for the proxied URLs
        self._closing = threading.Event()  # cuts the retries' waits short

    def subscribe(self, bus: EventBus) -> None:
        """One bus subscriber per URL, on a thread of its own."""
        for index, url in enumerate(self.urls, 1):
            self.subscriptions.append(bus.subscribe(
                partial(self.deliver, url), name=f"webhook {index}", thread=True,
                queue_size=self.queue_size, accepts=self.wants,
            ))

    def wants(self, event: Any) -> bool:
        return getattr(event, "TYPE", "") in self.types

    def counts(self) -> dict[str, int]:
        dropped = sum(s.dropped for s in self.subscriptions)
        return {"delivered": self.delivered, "failed": self.failed, "dropped": dropped}

    def deliver(self, url: str, event: Any) -> None:
        """POST `event` to `url`; retried on a connection error, a timeout, 408, 429 or a 5xx,
        waiting `backoff` s, then twice as long before each next try."""
        body = json.dumps(payload(event)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "OllamaStack-Webhook"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(body, self.secret)
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt and self._closing.wait(self.backoff * 2 ** (attempt - 1)):
                reason += "; the app closed before the next try"
                break
            try:
                status = self._post(url, body, headers)
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

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if url not in self.proxied:
            return self.connections[url].post(body, headers)
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        return self._client.post(url, content=body, headers=headers).status_code

    async def aclose(self) -> None:
        """After the bus has closed: what is still being tried ends now, unsent."""
        self._closing.set()
        for connection in self.connections.values():
            connection.close()
        if self._client is not None:
            self._client.close()
            self._client = None
