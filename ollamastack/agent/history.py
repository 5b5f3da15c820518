"""The messages of a conversation as a turn sees them: where the turn being answered begins,
the window of history the model gets, and how many tool rounds the turn has used."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.messages.utils import count_tokens_approximately, trim_messages


def current_turn_start(messages: Sequence[AnyMessage]) -> int:
    """Index of the last human message: where the turn being answered begins."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return index
    return 0


def history_window(messages: Sequence[AnyMessage], max_tokens: int) -> list[AnyMessage]:
    """The newest messages that fit `max_tokens`, always keeping the current turn whole.

    Earlier turns are cut at a human message, so a tool call never loses its result.
    """
    start = current_turn_start(messages)
    current = list(messages[start:])
    budget = max_tokens - count_tokens_approximately(current)
    if budget <= 0 or start == 0:
        return current if budget <= 0 else list(messages)
    earlier = trim_messages(
        list(messages[:start]),
        max_tokens=budget,
        token_counter=count_tokens_approximately,
        strategy="last",
        start_on="human",
    )
    return [*earlier, *current]


def tool_rounds(messages: Sequence[AnyMessage]) -> int:
    """How many times the model has called tools in the current turn."""
    turn = messages[current_turn_start(messages):]
    return sum(1 for m in turn if isinstance(m, AIMessage) and m.tool_calls)
