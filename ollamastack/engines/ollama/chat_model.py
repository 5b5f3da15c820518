"""The LangChain chat model for Ollama: langchain-ollama's, with tool-call arguments read safely
and tool results named.

langchain-ollama 1.1 re-reads every string argument of a tool call with `ast.literal_eval`,
which raises RecursionError on a long sum (a model asking the calculator for 10,000
characters of `1+1+…`), failing the turn before the tool can refuse the input. Here each
streamed part's tool calls are taken off before langchain-ollama sees them, read with the
same rules under a guard, and put back on the chunk made from that part.

It also sends tool results without Ollama's `tool_name`, which a model's chat template uses to
tell which tool answered; here each result carries the name of its tool.

Both fixes override private methods of `ChatOllama`. `check_chat_ollama()` probes their shape
and raises `EngineMismatch` at start-up on a langchain-ollama whose private methods changed,
instead of failing at the first tool call.
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from uuid import uuid4

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessageChunk, BaseMessage, ToolCall, ToolMessage
from langchain_core.messages.tool import tool_call
from langchain_core.outputs import ChatGenerationChunk
from langchain_ollama import ChatOllama

from ollamastack.errors import EngineMismatch

UNREADABLE = (SyntaxError, ValueError, TypeError, RecursionError, MemoryError)


def read_literal(text: str) -> Any:
    """JSON, else a Python literal, else the text itself.

    >>> read_literal('{"a": 1}'), read_literal("{'a': 1}"), read_literal("2+2")
    ({'a': 1}, {'a': 1}, '2+2')
    >>> read_literal("1+" * 5000 + "1") == "1+" * 5000 + "1"
    True
    >>> read_literal("1" * 4400 + "+1") == "1" * 4400 + "+1"
    True
    """
    try:
        return json.loads(text)
    except ValueError:  # JSONDecodeError, or a number past Python's digit limit
        pass
    try:
        return ast.literal_eval(text)
    except UNREADABLE:
        return text


def read_arguments(name: str, arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as langchain-ollama reads them, without its crash.

    String values that hold a JSON or Python dict or list become that structure (Ollama
    sometimes nests them as text); every other value is kept as sent.

    >>> read_arguments("calculator", {"expression": "2+2", "functionName": "calculator"})
    {'expression': '2+2'}
    >>> read_arguments("weather", {"where": '["Oslo", "Bergen"]'})
    {'where': ['Oslo', 'Bergen']}
    """
    if isinstance(arguments, Mapping):
        read = {}
        for key, value in arguments.items():
            if key == "functionName" and value == name:
                continue
            parsed = read_literal(value) if isinstance(value, str) else value
            read[key] = parsed if isinstance(parsed, dict | list) else value
        return read
    parsed = read_literal(arguments) if isinstance(arguments, str) else arguments
    if not isinstance(parsed, dict):
        raise OutputParserException(f"Tool {name}'s arguments are not an object: {arguments!r}")
    return parsed


def take_tool_calls(part: Any) -> list[ToolCall]:
    """Remove the tool calls from one streamed Ollama part and return them read."""
    if isinstance(part, str) or "message" not in part:
        return []
    message = part["message"]
    raw = message.get("tool_calls") if isinstance(message, Mapping) else message.tool_calls
    if not raw:
        return []
    if isinstance(message, Mapping):
        message["tool_calls"] = None
    else:
        message.tool_calls = None
    return [
        tool_call(
            id=str(uuid4()),
            name=call["function"]["name"],
            args=read_arguments(call["function"]["name"], call["function"]["arguments"]),
        )
        for call in raw
    ]


# The private methods overridden below, with the parameters they are called with.
OVERRIDDEN = {
    "_convert_messages_to_ollama_messages": ["self", "messages"],
    "_acreate_chat_stream": ["self", "messages", "stop", "kwargs"],
    "_aiterate_over_stream": ["self", "messages", "stop", "kwargs"],
}


def check_chat_ollama(base: type = ChatOllama) -> None:
    """`EngineMismatch` unless `base` has the private methods `OllamaChatModel` overrides,
    with their parameters, and its stream reader passes its keywords to the stream maker."""
    for name, parameters in OVERRIDDEN.items():
        method = getattr(base, name, None)
        if method is None or list(inspect.signature(method).parameters) != parameters:
            raise EngineMismatch(
                f"langchain-ollama's ChatOllama.{name} is not the one OllamaStack was built for "
                f"(parameters {parameters[1:]}): install the version in requirements.txt."
            )
    source = inspect.getsource(base._aiterate_over_stream)
    if "self._acreate_chat_stream(messages, stop, **kwargs)" not in source:
        raise EngineMismatch(
            "langchain-ollama's ChatOllama._aiterate_over_stream no longer passes its keywords "
            "to _acreate_chat_stream: install the version in requirements.txt."
        )


class OllamaChatModel(ChatOllama):
    """ChatOllama whose tool-call arguments cannot crash a turn, naming each tool result."""

    def _convert_messages_to_ollama_messages(self, messages: list[BaseMessage]) -> Any:
        converted = super()._convert_messages_to_ollama_messages(messages)
        for message, sent in zip(messages, converted, strict=True):
            if isinstance(message, ToolMessage) and message.name:
                sent["tool_name"] = message.name
        return converted

    async def _acreate_chat_stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[Mapping[str, Any] | str]:
        latest: list[list[ToolCall]] = kwargs.pop("_latest_tool_calls")
        async for part in super()._acreate_chat_stream(messages, stop, **kwargs):
            latest[:] = [take_tool_calls(part)]
            yield part

    async def _aiterate_over_stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        # langchain-ollama makes at most one chunk per part, right after reading it, so the
        # calls taken from the latest part belong to the chunk that comes out next.
        latest: list[list[ToolCall]] = [[]]
        chunks = super()._aiterate_over_stream(
            messages, stop, _latest_tool_calls=latest, **kwargs
        )
        async for chunk in chunks:
            calls, latest[:] = latest[0], [[]]
            if calls:
                message = chunk.message
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(
                        content=message.content,
                        additional_kwargs=message.additional_kwargs,
                        usage_metadata=getattr(message, "usage_metadata", None),
                        tool_calls=calls,
                    ),
                    generation_info=chunk.generation_info,
                )
            yield chunk
