"""The LangGraph agent: one compiled graph, with model, temperature and prompt chosen per turn."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ModelRequest,
    ModelResponse,
    ToolCallRequest,
    ToolErrorMiddleware,
)
from langchain_core.caches import BaseCache
from langchain_core.messages import (
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from ollamastack.agent.answer_cache import CachedAnswers
from ollamastack.agent.approval import approval_middleware
from ollamastack.agent.attachments import with_pictures
from ollamastack.agent.history import history_window, tool_rounds
from ollamastack.agent.prompted_tools import ToolChoiceMiddleware
from ollamastack.agent.relevance import RelevantTools
from ollamastack.agent.repair import RepairTextToolCalls
from ollamastack.engines.factory import Engines
from ollamastack.settings import Settings

TOOL_BUDGET_SPENT = (
    "You have used all the tool calls allowed for this answer. "
    "Answer now with what you have found."
)


@dataclass(frozen=True)
class TurnContext:
    """What varies per request; the graph itself is compiled once."""

    model: str
    temperature: float
    system_prompt: str
    tool_mode: str = "native"  # "native", "prompted" or "off" (see prompted_tools.py)
    think: bool | None = None
    ollama_url: str = ""  # the instance that answers, with several; empty: the only one
    num_ctx: int = 0  # the context this model gets (0: OLLAMASTACK_NUM_CTX)
    max_tokens: int | None = None  # the answer's longest length (Ollama's num_predict)
    user: str = ""  # who asked ("" without login): the answer cache is per user
    documents: str = ""  # the conversation's documents for this turn (`attachments.py`)
    document_tokens: int = 0  # their share of the context, taken from the history's
    pictures: tuple[tuple[str, str], ...] = ()  # (file id, data URL) of the latest images


class TurnMiddleware(AgentMiddleware):
    """Applies the turn's context to each model call: model, options, prompt, window, tools."""

    def __init__(self, settings: Settings, engines: Engines) -> None:
        super().__init__()
        self.engines = engines  # which chat model answers the turn's model
        self.num_ctx = settings.num_ctx
        self.history_tokens = settings.history_tokens
        self.max_tool_rounds = settings.max_tool_rounds

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        context: TurnContext = request.runtime.context
        num_ctx = context.num_ctx or self.num_ctx
        # the history's share of a smaller context shrinks with it
        history_tokens = self.history_tokens * num_ctx // self.num_ctx
        history_tokens = max(history_tokens // 4, history_tokens - context.document_tokens)
        prompt = context.system_prompt
        if context.documents:
            prompt = f"{prompt}\n\n{context.documents}" if prompt else context.documents
        tools = request.tools if context.tool_mode != "off" else []
        if tools and tool_rounds(request.messages) >= self.max_tool_rounds:
            tools, prompt = [], f"{prompt}\n\n{TOOL_BUDGET_SPENT}"
        settings: dict = {
            "model": context.model,
            "options": {"temperature": context.temperature, "num_ctx": num_ctx}
            | ({"num_predict": context.max_tokens} if context.max_tokens else {}),
        }
        if context.think is not None:
            settings["reasoning"] = context.think
        window = history_window(request.messages, history_tokens)
        if left_out := len(request.messages) - len(window):
            get_stream_writer()({"messages_left_out": left_out})  # into the turn's stats
        window = with_pictures(window, dict(context.pictures))
        return await handler(
            request.override(
                model=self.engines.chat_model(context.model, context.ollama_url),
                messages=window,
                system_message=SystemMessage(prompt) if prompt else None,
                tools=tools,
                model_settings=settings,
            )
        )


def runs_in_thread(tool: BaseTool | None) -> bool:
    """Whether LangChain runs this tool in a worker thread on the async path: a tool without
    a coroutine of its own (`StructuredTool.ainvoke`, `BaseTool._arun` use `run_in_executor`)."""
    if tool is None:
        return False
    if hasattr(tool, "coroutine"):
        return tool.coroutine is None
    return type(tool)._arun is BaseTool._arun


class ToolTimeLimit(AgentMiddleware):
    """Gives each synchronous tool `tool_timeout` seconds; past that the model reads an error
    and the turn goes on.

    LangChain already runs such a tool in a worker thread, so a slow one leaves the event loop
    free, but nothing stops it: without this limit the turn waits for it however long it takes.
    The thread itself cannot be stopped and finishes in the background, its result dropped.
    Async tools (weather) are left alone: they wait on the network without blocking the loop,
    under their own timeouts and with their own messages.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command]],
    ) -> ToolMessage | Command:
        if not runs_in_thread(request.tool):
            return await handler(request)
        try:
            async with asyncio.timeout(self.seconds) as limit:
                return await handler(request)
        except TimeoutError:
            if not limit.expired():
                raise  # the tool's own TimeoutError, for ToolErrorMiddleware
        name = request.tool_call["name"]
        return ToolMessage(
            f"Error: the {name} tool took longer than {self.seconds:g} s; "
            "try a smaller input, or answer without it.",
            tool_call_id=request.tool_call["id"],
            name=name,
            status="error",
        )


def tool_error_text(error: Exception, request: ToolCallRequest) -> str:
    """What the model reads when a tool raises instead of answering."""
    name = request.tool_call["name"]
    return f"Error: the {name} tool failed ({type(error).__name__}: {error})."


def build_agent(
    settings: Settings,
    checkpointer: BaseCheckpointSaver | None,
    tools: Sequence[BaseTool],
    engines: Engines,
    cache: BaseCache | None = None,
) -> CompiledStateGraph:
    """Compile the agent graph once (again when the MCP tools change); per-turn choices come
    in through `TurnContext`, and `engines` gives the chat model for the turn's model (and
    Ollama instance). The tools of `confirm_tools` wait for the user's approval."""
    middleware: list[AgentMiddleware] = [
        TurnMiddleware(settings, engines),
        RelevantTools(settings.max_offered_tools),  # many tools: the message's relevant ones
        ToolChoiceMiddleware(),  # inside TurnMiddleware: sees the tools offered to this call
        RepairTextToolCalls(),
    ]
    if cache is not None:  # inside TurnMiddleware: sees the chat model and options it chose
        middleware.insert(1, CachedAnswers(cache))
    if settings.confirmed_tools:  # around the tool-call middleware below: asks before it runs
        middleware.append(approval_middleware(settings.confirmed_tools))
    middleware += [ToolErrorMiddleware(on_error=tool_error_text),
                   ToolTimeLimit(settings.tool_timeout)]
    return create_agent(
        engines.chat_model(settings.model),
        list(tools),
        middleware=middleware,
        context_schema=TurnContext,
        checkpointer=checkpointer,
        name="ollamastack",
    )
