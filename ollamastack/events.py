"""The typed events one chat turn streams; the UI and API are thin layers over them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ollamastack.errors import OllamaStackError

# The result a tool call gets when its turn ends before the tool answered: stored with the
# call (the conversation stays valid) and shown in the chat as the step's result.
INTERRUPTED_TOOL = "The tool did not finish: the turn was interrupted."
# Why a turn stopped early when its reader went away (Stop, a closed tab, a deleted chat).
STOPPED_BY_USER = "stopped by the user"


@dataclass(frozen=True)
class Started:
    """The turn was accepted and its user message stored; first event of every turn."""

    session_id: str
    model: str = ""  # the model that answers (the default, or the embedded fallback)


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    """A piece of a thinking model's reasoning; never part of the answer."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """The model asked for a tool."""

    id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer, as the model will read it."""

    id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Source:
    """What a turn's answer drew on from the conversation's documents: a passage found for
    the question (with its page where the format has pages), or a document read whole."""

    file: str
    page: int | None
    text: str  # the passage; empty for a document read whole

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "page": self.page, "text": self.text}


@dataclass(frozen=True)
class Sources:
    """The documents the answer may draw on; comes right after `Started` when there are any."""

    sources: tuple[Source, ...]


@dataclass
class TurnStats:
    """Ollama's own counters summed over the turn's model calls, plus our time to first token."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    eval_seconds: float = 0.0
    total_seconds: float = 0.0
    time_to_first_token: float | None = None
    model_calls: int = 0
    done_reason: str = ""
    messages_left_out: int = 0  # earlier messages the history window did not send
    cached: bool = False  # answered from the answer cache, without calling the model

    def add(self, metadata: dict[str, Any]) -> None:
        """Count one model call from Ollama's counters (its last chunk's metadata).

        >>> stats = TurnStats()
        >>> stats.add({"prompt_eval_count": 9, "eval_count": 20, "eval_duration": 5e8})
        >>> stats.completion_tokens, stats.tokens_per_second
        (20, 40.0)
        """
        self.model_calls += 1
        self.prompt_tokens += int(metadata.get("prompt_eval_count") or 0)
        self.completion_tokens += int(metadata.get("eval_count") or 0)
        self.eval_seconds += int(metadata.get("eval_duration") or 0) / 1e9
        self.done_reason = str(metadata.get("done_reason") or "")

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.eval_seconds if self.eval_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_per_second": round(self.tokens_per_second, 2),
            "time_to_first_token": (
                None if self.time_to_first_token is None else round(self.time_to_first_token, 4)
            ),
            "total_seconds": round(self.total_seconds, 4),
            "model_calls": self.model_calls,
            "done_reason": self.done_reason,
            "messages_left_out": self.messages_left_out,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class Done:
    """The turn finished and is stored."""

    session_id: str
    stats: TurnStats = field(default_factory=TurnStats)


@dataclass(frozen=True)
class ApprovalPending:
    """The turn paused: the model called a tool that runs only with the user's yes. Comes just
    before `Done`; the turn goes on with `ChatService.resume_turn` (`/approve_tool`)."""

    session_id: str
    id: str  # the tool call's id (its `ToolCall` came earlier in this turn)
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class TurnError:
    """The turn failed; what was streamed before it is kept, marked as interrupted."""

    session_id: str
    error: OllamaStackError


Event = (
    Started | Sources | TextDelta | ThinkingDelta | ToolCall | ToolResult | ApprovalPending | Done
    | TurnError
)


def answered_call(result: ToolResult, open_calls: list[tuple[str, str]]) -> int | None:
    """Which of the calls still open (`(id, name)`, in order) `result` answers: the one with
    its id, else the first of its tool's name; None when none is open.

    >>> answered_call(ToolResult("b", "calc", "4"), [("a", "calc"), ("b", "calc")])
    1
    >>> answered_call(ToolResult("", "calc", "4"), [("a", "time"), ("b", "calc")])
    1
    >>> answered_call(ToolResult("x", "weather", "-"), [("a", "calc")]) is None
    True
    """
    for index, (call_id, _) in enumerate(open_calls):
        if result.id and call_id == result.id:
            return index
    return next((i for i, (_, name) in enumerate(open_calls) if name == result.name), None)
