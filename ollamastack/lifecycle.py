"""What the app tells its observers (metrics, usage records, webhooks, the audit log): one
typed event per thing that happened, after it happened. The turn's own stream (`events.py`)
is for the person waiting for the answer; these are for everyone else, and never carry
message text unless `OLLAMASTACK_LOG_CONTENT` is on (`message`, `answer`).

`Lifecycle` is what the chat service does (the events webhooks may send); `RequestAudited`
is the edge's record of each request, for the audit log only: it names client addresses and
every call, which no receiver outside the server needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

# outcomes of a turn, as metrics and usage records count them
OK, ERROR, STOPPED = "ok", "error", "stopped"


@dataclass(frozen=True)
class TurnStarted:
    """A turn was accepted and is answering."""

    TYPE: ClassVar[str] = "turn.started"
    session_id: str
    user: str
    model: str
    message: str | None = None  # only with OLLAMASTACK_LOG_CONTENT
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ToolCalled:
    """A tool answered the model (`outcome` "error" when it failed or timed out)."""

    TYPE: ClassVar[str] = "tool.called"
    session_id: str
    user: str
    model: str
    tool: str
    seconds: float
    outcome: str = OK
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TurnCompleted:
    """A turn answered and is stored; `paused` when it waits for a tool call's approval."""

    TYPE: ClassVar[str] = "turn.completed"
    session_id: str
    user: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token: float | None = None
    seconds: float = 0.0
    tools: tuple[str, ...] = ()
    cached: bool = False
    paused: bool = False
    answer: str | None = None  # only with OLLAMASTACK_LOG_CONTENT
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TurnFailed:
    """A turn ended early: `kind` is the error's type (`OllamaUnavailable`...), or "stopped"
    when its reader went away (Stop, a closed tab, a deleted chat)."""

    TYPE: ClassVar[str] = "turn.failed"
    session_id: str
    user: str
    model: str
    kind: str
    error: str = ""
    seconds: float = 0.0
    tools: tuple[str, ...] = ()
    time: float = field(default_factory=time.time)

    @property
    def outcome(self) -> str:
        return STOPPED if self.kind == STOPPED else ERROR


@dataclass(frozen=True)
class ModelPulled:
    TYPE: ClassVar[str] = "model.pulled"
    model: str
    user: str = ""
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ModelDeleted:
    TYPE: ClassVar[str] = "model.deleted"
    model: str
    user: str = ""
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ConversationDeleted:
    TYPE: ClassVar[str] = "conversation.deleted"
    session_id: str
    user: str = ""
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RequestAudited:
    """A request ended (a page or API call, a login try): who, from where, what, how it went
    (`outcome`, one of `audit.OUTCOMES`, and the `error` its client was shown) and how long it
    took. Texts come cut to the audit log's limits."""

    TYPE: ClassVar[str] = "request.audited"
    endpoint: str
    user: str
    client: str
    session_id: str = ""
    model: str = ""
    outcome: str = OK
    error: str = ""
    seconds: float = 0.0
    message: str | None = None  # only with OLLAMASTACK_LOG_CONTENT
    time: float = field(default_factory=time.time)


Lifecycle = (
    TurnStarted | ToolCalled | TurnCompleted | TurnFailed | ModelPulled | ModelDeleted
    | ConversationDeleted
)
EVENT_TYPES = tuple(kind.TYPE for kind in Lifecycle.__args__)  # type: ignore[attr-defined]


def payload(event: Lifecycle) -> dict[str, Any]:
    """The JSON object of an event (webhooks): its `type` first, its `time` in ISO 8601 (UTC),
    texts left out when None.

    >>> payload(ModelPulled("llama3.2", "ann", time=0.0))
    {'type': 'model.pulled', 'model': 'llama3.2', 'user': 'ann', 'time': '1970-01-01T00:00:00.000Z'}
    """
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(event).items()
              if not (k in ("message", "answer") and v is None)}  # flat: no `asdict` copies
    when = datetime.fromtimestamp(event.time, UTC).isoformat(timespec="milliseconds")
    return {"type": event.TYPE, **fields, "time": when.replace("+00:00", "Z")}
