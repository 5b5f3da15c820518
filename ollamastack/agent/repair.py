"""Agent middleware: an answer that is a tool call written as text becomes a real tool call.

It runs inside the turn's middleware, so it sees exactly the tools offered to this model call;
the graph then runs the tool like any native call, and the stored history holds a normal
assistant tool call followed by the tool's result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from uuid import uuid4

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage
from langchain_core.messages.tool import tool_call
from pydantic import BaseModel

from ollamastack.agent.text_tool_calls import read_calls


def tool_schemas(tools: list[Any]) -> dict[str, type[BaseModel] | None]:
    """Each offered tool's name and its arguments' model (None where it has no model)."""
    schemas: dict[str, type[BaseModel] | None] = {}
    for tool in tools:
        name = getattr(tool, "name", None)
        if name is None and isinstance(tool, dict):
            name = tool.get("function", {}).get("name") or tool.get("name")
        schema = getattr(tool, "args_schema", None)
        if name:
            is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
            schemas[name] = schema if is_model else None
    return schemas


def repaired(message: AIMessage, tools: list[Any]) -> AIMessage | None:
    """`message` with its text read as tool calls, or None when it is not one."""
    if message.tool_calls or not tools or not isinstance(message.content, str):
        return None
    calls = read_calls(message.content, tool_schemas(tools))
    if calls is None:
        return None
    return AIMessage(
        content="",
        id=message.id,
        tool_calls=[tool_call(name=n, args=a, id=f"text-{uuid4()}") for n, a in calls],
        additional_kwargs=message.additional_kwargs,
        response_metadata={**message.response_metadata, "tool_calls_from_text": True},
        usage_metadata=message.usage_metadata,
    )


class RepairTextToolCalls(AgentMiddleware):
    """Reads tool calls a model wrote as text (see `text_tool_calls`) back into real calls."""

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        response = await handler(request)
        messages = list(response.result)
        if messages and isinstance(messages[-1], AIMessage):
            if (fixed := repaired(messages[-1], list(request.tools))) is not None:
                messages[-1] = fixed
                return replace(response, result=messages)
        return response
