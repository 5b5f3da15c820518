"""The agent graph over real HTTP: tool rounds, the schema and options Ollama receives, the
history window, the tool budget, model capabilities, and tools that fail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from ollamastack.agent.graph import TOOL_BUDGET_SPENT, build_agent
from ollamastack.agent.history import current_turn_start, history_window, tool_rounds
from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.agent.tools import build_tools
from ollamastack.engines.factory import open_engines
from ollamastack.events import Done, TextDelta, ThinkingDelta, ToolCall, ToolResult
from ollamastack.settings import DEFAULT_SYSTEM_PROMPT
from ollamastack.storage.memory import open_memory
from tests.support.chat_helpers import (
    TOOL_NAMES,
    assistant,
    assistant_calls,
    closed_port_url,
    counters,
    make_settings,
    prompt_words,
    run_turn,
    system,
    tool_message,
    user,
)
from tests.support.ollama_server import FakeOllama, split_words


@pytest.fixture
async def service(ollama_server: FakeOllama) -> AsyncIterator[ChatService]:
    async with open_chat_service(make_settings(ollama_server)) as chat:
        yield chat


# Pure helpers


def turn_messages() -> list[AnyMessage]:
    """Three turns: a plain one, one with a tool round, and the current question."""
    return [
        HumanMessage("first " * 40),
        AIMessage("first answer " * 20),
        HumanMessage("what is 6*7?"),
        AIMessage(
            "", tool_calls=[{"name": "calculator", "args": {"expression": "6*7"}, "id": "c1"}]
        ),
        ToolMessage("42 " * 60, tool_call_id="c1", name="calculator"),
        AIMessage("It is 42."),
        HumanMessage("and now?"),
    ]


def test_current_turn_start():
    messages = turn_messages()
    assert current_turn_start(messages) == 6
    assert current_turn_start(messages[:6]) == 2
    assert current_turn_start([]) == 0
    assert current_turn_start([AIMessage("hello")]) == 0


def test_history_window_keeps_everything_that_fits():
    messages = turn_messages()
    assert history_window(messages, 10_000) == messages


def test_history_window_cuts_earlier_turns_at_a_human_message():
    messages = turn_messages()
    # Approximate tokens: current turn 6; tool turn 7 + 28 + 52 + 8 = 95; first turn 135.
    # Room for the tool result and the answer after it, not for the call: the tool turn goes
    # whole, so no tool result is left without its call.
    assert history_window(messages, 6 + 70) == [messages[6]]
    # Room for the tool turn but not the first one.
    assert history_window(messages, 6 + 95 + 134) == messages[2:]
    assert history_window(messages, 6 + 95 + 135) == messages


def test_history_window_keeps_an_oversized_current_turn_whole():
    messages = turn_messages()
    current = [
        *messages,
        AIMessage("", tool_calls=[{"name": "text_analyzer", "args": {"text": "x"}, "id": "c2"}]),
        ToolMessage("long result " * 200, tool_call_id="c2", name="text_analyzer"),
    ]
    assert history_window(current, 256) == current[6:]
    assert history_window(messages[6:], 256) == messages[6:]  # a first turn: nothing earlier
    assert history_window([], 256) == []


def test_tool_rounds_counts_model_calls_with_tools_in_the_current_turn():
    def calls(*ids: str) -> AIMessage:
        return AIMessage("", tool_calls=[{"name": "calculator", "args": {}, "id": i} for i in ids])

    messages = turn_messages()
    assert tool_rounds(messages) == 0
    assert tool_rounds(messages[:5]) == 1
    parallel = [
        *messages,
        calls("a"),
        ToolMessage("1", tool_call_id="a"),
        calls("b", "c"),  # two calls in one round
        ToolMessage("2", tool_call_id="b"),
        ToolMessage("3", tool_call_id="c"),
    ]
    assert tool_rounds(parallel) == 2
    assert tool_rounds([]) == 0


# A tool round trip over HTTP


async def test_tool_round_trip(service: ChatService, ollama_server: FakeOllama):
    ollama_server.enqueue_tool_call("calculator", {"expression": "6*7"})
    ollama_server.enqueue_text("6 times 7 is 42.")

    events = await run_turn(service, "What is 6*7?")

    call_id = events[0].id
    session_id = events[-1].session_id
    assert events[:-1] == [
        ToolCall(call_id, "calculator", {"expression": "6*7"}),
        ToolResult(call_id, "calculator", "42"),
        TextDelta("6"),
        TextDelta(" times"),
        TextDelta(" 7"),
        TextDelta(" is"),
        TextDelta(" 42."),
    ]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "6 times 7 is 42."
    first, second = ollama_server.chat_requests
    assert counters(events[-1]) == {
        "prompt_tokens": prompt_words(first) + prompt_words(second),
        "completion_tokens": 1 + 5,  # one tool-call chunk, five words
        "tokens_per_second": 100.0,  # the server's nominal eval rate
        "model_calls": 2,
        "done_reason": "stop",
        "messages_left_out": 0,
        "cached": False,
    }
    assert events[-1] == Done(session_id, events[-1].stats)
    assert second["messages"] == [
        system(),
        user("What is 6*7?"),
        assistant_calls(("calculator", {"expression": "6*7"})),
        tool_message("42"),
    ]
    history = await service.history(session_id)
    assert [(type(m).__name__, m.text) for m in history] == [
        ("HumanMessage", "What is 6*7?"),
        ("AIMessage", ""),
        ("ToolMessage", "42"),
        ("AIMessage", "6 times 7 is 42."),
    ]
    assert history[1].tool_calls == [
        {"name": "calculator", "args": {"expression": "6*7"}, "id": call_id, "type": "tool_call"}
    ]


async def test_parallel_tool_calls(service: ChatService, ollama_server: FakeOllama):
    ollama_server.enqueue_tool_calls(
        [("calculator", {"expression": "2**10"}), ("text_analyzer", {"text": "Hi there."})]
    )
    ollama_server.enqueue_text("Done.")

    events = await run_turn(service, "Two things")

    calc_id, text_id = events[0].id, events[1].id
    results = sorted((e for e in events if isinstance(e, ToolResult)), key=lambda e: e.name)
    assert events[:2] == [
        ToolCall(calc_id, "calculator", {"expression": "2**10"}),
        ToolCall(text_id, "text_analyzer", {"text": "Hi there."}),
    ]
    assert [(r.id, r.name, r.content.splitlines()[0], r.is_error) for r in results] == [
        (calc_id, "calculator", "1024", False),
        (text_id, "text_analyzer", "Characters: 9 (8 without spaces)", False),
    ]
    assert events[4:-1] == [TextDelta("Done.")]
    assert counters(events[-1])["model_calls"] == 2


async def test_tool_schemas_reach_ollama(service: ChatService, ollama_server: FakeOllama):
    await run_turn(service, "Hello")

    tools = ollama_server.chat_requests[0]["tools"]
    assert [t["function"]["name"] for t in tools] == TOOL_NAMES
    assert {t["type"] for t in tools} == {"function"}
    assert tools[0]["function"] == {
        "name": "calculator",
        "description": (
            "Evaluate an arithmetic expression exactly and return the result. "
            "Supports + - * / // % ** (^ also means power), parentheses, the constants pi, "
            "e and tau,\nand the functions sqrt, cbrt, exp, log (natural, or log(x, base)), "
            "log10, log2, sin, cos,\ntan, asin, acos, atan, atan2, sinh, cosh, tanh, asinh, "
            "acosh, atanh, degrees, radians,\nhypot, abs, round, floor, ceil, trunc, min, "
            "max, factorial, gcd and lcm. Angles are in\nradians."
        ),
        "parameters": {
            "type": "object",
            "required": ["expression"],
            "properties": {
                "expression": {
                    "type": "string",
                    "description": (
                        'The expression to evaluate, for example "2 * (3 + 4) ** 2" '
                        'or "sqrt(2) / 2".'
                    ),
                }
            },
        },
    }
    assert [t["function"]["parameters"] for t in tools[1:]] == [
        {
            "type": "object",
            "required": ["text"],
            "properties": {
                "text": {
                    "type": "string",
                    "description": "The text to analyze, exactly as written.",
                }
            },
        },
        {
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": (
                        'An IANA time zone name in Area/City form, for example "Europe/Paris", '
                        '"America/New_York" or "Asia/Tokyo". Defaults to "UTC".'
                    ),
                }
            },
        },
        {
            "type": "object",
            "required": ["location"],
            "properties": {
                "location": {
                    "type": "string",
                    "description": (
                        'The city or place name only, for example "Paris" or "San Francisco" '
                        "(without country or region)."
                    ),
                }
            },
        },
    ]


# The history window as Ollama receives it


async def test_long_history_is_trimmed_in_the_request_not_in_storage(ollama_server: FakeOllama):
    settings = make_settings(ollama_server, num_ctx=1024, history_tokens=256)
    async with open_chat_service(settings) as service:
        questions = [f"Question {n}:" + " lorem ipsum" * 12 for n in range(1, 5)]
        session_id = await service.new_session()
        await run_turn(service, questions[0], session_id=session_id)
        ollama_server.enqueue_tool_call("text_analyzer", {"text": "word " * 30})
        ollama_server.enqueue_text("Thirty words.")
        await run_turn(service, questions[1], session_id=session_id)
        await run_turn(service, questions[2], session_id=session_id)
        ollama_server.enqueue_tool_call("calculator", {"expression": "1+1"})
        ollama_server.enqueue_text("Two.")
        await run_turn(service, questions[3], session_id=session_id)

        *_, asked, answered = ollama_server.chat_requests
        # The tool turn (2) does not fit whole, so it goes whole: its tool result does not
        # reach the model without the call. Turn 1 is older still.
        earlier = [user(questions[2]), assistant(f"You said: {questions[2]}")]
        assert asked["messages"] == [system(), *earlier, user(questions[3])]
        assert answered["messages"] == [
            system(),
            *earlier,
            user(questions[3]),
            assistant_calls(("calculator", {"expression": "1+1"})),
            tool_message("2"),
        ]
        for request in ollama_server.chat_requests:
            for index, message in enumerate(request["messages"]):
                if message["role"] == "tool":
                    assert request["messages"][index - 1]["role"] in ("assistant", "tool")
                    assert any("tool_calls" in m for m in request["messages"][:index])
        history = await service.history(session_id)
        assert [m.text for m in history if isinstance(m, HumanMessage)] == questions
        assert [type(m).__name__ for m in history] == [
            "HumanMessage", "AIMessage",
            "HumanMessage", "AIMessage", "ToolMessage", "AIMessage",
            "HumanMessage", "AIMessage",
            "HumanMessage", "AIMessage", "ToolMessage", "AIMessage",
        ]  # fmt: skip


# The tool budget


async def test_tool_budget_is_enforced(ollama_server: FakeOllama):
    async with open_chat_service(make_settings(ollama_server, max_tool_rounds=2)) as service:
        ollama_server.enqueue_tool_call("calculator", {"expression": "1+1"})
        ollama_server.enqueue_tool_call("calculator", {"expression": "2+2"})
        ollama_server.enqueue_text("Enough tools.")

        events = await run_turn(service, "Keep calculating")

    first, second, third = ollama_server.chat_requests
    assert [t["function"]["name"] for t in first["tools"]] == TOOL_NAMES
    assert [t["function"]["name"] for t in second["tools"]] == TOOL_NAMES
    assert third.get("tools", []) == []
    assert first["messages"][0] == second["messages"][0] == system()
    assert third["messages"][0] == system(f"{DEFAULT_SYSTEM_PROMPT}\n\n{TOOL_BUDGET_SPENT}")
    first_id, second_id = (e.id for e in events if isinstance(e, ToolCall))
    assert events[:-1] == [
        ToolCall(first_id, "calculator", {"expression": "1+1"}),
        ToolResult(first_id, "calculator", "2"),
        ToolCall(second_id, "calculator", {"expression": "2+2"}),
        ToolResult(second_id, "calculator", "4"),
        TextDelta("Enough"),
        TextDelta(" tools."),
    ]
    assert counters(events[-1])["model_calls"] == 3


async def test_no_tool_rounds_allowed(ollama_server: FakeOllama):
    async with open_chat_service(make_settings(ollama_server, max_tool_rounds=0)) as service:
        events = await run_turn(service, "Hi")

    (request,) = ollama_server.chat_requests
    assert request.get("tools", []) == []
    assert request["messages"] == [
        system(f"{DEFAULT_SYSTEM_PROMPT}\n\n{TOOL_BUDGET_SPENT}"),
        user("Hi"),
    ]
    assert events[:-1] == [TextDelta("You"), TextDelta(" said:"), TextDelta(" Hi")]


# Model capabilities


async def test_model_without_tools_still_chats(service: ChatService, ollama_server: FakeOllama):
    ollama_server.add_model("gemma3", capabilities=("completion", "vision"))

    events = await run_turn(service, "Hello", model="gemma3")

    choice, request = ollama_server.chat_requests  # prompted mode: a JSON choice, no tool
    for sent in (choice, request):
        assert sent.get("tools", []) == []  # else the server answers 400 "does not support tools"
    assert choice["format"]["anyOf"][0]["properties"]["tool"] == {"const": "none"}
    assert (request["model"], request["messages"]) == ("gemma3", [system(), user("Hello")])
    assert events[:-1] == [TextDelta("You"), TextDelta(" said:"), TextDelta(" Hello")]
    assert isinstance(events[-1], Done)


async def test_thinking_model(service: ChatService, ollama_server: FakeOllama):
    ollama_server.add_model("qwen3", capabilities=("completion", "tools", "thinking"))
    thinking, answer = "The user greets me. I greet back.", "Hello to you!"
    ollama_server.enqueue_thinking_text(thinking=thinking, text=answer)

    events = await run_turn(service, "Hello", model="qwen3")
    await run_turn(service, "Again", model="qwen3", session_id=events[-1].session_id)

    first, second = ollama_server.chat_requests
    assert (first["model"], first["think"]) == ("qwen3", True)
    assert events[:-1] == [
        *(ThinkingDelta(word) for word in split_words(thinking)),
        *(TextDelta(word) for word in split_words(answer)),
    ]
    history = await service.history(events[-1].session_id)
    assert [(type(m).__name__, m.content) for m in history[:2]] == [
        ("HumanMessage", "Hello"),
        ("AIMessage", answer),
    ]
    assert second["think"] is True
    assert second["messages"][2]["content"] == answer


# Tools that fail


@tool(parse_docstring=True)
def explode(reason: str) -> str:
    """Fail on purpose.

    Args:
        reason: Why it fails.
    """
    raise RuntimeError(f"exploded because {reason}")


async def test_a_raising_tool_becomes_an_error_result(ollama_server: FakeOllama):
    settings = make_settings(ollama_server)
    engines = open_engines(settings)
    async with open_memory(settings) as memory:
        tools = [*build_tools(settings), explode]
        graph = build_agent(settings, memory.checkpointer, tools, engines)
        service = ChatService(settings, graph, memory, engines)
        ollama_server.enqueue_tool_call("explode", {"reason": "testing"})
        ollama_server.enqueue_text("The tool failed.")

        events = await run_turn(service, "Try the tool")
    await engines.close()

    error = "Error: the explode tool failed (RuntimeError: exploded because testing)."
    call_id = events[0].id
    assert events[:-1] == [
        ToolCall(call_id, "explode", {"reason": "testing"}),
        ToolResult(call_id, "explode", error, is_error=True),
        TextDelta("The"),
        TextDelta(" tool"),
        TextDelta(" failed."),
    ]
    assert isinstance(events[-1], Done)
    assert [t["function"]["name"] for t in ollama_server.chat_requests[0]["tools"]] == [
        *TOOL_NAMES,
        "explode",
    ]
    assert ollama_server.chat_requests[1]["messages"][-2:] == [
        assistant_calls(("explode", {"reason": "testing"})),
        tool_message(error, "explode"),
    ]


async def test_weather_offline_reaches_the_model_as_text(ollama_server: FakeOllama):
    offline = closed_port_url()
    settings = make_settings(
        ollama_server,
        weather_geocoding_url=f"{offline}/v1/search",
        weather_forecast_url=f"{offline}/v1/forecast",
        tool_timeout=5,
    )
    async with open_chat_service(settings) as service:
        ollama_server.enqueue_tool_call("weather", {"location": "Paris"})
        ollama_server.enqueue_text("The weather service is down.")
        events = await run_turn(service, "Weather in Paris?")

    error = (
        "Error: the weather service could not be reached (All connection attempts failed); "
        "try again later."
    )
    call_id = events[0].id
    assert events[:2] == [
        ToolCall(call_id, "weather", {"location": "Paris"}),
        ToolResult(call_id, "weather", error),
    ]
    assert isinstance(events[-1], Done)
    assert ollama_server.chat_requests[1]["messages"][-2:] == [
        assistant_calls(("weather", {"location": "Paris"})),
        tool_message(error, "weather"),
    ]

