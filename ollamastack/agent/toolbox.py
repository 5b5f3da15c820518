"""Every tool the agent may offer: the built-in ones and those of the MCP servers, listed at
start-up and again on refresh, with what `/tools` shows of each."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.tools import BaseTool

from ollamastack.settings import Settings


@dataclass(frozen=True)
class ToolInfo:
    """One tool as `/tools` lists it; `server` is empty for a built-in tool. A server never
    reached is one entry without a name, its description saying why."""

    name: str
    server: str
    description: str
    reachable: bool


class Toolbox:
    """The built-in tools plus the MCP servers' (`tools/mcp.py`)."""

    def __init__(self, settings: Settings, builtin: Sequence[BaseTool]) -> None:
        self.builtin = list(builtin)
        self.tools: list[BaseTool] = list(builtin)  # what the graph offers now
        self.mcp = None
        if connections := settings.mcp_connections:
            from ollamastack.agent.tools.mcp import McpTools  # the adapter loads only when used

            self.mcp = McpTools(connections, settings.tool_timeout, settings.tool_result_chars)
        self._lock = asyncio.Lock()

    async def refresh(self) -> list[BaseTool]:
        """List the MCP servers again; the tools to offer from now on."""
        async with self._lock:
            if self.mcp is not None:
                found = await self.mcp.load({tool.name for tool in self.builtin})
                self.tools = [*self.builtin, *found]
            return self.tools

    def entries(self) -> list[ToolInfo]:
        """Every tool, built-in first, then each server's (unreachable ones included)."""
        entries = [ToolInfo(t.name, "", summary(t), True) for t in self.builtin]
        for state in self.mcp.servers.values() if self.mcp else []:
            entries += [ToolInfo(t.name, state.name, summary(t), state.reachable)
                        for t in state.tools]
            if not state.tools and not state.reachable:
                entries.append(ToolInfo("", state.name, f"not reachable: {state.error}", False))
        return entries

    def unreachable(self) -> dict[str, str]:
        """The MCP servers that did not answer when last listed, with why."""
        servers = self.mcp.servers.values() if self.mcp else []
        return {state.name: state.error for state in servers if not state.reachable}


def summary(tool: BaseTool) -> str:
    """What the model reads of a tool, on one line."""
    return " ".join((tool.description or "").split())
