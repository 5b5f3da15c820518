"""Webhooks: a signed POST of each lifecycle event to every `OLLAMASTACK_WEBHOOK_URL`.

Each URL is a subscriber of the event bus with its own bounded queue, so a slow or dead
receiver holds back only its own deliveries, never a turn or another receiver; what its full
queue drops, and what still fails after the retries, is counted (`/metrics`).

The body is the event's JSON (`lifecycle.payload`: `type`, `time`, `session_id`, `user`,
`model` and its figures; message text only with `OLLAMASTACK_LOG_CONTENT`), signed with
`X-OllamaStack-Signature: sha256=<hex HMAC-SHA256 of the body with OLLAMASTACK_WEBHOOK_SECRET>`
when a secret is set. A receiver checks it over the raw body, as `signature` computes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from functools import partial
from typing import Any

import httpx

from ollamastack.bus import EventBus, Subscription
from ollamastack.lifecycle import payload
from ollamastack.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-OllamaStack-Signature"
TIMEOUT = 5.0  # seconds per delivery attempt
RETRIES = 3  # attempts after the first
BACKOFF = 0.5  # seconds before the first retry; doubled before each next one
QUEUE_SIZE = 500  # deliveries a receiver may be behind before new ones are dropped


def signature(body: bytes, secret: str) -> str:
    """The header's value for `body`.

    >>> signature(b'{"type": "turn.completed"}', "s3cret")[:20]
    'sha256=03a97abab8525'
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhooks:
    """Delivers the events `settings.webhook_event_types` names (all when empty)."""

    def __init__(
        self, settings: Settings, *, timeout: float = TIMEOUT, retries: int = RETRIES,
        backoff: float = BACKOFF, queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.urls = settings.webhook_urls
        self.types = settings.webhook_event_types
        self.secret = settings.webhook_secret
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.queue_size = queue_size
        self.delivered = 0
        self.failed = 0
        self.subscriptions: list[Subscription] = []
        self._client: httpx.AsyncClient | None = None

    def subscribe(self, bus: EventBus) -> None:
        """One bus subscriber per URL."""
        for index, url in enumerate(self.urls, 1):
            self.subscriptions.append(bus.subscribe(
                partial(self.deliver, url), name=f"webhook {index}",
                queue_size=self.queue_size, accepts=self.wants,
            ))

    def wants(self, event: Any) -> bool:
        return not self.types or getattr(event, "TYPE", "") in self.types

    def counts(self) -> dict[str, int]:
        dropped = sum(s.dropped for s in self.subscriptions)
        return {"delivered": self.delivered, "failed": self.failed, "dropped": dropped}

    async def deliver(self, url: str, event: Any) -> None:
        """POST `event` to `url`; retried on a connection error, a timeout, 408, 429 or a 5xx,
        waiting `backoff` s, then twice as long before each next try."""
        body = json.dumps(payload(event)).encode()
        headers = {"content-type": "application/json", "user-agent": "OllamaStack-Webhook"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(body, self.secret)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__}: {error}"
                continue
            if response.status_code < 300:
                self.delivered += 1
                return
            reason = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in (408, 429):
                break  # the receiver refuses this one: asking again changes nothing
        self.failed += 1
        log.warning("webhook %s: %s not delivered (%s)", url, event.TYPE, reason)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
