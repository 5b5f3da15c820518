"""The agent's tools. Each docstring is what the model reads; each tool answers in sentences.

Tools never raise for bad input or network trouble: they return a line starting with "Error:"
that the model can pass on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_core.tools import BaseTool

from ollamastack.agent.tools.calculator import calculator
from ollamastack.agent.tools.clock import current_time
from ollamastack.agent.tools.text_analyzer import text_analyzer
from ollamastack.agent.tools.weather import make_weather_tool
from ollamastack.agent.tools.web_search import make_web_search_tool

if TYPE_CHECKING:
    from ollamastack.settings import Settings

__all__ = ["build_tools", "calculator", "current_time", "text_analyzer"]


def build_tools(settings: Settings) -> list[BaseTool]:
    """The built-in tools, with `weather` (`weather.py`) configured from the settings, and
    `web_search` (`web_search.py`) when a SearXNG instance is set. MCP servers' tools join
    them in `agent/toolbox.py`."""
    weather = make_weather_tool(
        settings.weather_geocoding_url, settings.weather_forecast_url, settings.tool_timeout
    )
    tools = [calculator, text_analyzer, current_time, weather]
    if settings.searxng_url:
        tools.append(make_web_search_tool(
            settings.searxng_url, settings.tool_timeout, settings.tool_result_chars
        ))
    return tools
