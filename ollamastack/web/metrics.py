"""Prometheus metrics of one replica, from the app's event bus, at `GET /metrics`.

Counted from lifecycle events (`lifecycle.py`) by a bus subscriber, so a turn never waits
for them; read at scrape time: the streams answering now, each subscriber's queue, the
webhooks' deliveries and whether Ollama answers. Each app has its own registry (tests and
several apps in one process do not share counters).

Who may read them follows `/healthz`: anyone without login; with login a bearer token, either
`OLLAMASTACK_METRICS_TOKEN` or an administrator's API token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ollamastack.bus import EventBus
from ollamastack.engines.types import Health
from ollamastack.lifecycle import (
    OK,
    ConversationDeleted,
    ModelDeleted,
    ModelPulled,
    ToolCalled,
    TurnCompleted,
    TurnFailed,
)
from ollamastack.settings import Settings
from ollamastack.web.http import HEALTH_SECONDS, SECURITY_HEADERS, ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from ollamastack.agent.service_handle import ServiceHandle
    from ollamastack.web.webhooks import Webhooks

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
TURN_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
USAGE_REFUSAL = (
    "Only administrators may see the usage of this app (the logins in "
    "OLLAMASTACK_ADMIN_USERS, or every login when it names none)."
)


def is_admin(settings: Settings, user: str) -> bool:
    """Whether `user` may see everyone's figures (usage, metrics): with login, a login in
    OLLAMASTACK_ADMIN_USERS (any login when it names none); without login, everyone, except
    through a public share link.

    >>> is_admin(Settings(_env_file=None), ""), is_admin(Settings(_env_file=None, share=True), "")
    (True, False)
    >>> team = Settings(_env_file=None, auth="ann:pw1,bob:pw2", admin_users="ann")
    >>> is_admin(team, "ann"), is_admin(team, "bob"), is_admin(team, "")
    (True, False, False)
    """
    if not settings.logins:
        return not settings.share
    return bool(user) and (not settings.admins or user in settings.admins)


class Metrics:
    """The counters and histograms of one app, fed by `observe` (a bus subscriber)."""

    def __init__(
        self, *, in_flight: Callable[[], int] = lambda: 0, bus: EventBus | None = None,
        webhooks: Webhooks | None = None,
    ) -> None:
        self.registry = registry = CollectorRegistry()
        self.turns = Counter("ollamastack_turns", "Turns by model and outcome (ok, error, "
                             "stopped).", ["model", "outcome"], registry=registry)
        self.tokens = Counter("ollamastack_tokens", "Tokens by model and direction (in: the "
                              "prompt, out: the answer).", ["model", "direction"],
                              registry=registry)
        self.tool_calls = Counter("ollamastack_tool_calls", "Tool calls by tool and outcome.",
                                  ["tool", "outcome"], registry=registry)
        self.cached = Counter("ollamastack_cached_turns", "Turns answered from the cache.",
                              ["model"], registry=registry)
        self.model_changes = Counter("ollamastack_model_changes", "Models pulled or deleted.",
                                     ["action"], registry=registry)
        self.conversations_deleted = Counter(
            "ollamastack_conversations_deleted", "Conversations deleted.", registry=registry)
        self.first_token = Histogram(
            "ollamastack_time_to_first_token_seconds", "Seconds from a turn's start to its "
            "first answer token.", ["model"], buckets=FIRST_TOKEN_BUCKETS, registry=registry)
        self.turn_seconds = Histogram(
            "ollamastack_turn_seconds", "Seconds a turn took, start to end.", ["model"],
            buckets=TURN_BUCKETS, registry=registry)
        streams = Gauge("ollamastack_streams_in_flight", "Turns answering now.",
                        registry=registry)
        streams.set_function(in_flight)
        self.ollama_up = Gauge("ollamastack_ollama_up", "1 when Ollama answered the last "
                               "scrape's health check, else 0.", registry=registry)
        registry.register(_Observers(bus, webhooks))

    def observe(self, event: Any) -> None:
        """Count one lifecycle event."""
        if isinstance(event, TurnCompleted):
            model = event.model
            self.turns.labels(model, OK).inc()
            self.tokens.labels(model, "in").inc(event.prompt_tokens)
            self.tokens.labels(model, "out").inc(event.completion_tokens)
            if event.time_to_first_token is not None:
                self.first_token.labels(model).observe(event.time_to_first_token)
            self.turn_seconds.labels(model).observe(event.seconds)
            if event.cached:
                self.cached.labels(model).inc()
        elif isinstance(event, TurnFailed):
            self.turns.labels(event.model, event.outcome).inc()
            self.turn_seconds.labels(event.model).observe(event.seconds)
        elif isinstance(event, ToolCalled):
            self.tool_calls.labels(event.tool, event.outcome).inc()
        elif isinstance(event, ModelPulled | ModelDeleted):
            self.model_changes.labels("pulled" if isinstance(event, ModelPulled)
                                      else "deleted").inc()
        elif isinstance(event, ConversationDeleted):
            self.conversations_deleted.inc()

    async def exposition(self, health: Callable[[], Awaitable[Health]]) -> bytes:
        """The text format, Ollama's reachability checked now (`HEALTH_SECONDS` at most)."""
        try:
            async with asyncio.timeout(HEALTH_SECONDS):
                reachable = (await health()).reachable
        except Exception as error:
            log.warning("metrics: health check failed: %s", error)
            reachable = False
        self.ollama_up.set(1 if reachable else 0)
        return generate_latest(self.registry)


class _Observers:
    """Read at each scrape: every bus subscriber's queue, and the webhooks' deliveries."""

    def __init__(self, bus: EventBus | None, webhooks: Webhooks | None) -> None:
        self.bus, self.webhooks = bus, webhooks

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily("ollamastack_event_queue_depth", "Events waiting for a "
                                  "subscriber of the event bus.", labels=["subscriber"])
        dropped = CounterMetricFamily("ollamastack_events_dropped", "Events a subscriber's "
                                      "full queue dropped.", labels=["subscriber"])
        failed = CounterMetricFamily("ollamastack_subscriber_errors", "Events a subscriber "
                                     "failed on (logged).", labels=["subscriber"])
        for sub in self.bus.subscriptions if self.bus is not None else []:
            depth.add_metric([sub.name], sub.depth)
            dropped.add_metric([sub.name], sub.dropped)
            failed.add_metric([sub.name], sub.failed)
        yield from (depth, dropped, failed)
        if self.webhooks is not None:
            deliveries = CounterMetricFamily(
                "ollamastack_webhook_deliveries", "Webhook deliveries by outcome: delivered, "
                "failed (after its retries), dropped (the queue was full).", labels=["outcome"])
            for outcome, count in self.webhooks.counts().items():
                deliveries.add_metric([outcome], count)
            yield deliveries


class MetricsEndpoint:
    """Answers `GET /metrics` outside Gradio's queue and login (see the module's rule)."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, settings: Settings, handle: ServiceHandle,
        health: Callable[[], Awaitable[Health]],
    ) -> None:
        self.app, self.metrics, self.settings = app, metrics, settings
        self.handle, self.health = handle, health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != METRICS_PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _reply(send, 405, b"Method not allowed.\n", [(b"allow", b"GET, HEAD")])
        elif not await self._allowed(scope):
            await _reply(send, 401, b"A bearer token is needed: OLLAMASTACK_METRICS_TOKEN or "
                         b"an administrator's API token.\n",
                         [(b"www-authenticate", b'Bearer realm="metrics"')])
        else:
            body = await self.metrics.exposition(self.health)
            await _reply(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])

    async def _allowed(self, scope: Scope) -> bool:
        if not self.settings.logins:
            return True
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        expected = self.settings.metrics_token
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return True
        from ollamastack.storage.tokens import TokenStore

        try:
            service = await self.handle.get()
            user = await TokenStore(service.memory.store).user_of(token)
        except Exception:
            log.exception("metrics: could not check an API token")
            return False
        return user is not None and is_admin(self.settings, user)


async def _reply(send: Send, status: int, body: bytes, headers: list) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
