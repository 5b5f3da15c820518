"""Tools from MCP servers, through `langchain-mcp-adapters` (`MultiServerMCPClient`).

The adapter opens a session per call (a process per call for stdio servers). Each of its tools
is wrapped so that a call answers within the tool timeout, with at most `tool_result_chars`
characters of text, and so that whatever goes wrong (the server's own error, a server that is
gone, one that hangs or sends what cannot be read) reaches the model as a short "Error:" tool
result, never a traceback: the turn goes on and ends with an answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_mcp_adapters.client import MultiServerMCPClient

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what every model's tool calling accepts


def safe_name(name: str) -> str:
    """A tool name models accept: odd characters become `_`, at most 64 characters.

    >>> safe_name("read file"), safe_name("get.weather/now"), safe_name("ok-name_2")
    ('read_file', 'get_weather_now', 'ok-name_2')
    """
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "tool"


def capped(text: str, limit: int) -> str:
    """`text`, cut at `limit` characters with a note saying how long it was.

    >>> capped("abcdef", 10), capped("abcdefghijkl", 4)
    ('abcdef', 'abcd\\n… (cut: 12 characters in all)')
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… (cut: {len(text):,} characters in all)"


def text_of(content: Any) -> str:
    """An MCP result (LangChain content blocks) as the text a model reads.

    >>> text_of([{"type": "text", "text": "a"}, {"type": "image", "base64": "..."}])
    'a\\n[image]'
    """
    if isinstance(content, str):
        return content
    parts = []
    for block in content if isinstance(content, list) else [content]:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict):
            parts.append(f"[{block.get('type', 'content')}]")
        else:
            parts.append(str(block))
    return "\n".join(parts)


def reason(error: BaseException) -> str:
    """The first real cause inside anyio's exception groups, in one short line."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _error_text(error: ToolException) -> str:
    return f"Error: {error}"


def wrap(tool: BaseTool, server: str, name: str, timeout: float, limit: int) -> BaseTool:
    """`tool` of `server` under `name`, answering within `timeout` s in at most `limit`
    characters; its failures raise a `ToolException` the model reads as an error result."""

    async def call(**args: Any) -> str:
        try:
            async with asyncio.timeout(timeout):
                content = await tool.ainvoke(args)
        except TimeoutError:
            raise ToolException(
                f"the MCP server {server!r} did not answer within {timeout:g} s; "
                "try again later, or answer without it."
            ) from None
        except ToolException as error:  # the server's own error result (isError)
            raise ToolException(f"the {name} tool failed: {capped(str(error), limit)}") from None
        except Exception as error:
            log.info("MCP tool %s of %s failed: %s", name, server, reason(error))
            raise ToolException(
                f"the MCP server {server!r} failed ({reason(error)}); "
                "try again later, or answer without it."
            ) from None
        return capped(text_of(content), limit)

    return StructuredTool(
        name=name,
        description=tool.description or f"The {tool.name} tool of the {server} MCP server.",
        args_schema=tool.args_schema,
        coroutine=call,
        handle_tool_error=_error_text,
        metadata={"mcp_server": server, "mcp_tool": tool.name},
    )


@dataclass
class ServerState:
    """What the last listing of one server found."""

    name: str
    reachable: bool = False
    error: str = ""
    tools: list[BaseTool] = field(default_factory=list)  # as offered (wrapped, renamed)


class McpTools:
    """The configured MCP servers and the tools each offered when last listed."""

    def __init__(self, connections: dict[str, dict[str, Any]], timeout: float, limit: int) -> None:
        self.client = MultiServerMCPClient(connections, handle_tool_errors=False)  # type: ignore[arg-type]
        self.timeout, self.limit = timeout, limit
        self.servers = {name: ServerState(name) for name in connections}

    async def load(self, taken: set[str]) -> list[BaseTool]:
        """List every server at once (each within the timeout). A server that does not answer
        is marked unreachable and its tools are left out (its last list stays, for `/tools`).
        Names already `taken` (the built-ins') or
        taken by an earlier server get the server's name in front: `<server>_<tool>`."""
        listed = await asyncio.gather(*(self._list(name) for name in self.servers))
        tools: list[BaseTool] = []
        taken = set(taken)
        for state, found in zip(self.servers.values(), listed, strict=True):
            if isinstance(found, BaseException):
                state.reachable, state.error = False, reason(found)
                log.warning("MCP server %s is not reachable: %s", state.name, state.error)
                continue
            state.reachable, state.error, state.tools = True, "", []
            for tool in found:
                name = safe_name(tool.name)
                if name in taken:
                    name = safe_name(f"{state.name}_{tool.name}")
                if name in taken:
                    log.warning("MCP tool %s of %s left out: its name is taken",
                                tool.name, state.name)
                    continue
                taken.add(name)
                state.tools.append(wrap(tool, state.name, name, self.timeout, self.limit))
            tools += state.tools
        return tools

    async def _list(self, name: str) -> list[BaseTool] | BaseException:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.client.get_tools(server_name=name)
        except TimeoutError:
            return TimeoutError(f"no answer within {self.timeout:g} s")
        except Exception as error:
            return error
