"""The app's observers, made once per app: the event bus and what listens to it (Prometheus
metrics, usage records, webhooks). Adding one is one function and one line in `build`.

The audit log listens too, to the requests' `RequestAudited` events: the edge's `AuditLog`
subscribes itself on the bus it emits on (`Edge(settings, bus=bus)`), so closing the bus
here flushes it."""

from __future__ import annotations

from dataclasses import dataclass

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.bus import EventBus
from ollamastack.lifecycle import Lifecycle
from ollamastack.settings import Settings
from ollamastack.storage.usage import UsageLog
from ollamastack.web.metrics import Metrics
from ollamastack.web.webhooks import Webhooks


def is_lifecycle(event: object) -> bool:
    """What the chat service did: not the audit log's records, which metrics and usage skip.

    >>> from ollamastack.lifecycle import ModelPulled, RequestAudited
    >>> is_lifecycle(ModelPulled("llama3.2")), is_lifecycle(RequestAudited("/chat", "", ""))
    (True, False)
    """
    return isinstance(event, Lifecycle)


@dataclass
class Observers:
    bus: EventBus
    metrics: Metrics
    usage: UsageLog
    webhooks: Webhooks

    @classmethod
    def build(cls, settings: Settings, handle: ServiceHandle, bus: EventBus) -> Observers:
        """The subscribers of `bus` (the one `handle`'s chat service emits on); `handle`
        also gives the streams answering now."""
        webhooks = Webhooks(settings)

        def in_flight() -> int:
            service = handle.current
            return 0 if service is None else service.in_flight

        metrics = Metrics(in_flight=in_flight, bus=bus, webhooks=webhooks)
        usage = UsageLog(settings)
        bus.subscribe(metrics.observe, name="metrics", accepts=is_lifecycle)
        usage.subscribe(bus)
        webhooks.subscribe(bus)  # one subscriber per URL
        return cls(bus, metrics, usage, webhooks)

    async def aclose(self) -> None:
        """Let the subscribers catch up (a few seconds at most; the audit log writes all it
        was given), then close their clients."""
        await self.bus.aclose()
        await self.usage.aclose()
        await self.webhooks.aclose()
