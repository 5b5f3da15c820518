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

if TYPE_CHECKING:
    from ollamastack.settings import Settings

__all__ = ["build_tools", "calculator", "current_time", "text_analyzer"]


def build_tools(settings: Settings) -> list[BaseTool]:
    """The four tools, with `weather` (`weather.py`) configured from the settings."""
    weather = make_weather_tool(
        settings.weather_geocoding_url, settings.weather_forecast_url, settings.tool_timeout
    )
    return [calculator, text_analyzer, current_time, weather]
