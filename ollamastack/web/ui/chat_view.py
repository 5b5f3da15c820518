"""What the chat panel shows: stored messages and streamed events as Gradio chat messages.

Pure functions and a small state machine, no I/O: the UI feeds them what the service returns.
Each tool call is its own collapsible message (metadata title, status pending -> done,
duration), as in Gradio's agent demos; a thinking model's reasoning is its own collapsible
message too, never part of the answer; so are the Sources a question's documents gave
(`message_files`), before the answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gradio import ChatMessage

from ollamastack import errors
from ollamastack.events import (
    INTERRUPTED_TOOL,
    STOPPED_BY_USER,
    ApprovalPending,
    Done,
    Event,
    Source,
    Sources,
    Started,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolResult,
    TurnError,
    TurnStats,
    answered_call,
)
from ollamastack.web.ui.message_files import sources_message
from ollamastack.web.ui.safe_markdown import fenced, safe_markdown

STOPPED_REASON = STOPPED_BY_USER  # what ChatService stores for a cancelled turn
THINKING_TITLE = "Thinking"
DETAILS_TITLE = "Details"
AWAITING_APPROVAL = "Waiting for your approval: Approve or Deny below the chat."

# A failed turn says what happened in plain words; the operator's text (addresses, commands)
# is behind "Details".
PLAIN_WORDS: dict[type[errors.OllamaStackError], str] = {
    errors.OllamaUnavailable: "Ollama is not answering, so this message got no reply.",
    errors.OllamaConnectionLost: "The connection to Ollama broke in the middle of the answer.",
    errors.OllamaTimeout: "The model took too long to start answering.",
    errors.OllamaError: "Ollama could not answer this message.",
    errors.DatabaseUnavailable: "Conversations cannot be saved right now.",
    errors.EmbeddedError: "The built-in model could not answer.",
}


def plain_words(error: errors.OllamaStackError) -> str:
    """What a failed turn says to a person, in plain words.

    >>> plain_words(errors.OllamaUnavailable("http://localhost:11434"))
    'Ollama is not answering, so this message got no reply.'
    >>> plain_words(errors.ModelNotFound("qwen3:8b"))[:50]
    'The model qwen3:8b is not installed. Pick another '
    >>> plain_words(errors.ModelNotFound("qwen3:8b"))[-29:]
    'or pull it in the Models tab.'
    """
    if isinstance(error, errors.ModelNotFound):
        return (f"The model {error.model} is not installed. Pick another in Chat settings, "
                "or pull it in the Models tab.")
    for kind, words in PLAIN_WORDS.items():
        if isinstance(error, kind):
            return words
    return str(error)


def failed_note(plain: str) -> str:
    """
    >>> failed_note("Ollama is not answering.")
    '⚠ Ollama is not answering. Press Retry to ask again.'
    """
    return f"⚠ {plain} Press Retry to ask again."


def tool_title(name: str, *, failed: bool = False, waiting: bool = False) -> str:
    """
    >>> tool_title("calculator"), tool_title("weather", failed=True)
    ('Used tool `calculator`', 'Tool `weather` failed')
    >>> tool_title("send_mail", waiting=True)
    'Tool `send_mail` waits for your approval'
    """
    if waiting:
        return f"Tool `{name}` waits for your approval"
    return f"Tool `{name}` failed" if failed else f"Used tool `{name}`"


def tool_body(args: Mapping[str, Any], result: str | None) -> str:
    """The arguments a tool got and what it answered (None: still running)."""
    arguments = json.dumps(dict(args), ensure_ascii=False, indent=2)
    shown = "*running…*" if result is None else fenced(result, "text")
    return f"**Arguments**\n{fenced(arguments, 'json')}\n**Result**\n{shown}"


def stats_line(
    tokens: int,
    tokens_per_second: float,
    *,
    first_token: float | None = None,
    total: float | None = None,
    left_out: int = 0,
) -> str:
    """The small line under an answer; `left_out`: earlier messages the model did not see.

    >>> stats_line(42, 38.14, first_token=0.523, total=1.3)
    '<sub>42 tokens · 38.1 tokens/s · first token 0.52 s · 1.30 s in all</sub>'
    >>> stats_line(1, 0.0, left_out=3)
    '<sub>1 token · 3 earlier messages left out to fit the context</sub>'
    """
    parts = [f"{tokens} token{'' if tokens == 1 else 's'}"]
    if tokens_per_second:
        parts.append(f"{tokens_per_second:.1f} tokens/s")
    if first_token is not None:
        parts.append(f"first token {first_token:.2f} s")
    if total is not None:
        parts.append(f"{total:.2f} s in all")
    if left_out:
        parts.append(f"{left_out} earlier message{'' if left_out == 1 else 's'} left out to "
                     "fit the context")
    return f"<sub>{' · '.join(parts)}</sub>"


def turn_stats_line(stats: TurnStats) -> str:
    return stats_line(
        stats.completion_tokens,
        stats.tokens_per_second,
        first_token=stats.time_to_first_token,
        total=stats.total_seconds,
        left_out=stats.messages_left_out,
    )


def interrupted_note(reason: str) -> str:
    """How an answer cut short says so.

    >>> interrupted_note("stopped by the user")
    '■ *Stopped.*'
    >>> interrupted_note("Ollama is not reachable")
    '⚠ Ollama is not reachable'
    """
    return "■ *Stopped.*" if reason == STOPPED_REASON else f"⚠ {reason}"


def details_message(text: str) -> ChatMessage:
    """The operator's text of an error, folded away under "Details"."""
    return assistant_message(fenced(text, "text"), title=DETAILS_TITLE, status="done")


def with_note(text: str, note: str) -> str:
    return f"{text}\n\n{note}" if text else note


def assistant_message(content: str, **metadata: Any) -> ChatMessage:
    """An assistant message as the page may show it: see `safe_markdown` (the title too)."""
    if "title" in metadata:
        metadata["title"] = safe_markdown(metadata["title"])
    return ChatMessage(role="assistant", content=safe_markdown(content), metadata=metadata)  # type: ignore[arg-type]


# -- stored conversations ---------------------------------------------------------------


def append_to_answer(view: list[ChatMessage], line: str) -> None:
    last = view[-1] if view else None
    if last is not None and last.role == "assistant" and not last.metadata:
        last.content = safe_markdown(with_note(str(last.content), line))
    else:
        view.append(assistant_message(line))


# -- a turn as it streams -----------------------------------------------------------------


@dataclass
class _Part:
    kind: Literal["text", "thinking", "tool"]
    text: str = ""
    started: float = 0.0
    ended: float | None = None
    call_id: str = ""
    name: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    result: str | None = None
    failed: bool = False
    waiting: bool = False  # held for the user's approval


class TurnView:
    """The assistant's side of one turn, built from the chat service's events as they stream.

    `apply` returns True when the event changed the structure (a tool started or finished,
    the turn ended): the UI sends such updates at once and coalesces the rest.
    """

    def __init__(
        self, *, show_thinking: bool, waiting: str, redact: Callable[[str], str] = str
    ) -> None:
        self.show_thinking = show_thinking
        self.waiting = waiting  # the pending title shown until something visible arrives
        self.redact = redact  # an error's text as this viewer may read it (no addresses)
        self.parts: list[_Part] = []
        self.finished = False
        self.failed = False
        self._note = ""  # stats line, or why the turn ended early
        self._details = ""  # the error's own text, behind "Details"
        self.pending: ApprovalPending | None = None  # a call waiting for the user's yes
        self.sources: tuple[Source, ...] = ()  # what the conversation's documents gave

    def apply(self, event: Event, now: float) -> bool:
        if isinstance(event, Started):
            return False
        if isinstance(event, Sources):
            self.sources = event.sources
            return True
        if isinstance(event, ThinkingDelta):
            part = self._open("thinking", now)
            part.text += event.text
            if not self.show_thinking:
                self.waiting = "Thinking…"
            return False
        if isinstance(event, TextDelta):
            self._open("text", now).text += event.text
            return False
        if isinstance(event, ToolCall):
            self._close(now)
            self.parts.append(
                _Part("tool", started=now, call_id=event.id, name=event.name, args=event.args)
            )
            return True
        if isinstance(event, ToolResult):
            part = self._tool(event)
            if part is not None:
                part.result, part.failed, part.ended = event.content, event.is_error, now
            return True
        if isinstance(event, ApprovalPending):
            self.pending = event
            return True
        if isinstance(event, Done):
            self._finish(now, turn_stats_line(event.stats))
        elif isinstance(event, TurnError):
            self.failed = True
            self._details = self.redact(str(event.error))
            self._finish(now, failed_note(plain_words(event.error)))
        return True

    def messages(self) -> list[ChatMessage]:
        view: list[ChatMessage] = []
        head = [sources_message(self.sources)] if self.sources else []
        for part in self.parts:
            status = "pending" if part.ended is None else "done"
            timing = {} if part.ended is None else {"duration": round(part.ended - part.started, 2)}
            if part.kind == "text" and part.text:
                view.append(assistant_message(part.text))
            elif part.kind == "thinking" and self.show_thinking:
                view.append(assistant_message(part.text, title=THINKING_TITLE, status=status,
                                              **timing))
            elif part.kind == "tool":
                title = tool_title(part.name, failed=part.failed, waiting=part.waiting)
                body = tool_body(part.args, part.result)
                view.append(assistant_message(body, title=title, status=status, **timing))
        if not view and not self.finished:
            view.append(assistant_message("", title=self.waiting, status="pending"))
        if self._note:
            append_to_answer(view, self._note)
        if self._details:
            view.append(details_message(self._details))
        return [*head, *view]

    def _open(self, kind: Literal["text", "thinking"], now: float) -> _Part:
        if self.parts and self.parts[-1].kind == kind and self.parts[-1].ended is None:
            return self.parts[-1]
        self._close(now)
        part = _Part(kind, started=now)
        self.parts.append(part)
        return part

    def _close(self, now: float) -> None:
        """End the thinking or text part in progress (a tool part ends with its result)."""
        if self.parts and self.parts[-1].kind != "tool" and self.parts[-1].ended is None:
            self.parts[-1].ended = now

    def _tool(self, result: ToolResult) -> _Part | None:
        running = [p for p in self.parts if p.kind == "tool" and p.result is None]
        index = answered_call(result, [(p.call_id, p.name) for p in running])
        return None if index is None else running[index]

    def _finish(self, now: float, note: str) -> None:
        self._close(now)
        for part in self.parts:
            if part.ended is not None:
                continue
            part.ended = now
            if self.pending is not None and part.call_id == self.pending.id:
                part.waiting, part.result = True, AWAITING_APPROVAL
            else:  # a tool that never answered
                part.failed, part.result = True, INTERRUPTED_TOOL
        self.finished = True
        self._note = note
