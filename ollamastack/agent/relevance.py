"""With many tools (MCP servers add dozens), offer each model call only those relevant to the
message: a small model chooses badly from a long list, and every tool's schema costs context.

The rules of `tool_choice.py` go first (a confident rule names its tool); the rest are ranked by
the words the message shares with each tool's name and description. No model call is spent
on the choice, so it works the same for the smallest model and in prompted mode.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import HumanMessage

from ollamastack.agent.history import current_turn_start
from ollamastack.agent.tool_choice import select_tools

_WORD = re.compile(r"[a-z0-9]{3,}")
_COMMON = frozenset(
    "the and for with what that this from have are was you your can how about into get "
    "give tell please use using does did any all its it's".split()
)
STEM = 5  # words that share their first letters match ("searching" finds "search")


def words(text: str) -> set[str]:
    """The meaningful words of `text`, cut to their stems (`snake_case` split too).

    >>> sorted(words("Search the web_search index, please"))
    ['index', 'searc', 'web']
    """
    return {w[:STEM] for w in _WORD.findall(text.lower().replace("_", " ")) if w not in _COMMON}


def relevant(message: str, tools: Sequence[Any], limit: int) -> list[Any]:
    """At most `limit` of `tools` for `message`: those a rule chooses, then those sharing the
    most words with it (a tie keeps the listed order, so built-in tools come first).

    >>> from types import SimpleNamespace as Tool
    >>> tools = [Tool(name="calculator", description="Evaluate arithmetic"),
    ...          Tool(name="read_file", description="Read a file from the notes folder"),
    ...          Tool(name="list_notes", description="List the notes")]
    >>> [t.name for t in relevant("Which notes are in my folder?", tools, 2)]
    ['read_file', 'list_notes']
    >>> [t.name for t in relevant("What is 6*7?", tools, 1)]
    ['calculator']
    """
    if len(tools) <= limit:
        return list(tools)
    by_name = {getattr(tool, "name", ""): tool for tool in tools}
    chosen = [by_name[c.tool] for c in select_tools(message, set(by_name))]
    asked = words(message)

    def score(tool: Any) -> int:
        about = f"{getattr(tool, 'name', '')} {getattr(tool, 'description', '')}"
        return len(asked & words(about))

    ranked = sorted((t for t in tools if t not in chosen), key=score, reverse=True)
    return [*chosen, *ranked][:limit]


class RelevantTools(AgentMiddleware):
    """Narrows the tools of each model call to `limit` (see the module's docstring)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        if len(request.tools) <= self.limit:
            return await handler(request)
        turn = request.messages[current_turn_start(request.messages):]
        asked = turn[0].text if turn and isinstance(turn[0], HumanMessage) else ""
        return await handler(request.override(tools=relevant(asked, request.tools, self.limit)))
