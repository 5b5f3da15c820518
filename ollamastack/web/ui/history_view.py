"""A stored conversation as the chat panel shows it: its messages as Gradio chat messages,
each turn's tool steps with the call they answer, Sources after the question that had them,
stats after each finished answer. Pure: the caller fetches what it shows (`stored_files`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from gradio import ChatMessage
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from ollamastack.events import TurnStats
from ollamastack.web.ui.chat_view import (
    STOPPED_REASON,
    THINKING_TITLE,
    append_to_answer,
    assistant_message,
    details_message,
    failed_note,
    interrupted_note,
    stats_line,
    tool_body,
    tool_title,
    with_note,
)
from ollamastack.web.ui.message_files import sources_message, stored, user_message
from ollamastack.web.ui.safe_markdown import fenced


def history_view(
    messages: Sequence[AnyMessage], *, show_thinking: bool, redact: Callable[[str], str] = str,
    images: Mapping[str, str] | None = None,
) -> list[ChatMessage]:
    """A stored conversation as the chat panel shows it.

    A user message shows its files (`images`: file id -> where Gradio serves that image) and
    is followed by the Sources its answer drew on; tool results are shown with the call they
    answer; an answer cut short carries its note (why, as `redact` lets this viewer read it,
    under "Details"); each finished answer ends with its stats line (tokens and speed, from
    Ollama's counters).
    """
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    shown_results: set[str] = set()
    view: list[ChatMessage] = []
    turn: list[AIMessage] = []  # the model calls of the turn being shown

    def end_turn() -> None:
        if turn and not turn[-1].response_metadata.get("interrupted"):
            _add_stats(view, turn)
        turn.clear()

    for message in messages:
        if isinstance(message, HumanMessage):
            end_turn()
            extra = message.additional_kwargs
            view.append(user_message(message.text, stored(extra.get("attachments"),
                                                          images or {})))
            if sources := extra.get("sources"):
                view.append(sources_message([s for s in sources if isinstance(s, dict)]))
        elif isinstance(message, AIMessage):
            turn.append(message)
            view += _ai_view(message, results, show_thinking, redact)
            shown_results |= {call["id"] or "" for call in message.tool_calls}
        elif isinstance(message, ToolMessage) and message.tool_call_id not in shown_results:
            failed = message.status == "error"
            view.append(
                assistant_message(
                    fenced(message.text, "text"),
                    title=tool_title(message.name or "tool", failed=failed),
                    status="done",
                )
            )
    end_turn()
    return view


def _ai_view(
    message: AIMessage,
    results: Mapping[str, ToolMessage],
    show_thinking: bool,
    redact: Callable[[str], str],
) -> list[ChatMessage]:
    view: list[ChatMessage] = []
    thinking = message.additional_kwargs.get("reasoning_content")
    if show_thinking and thinking:
        view.append(assistant_message(str(thinking), title=THINKING_TITLE, status="done"))
    text = message.text
    details = ""
    if reason := message.response_metadata.get("interrupted"):
        stopped = str(reason) == STOPPED_REASON
        text = with_note(text, interrupted_note(STOPPED_REASON) if stopped else failed_note(
            "This answer was cut short."))
        details = "" if stopped else redact(str(reason))
    if text:
        view.append(assistant_message(text))
    if details:
        view.append(details_message(details))
    for call in message.tool_calls:
        result = results.get(call["id"] or "")
        failed = result is not None and result.status == "error"
        body = tool_body(call["args"], None if result is None else result.text)
        view.append(assistant_message(body, title=tool_title(call["name"], failed=failed),
                                      status="done"))
    return view


def _add_stats(view: list[ChatMessage], turn: Sequence[AIMessage]) -> None:
    stats = TurnStats()
    for message in turn:
        if "eval_count" in message.response_metadata:
            stats.add(message.response_metadata)
    if stats.model_calls:  # else not an answer Ollama counted (e.g. stored by an older version)
        append_to_answer(view, stats_line(stats.completion_tokens, stats.tokens_per_second))
