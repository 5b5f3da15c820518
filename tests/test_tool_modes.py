"""Tools for every model (`OLLAMASTACK_TOOL_MODE`): prompted for models without native tool
calling (a rule or the model's JSON choice), rules narrowing a native model's tools, off."""

from __future__ import annotations

import pytest

from ollamastack.agent.service_handle import open_chat_service
from ollamastack.events import Done, TextDelta, ToolCall, ToolResult
from tests.support.chat_helpers import make_settings, run_turn, system, user
from tests.support.ollama_server import FakeOllama

NO_TOOLS = ("completion",)


def texts(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def tool_events(events: list) -> list[tuple]:
    return [
        (type(e).__name__, e.name, getattr(e, "args", None) or getattr(e, "content", None))
        for e in events if isinstance(e, ToolCall | ToolResult)
    ]


async def test_a_rule_picks_the_calculator_for_a_model_without_tools(ollama_server: FakeOllama):
    ollama_server.add_model("gemma3", capabilities=NO_TOOLS)
    ollama_server.enqueue_text("12 times 7 is 84.")
    async with open_chat_service(make_settings(ollama_server)) as service:
        events = await run_turn(service, "What is 12*7?", model="gemma3")
        history = await service.history(events[-1].session_id)
    assert tool_events(events) == [
        ("ToolCall", "calculator", {"expression": "12*7"}), ("ToolResult", "calculator", "84"),
    ]
    assert texts(events) == "12 times 7 is 84."
    (answer,) = ollama_server.chat_requests  # the rule chose: no model call to choose
    assert not answer.get("tools") and "format" not in answer
    assert answer["messages"] == [
        system(), user("What is 12*7?"), user("calculator gave this result:\n84"),
    ]
    assert [type(m).__name__ for m in history] == [
        "HumanMessage", "AIMessage", "ToolMessage", "AIMessage"
    ]
    assert isinstance(events[-1], Done)


async def test_the_model_chooses_in_json_when_no_rule_is_sure(ollama_server: FakeOllama):
    ollama_server.add_model("gemma3", capabilities=NO_TOOLS)
    ollama_server.enqueue_json({"tool": "current_time", "arguments": {"timezone": "Asia/Tokyo"}})
    ollama_server.enqueue_text("It is evening in Tokyo.")
    async with open_chat_service(make_settings(ollama_server)) as service:
        events = await run_turn(service, "Is it evening for my friend in Japan?", model="gemma3")
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, c.args) for c in calls] == [("current_time", {"timezone": "Asia/Tokyo"})]
    result = next(e for e in events if isinstance(e, ToolResult))
    assert result.content.startswith("Asia/Tokyo: ")
    assert texts(events) == "It is evening in Tokyo."  # the JSON choice never streamed
    choice, answer = ollama_server.chat_requests
    shapes = choice["format"]["anyOf"]
    assert [shape["properties"]["tool"]["const"] for shape in shapes] == [
        "none", "calculator", "text_analyzer", "current_time", "weather"
    ]
    assert shapes[3]["properties"]["arguments"] == {
        "type": "object", "properties": {"timezone": {"type": "string"}}, "required": [],
        "additionalProperties": False,
    }
    assert choice["options"]["temperature"] == 0 and not choice.get("tools")
    assert choice["messages"][-1] == user("Is it evening for my friend in Japan?")
    assert answer["messages"][-1] == user(f"current_time gave this result:\n{result.content}")


@pytest.mark.parametrize(
    "choice",
    [{"tool": "none"}, {"tool": "rm_rf", "arguments": {}}, {"tool": "calculator",
     "arguments": {"expression": 7}}, {"tool": "weather", "arguments": {"location": "Paris"}},
     {"tool": "text_analyzer", "arguments": {"text": "Hi there"}}],
    ids=["none", "unknown-tool", "bad-arguments", "place-not-in-the-message",
         "no-analysis-asked"],
)
async def test_no_tool_runs_when_the_choice_is_none_or_invalid(
    ollama_server: FakeOllama, choice: dict
):
    ollama_server.add_model("gemma3", capabilities=NO_TOOLS)
    ollama_server.enqueue_json(choice)
    ollama_server.enqueue_text("Hello!")
    async with open_chat_service(make_settings(ollama_server)) as service:
        events = await run_turn(service, "Hi there", model="gemma3")
    assert tool_events(events) == []
    assert texts(events) == "Hello!"


async def test_a_confident_rule_narrows_a_native_models_tools(ollama_server: FakeOllama):
    ollama_server.enqueue_tool_call("calculator", {"expression": "6*7"})
    ollama_server.enqueue_text("42.")
    async with open_chat_service(make_settings(ollama_server)) as service:
        await run_turn(service, "What is 6*7?")
        await run_turn(service, "Tell me a story")
    narrowed, _, story = ollama_server.chat_requests
    assert [t["function"]["name"] for t in narrowed["tools"]] == ["calculator"]
    assert [t["function"]["name"] for t in story["tools"]] == [
        "calculator", "text_analyzer", "current_time", "weather"
    ]


async def test_tool_mode_off_offers_no_tool_and_runs_none(ollama_server: FakeOllama):
    settings = make_settings(ollama_server, tool_mode="off")
    async with open_chat_service(settings) as service:
        events = await run_turn(service, "What is 12*7?")
    (request,) = ollama_server.chat_requests
    assert not request.get("tools") and tool_events(events) == []


async def test_prompted_mode_for_a_tools_model_too(ollama_server: FakeOllama):
    ollama_server.enqueue_text("84.")
    settings = make_settings(ollama_server, tool_mode="prompted")
    async with open_chat_service(settings) as service:
        events = await run_turn(service, "What is 12*7?")
    assert tool_events(events)[1] == ("ToolResult", "calculator", "84")
    (answer,) = ollama_server.chat_requests
    assert not answer.get("tools")
