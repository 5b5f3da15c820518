"""Keeping a stored conversation valid when a turn does not finish.

A failed, stopped or killed turn must not leave an AI tool call without its result (the next
turn would fail on it): what streamed is stored, marked interrupted, and open calls closed.
"""

from __future__ import annotations

import logging

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph.state import CompiledStateGraph

from ollamastack.agent.history import current_turn_start
from ollamastack.events import INTERRUPTED_TOOL

log = logging.getLogger(__name__)

CUT_OFF = "the app stopped before the answer was finished"


def thread(session_id: str) -> dict:
    """The checkpointer's address of a session."""
    return {"configurable": {"thread_id": session_id}}


def answered_in_full(turn: list[AnyMessage]) -> bool:
    """Whether a turn (its question and what followed) ends with the model's final answer."""
    return len(turn) > 1 and isinstance(turn[-1], AIMessage) and not turn[-1].tool_calls


async def seal_cut_off_turn(graph: CompiledStateGraph, session_id: str) -> None:
    """Seal a last turn left unanswered by an app process that died mid-turn (SIGKILL, power
    loss): no seal ran then, and an open tool call would break the next turn. A turn paused
    for the user's approval (`approval.py`) is not cut off: it waits, and is left as it is."""
    state = await graph.aget_state(thread(session_id))
    if state.interrupts:
        return
    messages = state.values.get("messages", [])
    turn = list(messages[current_turn_start(messages):])
    if turn and isinstance(turn[0], HumanMessage) and not answered_in_full(turn):
        await seal_turn(graph, session_id, "", CUT_OFF)


async def seal_turn(
    graph: CompiledStateGraph, session_id: str, partial: str, reason: str
) -> None:
    """Store what streamed of an unfinished last turn, marked interrupted, and close any tool
    call left open; a finished turn (or none) is left as it is."""
    config = thread(session_id)
    try:
        state = await graph.aget_state(config)
        messages = state.values.get("messages", [])
        # The state shown includes the writes of steps a cancelled run never checkpointed
        # (a finished model call, say), and an update as "model" drops those: so the turn
        # is sent again. The reducer keeps one copy per message id.
        turn = list(messages[current_turn_start(messages):])
        finished = answered_in_full(turn)
        answered = {m.tool_call_id for m in turn if isinstance(m, ToolMessage)}
        open_calls = [
            call
            for m in turn if isinstance(m, AIMessage)
            for call in m.tool_calls if call["id"] not in answered
        ]
        patch: list[AnyMessage] = [
            *turn,
            *(
                ToolMessage(INTERRUPTED_TOOL, tool_call_id=c["id"], name=c["name"], status="error")
                for c in open_calls
            ),
        ]
        if not finished:  # else the answer was whole; only its update had not streamed
            patch.append(AIMessage(partial, response_metadata={"interrupted": reason}))
        await graph.aupdate_state(config, {"messages": patch}, as_node="model")
    except Exception:
        log.exception("could not seal interrupted turn in session %s", session_id)
