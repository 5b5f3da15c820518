"""Tools that wait for the user's yes (`OLLAMASTACK_CONFIRM_TOOLS`).

LangChain's `HumanInTheLoopMiddleware` in its per-call mode pauses the turn with a LangGraph
`interrupt` as such a tool call starts; the pause is a checkpoint like any other, so it
survives a restart. The turn ends with `ApprovalPending`; `ChatService.resume_turn` answers
the oldest pending call with `Command(resume=...)`: approved, the tool runs and the answer
goes on; denied, the model reads that the user declined and answers without it.

A new message to a conversation with a call waiting is refused (`AwaitingApproval`): the
user answers the call first, so nothing runs or is skipped without their word. That error and
`NothingToApprove` (an answer with no call waiting) are in `ollamastack.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from langchain.agents.middleware import HumanInTheLoopMiddleware
from langgraph.graph.state import CompiledStateGraph

# Errors shown to users live in errors.py; re-exported while `agent/service.py` imports
# them from here.
from ollamastack.errors import AwaitingApproval as AwaitingApproval
from ollamastack.errors import NothingToApprove as NothingToApprove

DECLINED = "the user declined to run it; answer without its result"


@dataclass(frozen=True)
class Pending:
    """A tool call waiting for approval: its interrupt (to resume) and the call itself."""

    interrupt_id: str
    call_id: str
    name: str
    args: dict[str, Any]


def approval_middleware(names: Iterable[str]) -> HumanInTheLoopMiddleware:
    """Pauses each call of these tools until the user approves or denies it."""
    config: dict[str, Any] = {"allowed_decisions": ["approve", "reject"]}
    return HumanInTheLoopMiddleware(
        {name: dict(config) for name in sorted(names)}, interrupt_mode="per_call"
    )


def decision(approve: bool) -> dict[str, str]:
    """The answer an interrupt is resumed with."""
    return {"type": "approve"} if approve else {"type": "reject", "message": DECLINED}


def turn_metadata(model: str, temperature: float, prompt: str, max_tokens: int | None) -> dict:
    """The turn's options, kept in each checkpoint's metadata: a turn resumed after an
    approval (even in a new process) goes on with the model and prompt it began with."""
    return {"turn_model": model, "turn_temperature": temperature, "turn_prompt": prompt,
            "turn_max_tokens": max_tokens or 0}


def turn_options(metadata: dict | None) -> tuple[str, float | None, str, int | None]:
    """`turn_metadata`'s options back: (model, temperature, prompt, max_tokens); empty or
    None where the checkpoint has none (the service's defaults apply)."""
    metadata = metadata or {}
    temperature = metadata.get("turn_temperature")
    return (str(metadata.get("turn_model") or ""),
            float(temperature) if isinstance(temperature, int | float) else None,
            str(metadata.get("turn_prompt") or ""),
            int(metadata.get("turn_max_tokens") or 0) or None)


async def pending_approvals(graph: CompiledStateGraph, config: dict) -> list[Pending]:
    """The tool calls of a conversation waiting for approval, oldest first."""
    state = await graph.aget_state(config)
    found = []
    for interrupt in state.interrupts:
        value = interrupt.value
        if isinstance(value, dict) and value.get("type") == "tool_approval":
            found.append(Pending(interrupt.id, str(value.get("tool_call_id") or ""),
                                 str(value.get("name") or ""), dict(value.get("args") or {})))
    return found
