"""Agent middleware: tools for models without native tool calling (`tool_mode` "prompted").

The first model call of a turn picks the tool instead of answering: a confident rule
(`tool_choice.select_tools`) names it, else the model is asked for a JSON choice constrained
by a schema (Ollama's `format`, a JSON-schema grammar on llama.cpp). The choice becomes a
normal assistant tool call, so the graph runs the tool and the page and API show it like a
native one. The answer is then written without tools, the results given as plain text (a
template without tool support drops tool messages). In "native" mode a confident rule only
narrows the tools offered, which helps small models choose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import uuid4

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call

from ollamastack.agent.history import current_turn_start
from ollamastack.agent.repair import tool_schemas
from ollamastack.agent.text_tool_calls import read_calls
from ollamastack.agent.tool_choice import ANALYSIS, Choice, select_tools

NO_TOOL = "none"
CHOOSE = (
    "Decide whether one of these tools is needed to answer the user's last message. "
    'Answer with JSON only: {"tool": "<name>", "arguments": {...}}, or {"tool": "none"} when '
    "no tool is needed.\nTools:\n"
)


def choice_schema(tools: list[Any]) -> dict[str, Any]:
    """The JSON a choice must be: `{"tool": "none"}`, or one tool with exactly its arguments.
    Each shape closes as soon as it is complete, so even a tiny model cannot ramble on.

    >>> from ollamastack.agent.tools import calculator
    >>> choice_schema([calculator])["anyOf"][1]  # doctest: +NORMALIZE_WHITESPACE
    {'type': 'object', 'properties': {'tool': {'const': 'calculator'},
     'arguments': {'type': 'object', 'properties': {'expression': {'type': 'string'}},
      'required': ['expression'], 'additionalProperties': False}},
     'required': ['tool', 'arguments'], 'additionalProperties': False}
    """
    shapes = [_closed({"tool": {"const": NO_TOOL}})]
    for tool in tools:
        shapes.append(_closed({"tool": {"const": tool.name}, "arguments": _arguments(tool)}))
    return {"anyOf": shapes}


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def _arguments(tool: Any) -> dict[str, Any]:
    """The tool's arguments as a closed JSON schema (types only: titles and texts dropped)."""
    fields = getattr(tool, "args", None) or {}
    schema = getattr(tool, "tool_call_schema", None)
    required = list(fields)
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        required = schema.model_json_schema().get("required", [])
    kinds = {name: {"type": spec.get("type", "string")} for name, spec in fields.items()}
    return {"type": "object", "properties": kinds, "required": required,
            "additionalProperties": False}


def choice_prompt(tools: list[Any]) -> str:
    """The system prompt of the tool-choice call: fixed for a set of tools (so it is cached)."""
    return CHOOSE + tool_lines(tools)


def tool_lines(tools: list[Any]) -> str:
    lines = []
    for tool in tools:
        args = getattr(tool, "args", {}) or {}
        described = ", ".join(f"{k}: {v.get('type', 'string')}" for k, v in args.items())
        summary = (getattr(tool, "description", "") or "").split("\n")[0]
        lines.append(f"- {tool.name}({described}): {summary}")
    return "\n".join(lines)


def as_plain_text(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """Tool calls and results rewritten as text, for a model that cannot read tool messages.

    >>> call = AIMessage("", tool_calls=[{"name": "calculator", "args": {"e": "2"}, "id": "1"}])
    >>> [m.content for m in as_plain_text([HumanMessage("2?"), call,
    ...                                    ToolMessage("2", tool_call_id="1", name="calculator")])]
    ['2?', 'calculator gave this result:\\n2']
    """
    plain: list[AnyMessage] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            if message.text:
                plain.append(AIMessage(message.text))
        elif isinstance(message, ToolMessage):
            plain.append(HumanMessage(f"{message.name} gave this result:\n{message.text}"))
        else:
            plain.append(message)
    return plain


_WORD = re.compile(r"\w+")
KNOWING = {"current_time"}  # tools whose arguments a model may know (Japan -> Asia/Tokyo)


def grounded(choice: Choice, message: str) -> bool:
    """Whether a model's choice rests on the message: every word of its text arguments is in
    it, and text_analyzer is only chosen when the message asks for an analysis. A small model
    otherwise picks a tool for a haiku, or a weather tool for a name for a weather app.

    >>> grounded(Choice("weather", {"location": "Oslo"}), "Is it cold in Oslo?")
    True
    >>> grounded(Choice("weather", {"location": "Paris"}), "Name a weather app")
    False
    >>> grounded(Choice("text_analyzer", {"text": "good morning"}), "Translate 'good morning'")
    False
    >>> grounded(Choice("current_time", {"timezone": "Asia/Tokyo"}), "Is it late in Japan?")
    True
    """
    if choice.tool in KNOWING:
        return True
    if choice.tool == "text_analyzer" and not ANALYSIS.search(message):
        return False
    said = {word.lower() for word in _WORD.findall(message)}
    texts = [value for value in choice.args.values() if isinstance(value, str)]
    return all(word.lower() in said for text in texts for word in _WORD.findall(text))


def calls_message(choices: list[Choice]) -> AIMessage:
    calls = [tool_call(name=c.tool, args=c.args, id=f"chosen-{uuid4()}") for c in choices]
    return AIMessage("", tool_calls=calls, response_metadata={"tool_calls_chosen": True})


class ToolChoiceMiddleware(AgentMiddleware):
    """Applies the turn's tool mode to each model call (see the module's docstring)."""

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        mode = request.runtime.context.tool_mode
        tools = list(request.tools)
        if mode not in ("native", "prompted") or not tools:
            return await handler(request)
        turn = request.messages[current_turn_start(request.messages):]
        asked = turn[0].text if turn and isinstance(turn[0], HumanMessage) else ""
        offered = {tool.name: tool for tool in tools if hasattr(tool, "name")}
        choices = select_tools(asked, set(offered))
        if mode == "native":
            narrowed = [offered[c.tool] for c in choices] or tools
            return await handler(request.override(tools=narrowed))
        called = any(isinstance(m, AIMessage) and m.tool_calls for m in turn)
        if not called:
            if not choices:
                choices = await self._ask(request, asked, tools)
            if choices:
                return ModelResponse(result=[calls_message(choices)])
        return await handler(request.override(tools=[], messages=as_plain_text(request.messages)))

    async def _ask(self, request: ModelRequest, asked: str, tools: list[Any]) -> list[Choice]:
        """The model's JSON choice, read and checked like a text call; [] for none or junk."""
        prompt = [SystemMessage(choice_prompt(tools)), HumanMessage(asked)]
        options = dict((request.model_settings or {}).get("options") or {})
        options.update(temperature=0, num_predict=200)
        model = {"model": m} if (m := (request.model_settings or {}).get("model")) else {}
        answer = await request.model.ainvoke(
            prompt, format=choice_schema(tools), options=options, **model,
            config={"tags": ["nostream"]},  # not part of the answer: never streamed
        )
        try:
            picked = json.loads(answer.text)
        except (json.JSONDecodeError, RecursionError):
            return []
        if not isinstance(picked, dict) or picked.get("tool") in (None, NO_TOOL):
            return []
        call = {"name": picked["tool"], "arguments": picked.get("arguments") or {}}
        calls = read_calls(json.dumps(call), tool_schemas(tools))
        chosen = [Choice(name, args) for name, args in calls or []]
        return [choice for choice in chosen if grounded(choice, asked)]
