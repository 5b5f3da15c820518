"""`ChatEmbedded`: the LangChain chat model over an `EmbeddedEngine`, a stand-in for ChatOllama.

Its last streamed chunk carries the same `response_metadata` counters as ChatOllama's
(`done`, `prompt_eval_count`, `eval_count`, `eval_duration`, ...), so turn statistics
work the same for both.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from ollamastack.engines.embedded.engine import EMBEDDED_MODEL, EmbeddedEngine, Finished
from ollamastack.engines.embedded.tool_format import (
    ToolCallSplitter,
    call_text,
    result_text,
    tools_prompt,
)

_PASSED_OPTIONS = {"num_predict": "max_tokens", "top_p": "top_p", "top_k": "top_k",
                   "seed": "seed", "repeat_penalty": "repeat_penalty"}


def to_openai_messages(
    messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] = ()
) -> list[dict[str, str]]:
    """LangChain messages as plain-text chat messages; tools, calls and results as text.

    All system messages become one, first; consecutive tool results one user message.

    >>> from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    >>> call = {"name": "calculator", "args": {"expression": "2+2"}, "id": "c1"}
    >>> for m in to_openai_messages([HumanMessage("2+2?"), AIMessage("", tool_calls=[call]),
    ...                              ToolMessage("4", tool_call_id="c1")]):
    ...     print(m["role"], m["content"].replace("\\n", " "))
    user 2+2?
    assistant <tool_call> {"name": "calculator", "arguments": {"expression": "2+2"}} </tool_call>
    user <tool_response> 4 </tool_response>
    """
    system = [m.text for m in messages if isinstance(m, SystemMessage)]
    if tools:
        system.append(tools_prompt(tools))
    out = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, AIMessage):
            parts = [message.text, *(call_text(c["name"], c["args"]) for c in message.tool_calls)]
            role, content = "assistant", "\n".join(p for p in parts if p)
        elif isinstance(message, ToolMessage):
            role, content = "user", result_text(message.text)
            previous = out[-1] if out else {}
            if previous.get("role") == "user" and previous["content"].endswith("</tool_response>"):
                previous["content"] += "\n" + content
                continue
        else:  # human, or any other kind: the user speaks
            role, content = "user", message.text
        out.append({"role": role, "content": content})
    return out


class _Reader:
    """Turns the engine's chunks into LangChain chunks; the last one carries the counters."""

    def __init__(self, model: str, tool_names: set[str]) -> None:
        self.model, self.splitter = model, ToolCallSplitter(tool_names)
        self.started = time.perf_counter_ns()
        self.usage: dict[str, Any] = {}
        self.timings: dict[str, Any] = {}
        self.done_reason = ""

    def read(self, chunk: dict[str, Any]) -> ChatGenerationChunk | None:
        self.usage = chunk.get("usage") or self.usage
        self.timings = chunk.get("timings") or self.timings
        text = ""
        for choice in chunk.get("choices") or ():
            text += (choice.get("delta") or {}).get("content") or ""
            self.done_reason = choice.get("finish_reason") or self.done_reason
        shown = self.splitter.feed(text)
        return ChatGenerationChunk(message=AIMessageChunk(content=shown)) if shown else None

    def last(self, finished: Finished) -> ChatGenerationChunk:
        text, calls = self.splitter.finish()
        prompt = int(self.usage.get("prompt_tokens") or self.timings.get("prompt_n") or 0)
        output = int(self.usage.get("completion_tokens") or self.timings.get("predicted_n") or 0)
        cached = int((self.usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        metadata = {
            "model_name": self.model,
            "model": self.model,
            "done": True,
            "done_reason": "length" if self.done_reason == "length" else "stop",
            "total_duration": time.perf_counter_ns() - self.started,
            "load_duration": int(finished.load_seconds * 1e9),
            "prompt_eval_count": prompt,
            "prompt_eval_duration": int(float(self.timings.get("prompt_ms") or 0) * 1e6),
            "eval_count": output,
            "eval_duration": int(float(self.timings.get("predicted_ms") or 0) * 1e6),
        }
        usage = UsageMetadata(
            input_tokens=prompt, output_tokens=output, total_tokens=prompt + output,
            input_token_details={"cache_read": cached},
        )
        chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(calls)
        ]
        message = AIMessageChunk(content=text, tool_call_chunks=chunks, usage_metadata=usage,
                                 response_metadata=metadata, chunk_position="last")
        return ChatGenerationChunk(message=message)


class ChatEmbedded(BaseChatModel):
    """A chat model answered in-process by the embedded llama.cpp engine.

    Per-call settings come as ChatOllama's do (`options={"temperature": ...}`); keys it
    cannot use (`num_ctx`: the context is fixed when the model loads; `reasoning`) are
    ignored.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: EmbeddedEngine
    model: str = EMBEDDED_MODEL
    temperature: float | None = None
    # A tiny model may loop until its context is full: answers stop here unless a call's
    # `options={"num_predict": n}` says otherwise. None: no limit.
    max_tokens: int | None = 1024
    model_kwargs: dict[str, Any] = Field(default_factory=dict)  # more llama.cpp request fields

    @property
    def _llm_type(self) -> str:
        return "embedded-llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "path": str(self.engine.model_path)}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer `tools` to the model; `tool_choice="none"` offers none (others can't be forced)."""
        specs = [] if tool_choice == "none" else [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=specs, **kwargs)

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], set[str]]:
        tools = kwargs.get("tools") or []
        options = kwargs.get("options") if isinstance(kwargs.get("options"), dict) else {}
        request: dict[str, Any] = {
            **self.model_kwargs,
            "messages": to_openai_messages(messages, tools),
            "stream_options": {"include_usage": True},
        }
        temperature = options.get("temperature", self.temperature)
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            request["temperature"] = float(temperature)
        if self.max_tokens:
            request["max_tokens"] = self.max_tokens
        for option, key in _PASSED_OPTIONS.items():
            if isinstance(options.get(option), int | float) and options[option] > 0:
                request[key] = options[option]
        if stop := stop or options.get("stop"):
            request["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if isinstance(schema := kwargs.get("format"), dict):  # ChatOllama's `format=`
            request["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
        elif schema == "json":
            request["response_format"] = {"type": "json_object"}
        return request, {t["function"]["name"] for t in tools if "function" in t}

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request, names = self._request(messages, stop, kwargs)
        reader = _Reader(self.model, names)
        async with aclosing(self.engine.stream(request)) as items:
            async for item in items:
                if isinstance(item, Finished):
                    if item.error:
                        raise item.error
                    yield reader.last(item)
                elif chunk := reader.read(item):
                    yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = [chunk async for chunk in self._astream(messages, stop, **kwargs)]
        return generate_from_stream(iter(chunks))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Blocking: waits in the caller's thread for the engine's worker thread."""
        request, names = self._request(messages, stop, kwargs)
        reader = _Reader(self.model, names)
        chunks = []
        for item in self.engine.complete(request):
            if isinstance(item, Finished):
                if item.error:
                    raise item.error
                chunks.append(reader.last(item))
            elif chunk := reader.read(item):
                chunks.append(chunk)
        return generate_from_stream(iter(chunks))

