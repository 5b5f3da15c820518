"""The LangGraph agent: one compiled graph, with model, temperature and prompt chosen per turn."""

from __future__ import annotations

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
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately, trim_messages
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

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
    use_tools: bool = True
    think: bool | None = None
    ollama_url: str = ""  # the instance that answers, with several; empty: the only one


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
        prompt = context.system_prompt
        tools = request.tools if context.use_tools else []
        if tools and tool_rounds(request.messages) >= self.max_tool_rounds:
            tools, prompt = [], f"{prompt}\n\n{TOOL_BUDGET_SPENT}"
        settings: dict = {
            "model": context.model,
            "options": {"temperature": context.temperature, "num_ctx": self.num_ctx},
        }
        if context.think is not None:
            settings["reasoning"] = context.think
        return await handler(
            request.override(
                model=self.engines.chat_model(context.model, context.ollama_url),
                messages=history_window(request.messages, self.history_tokens),
                system_message=SystemMessage(prompt) if prompt else None,
                tools=tools,
                model_settings=settings,
            )
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
) -> CompiledStateGraph:
    """Compile the agent graph once; per-turn choices come in through `TurnContext`, and
    `engines` gives the chat model for the turn's model (and Ollama instance)."""
    return create_agent(
        engines.chat_model(settings.model),
        list(tools),
        middleware=[
            TurnMiddleware(settings, engines),
            ToolErrorMiddleware(on_error=tool_error_text),
        ],
        context_schema=TurnContext,
        checkpointer=checkpointer,
        name="ollamastack",
    )
