"""Bounded tool work: the text analyzer stays linear on hostile text, a synchronous tool gets
`tool_timeout` seconds in a worker thread while the event loop keeps serving, and numbers too
long for Python's int-to-text limit become calculator errors."""

from __future__ import annotations

import asyncio
import random
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.graph.state import CompiledStateGraph

from ollamastack.agent.graph import TurnContext, build_agent, runs_in_thread
from ollamastack.agent.tools import build_tools, calculator, text_analyzer
from ollamastack.agent.tools.text_analyzer import _SENTENCE_END
from ollamastack.engines.factory import open_engines
from ollamastack.settings import Settings
from tests.support.bounded import answer_within
from tests.support.chat_helpers import assistant_calls, make_settings, tool_message
from tests.support.ollama_server import FakeOllama

# text_analyzer: linear on hostile text


def analyze_within(text: str, seconds: float) -> str:
    return answer_within(text_analyzer, {"text": text}, seconds)


def hostile(unit: str) -> str:
    """100,000 characters: a word, `unit` repeated, and a closing letter, so that no run of
    end marks is followed by a space or the end of the text."""
    return "x" + (unit * 100_000)[:99_998] + "x"


# Each shape was quadratic with the old sentence pattern, or is a neighbour of one that was.
HOSTILE = [
    pytest.param(hostile("."), 1, id="dots"),
    pytest.param(hostile("!?"), 1, id="marks"),
    pytest.param(hostile("…"), 1, id="ellipses"),
    pytest.param("x" + "." * 50_000 + '"' * 49_998 + "x", 1, id="dots-then-quotes"),
    pytest.param("x" + "?" * 33_333 + "’" * 33_333 + "]" * 33_332 + "x", 1, id="marks-closers"),
    pytest.param(hostile(".)"), 1, id="dot-paren"),
    pytest.param(hostile('."'), 1, id="dot-quote"),
    pytest.param(hostile("a."), 1, id="a-dot"),
    pytest.param(hostile("a'"), 1, id="a-apostrophe"),
    pytest.param(hostile("a-"), 1, id="a-hyphen"),
    pytest.param(hostile("\n "), 1, id="newline-space"),
    pytest.param("x\n" + " " * 99_997 + "x", 1, id="newline-then-spaces"),
    pytest.param(hostile(". "), 2, id="dot-space"),
    pytest.param(hostile("a. "), 33_333, id="sentences"),
]


@pytest.mark.parametrize(("text", "sentences"), HOSTILE)
def test_text_analyzer_reads_100000_hostile_characters_in_under_2_seconds(text, sentences):
    answer = analyze_within(text, seconds=2.0).splitlines()
    assert len(text) == 100_000
    assert answer[0].startswith("Characters: 100,000 (")
    assert answer[2] == f"Sentences: {sentences:,}"


def test_the_linear_sentence_pattern_splits_like_the_old_one():
    """The old pattern, quadratic on long runs, is the reference on short texts of every mix
    of end marks, closing quotes, spaces and letters."""
    old = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
    alphabet = ".!?…\"'”’)] \na"
    rng = random.Random(13)
    for _ in range(20_000):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 14)))
        assert _SENTENCE_END.split(text) == old.split(text), text


# Synchronous tools: a worker thread and a time limit


def make_slow_tools(release: threading.Event) -> list[BaseTool]:
    """Two tools that take `seconds` unless `release` is set: one waits (and lets go of the
    GIL), the other computes in Python."""

    @tool(parse_docstring=True)
    def wait(seconds: float) -> str:
        """Wait, on purpose.

        Args:
            seconds: How long to wait.
        """
        release.wait(seconds)
        return f"waited {seconds:g} s"

    @tool(parse_docstring=True)
    def spin(seconds: float) -> str:
        """Compute, on purpose.

        Args:
            seconds: How long to compute.
        """
        end = time.monotonic() + seconds
        while time.monotonic() < end and not release.is_set():
            pass
        return f"spun {seconds:g} s"

    return [wait, spin]


@asynccontextmanager
async def agent(settings: Settings, *extra: BaseTool) -> AsyncIterator[CompiledStateGraph]:
    """The agent graph with the usual tools and `extra`, without a checkpointer."""
    engines = open_engines(settings)
    try:
        yield build_agent(settings, None, [*build_tools(settings), *extra], engines)
    finally:
        await engines.close()


async def turn_with_ticks(graph: CompiledStateGraph, text: str) -> tuple[list, float, float]:
    """Run one turn while another coroutine ticks every 10 ms: the turn's messages, its
    seconds, and the longest the event loop left the ticker waiting."""
    done = asyncio.Event()

    async def ticker() -> float:
        longest, last = 0.0, time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        return longest

    ticks = asyncio.create_task(ticker())
    started = time.perf_counter()
    try:
        context = TurnContext(model="llama3.2", temperature=0.7, system_prompt="Be brief.")
        state = await graph.ainvoke({"messages": [HumanMessage(text)]}, context=context)
    finally:
        done.set()
    return state["messages"], time.perf_counter() - started, await ticks


def summary(messages: list) -> list[tuple]:
    """Each message's type and text, with the status and name of tool results."""
    return [
        (type(m).__name__, m.text, m.status, m.name)
        if isinstance(m, ToolMessage)
        else (type(m).__name__, m.text)
        for m in messages
    ]


def test_the_time_limit_covers_the_sync_tools_not_weather(ollama_server: FakeOllama):
    tools = build_tools(make_settings(ollama_server))
    assert {t.name: runs_in_thread(t) for t in tools} == {
        "calculator": True,
        "text_analyzer": True,
        "current_time": True,
        "weather": False,  # async: waits on the network under its own, per-request timeout
    }


@pytest.mark.parametrize("name", ["wait", "spin"])
async def test_a_slow_tool_is_stopped_at_the_limit_while_the_loop_keeps_serving(
    ollama_server: FakeOllama, name: str
):
    settings = make_settings(ollama_server, tool_timeout=0.5)
    ollama_server.enqueue_tool_call(name, {"seconds": 5})
    ollama_server.enqueue_text("The tool was too slow.")
    release = threading.Event()
    try:
        async with agent(settings, *make_slow_tools(release)) as graph:
            messages, seconds, longest_tick = await turn_with_ticks(graph, "Try the slow tool")
    finally:
        release.set()  # the thread left running ends, before the loop waits for its executor

    error = (
        f"Error: the {name} tool took longer than 0.5 s; try a smaller input, or answer "
        "without it."
    )
    assert summary(messages) == [
        ("HumanMessage", "Try the slow tool"),
        ("AIMessage", ""),
        ("ToolMessage", error, "error", name),
        ("AIMessage", "The tool was too slow."),
    ]
    assert ollama_server.chat_requests[1]["messages"][-2:] == [
        assistant_calls((name, {"seconds": 5})),
        tool_message(error, name),
    ]
    assert seconds < 4  # not the tool's 5 s
    assert longest_tick < 1.0  # the loop was never held for the tool's 5 s


async def test_a_tool_raising_its_own_timeout_error_is_reported_as_a_failure(
    ollama_server: FakeOllama,
):
    @tool(parse_docstring=True)
    def lookup(key: str) -> str:
        """Look a key up in a store that times out.

        Args:
            key: The key.
        """
        raise TimeoutError(f"the store did not answer for {key}")

    settings = make_settings(ollama_server, tool_timeout=5)
    ollama_server.enqueue_tool_call("lookup", {"key": "k"})
    ollama_server.enqueue_text("The store is down.")
    async with agent(settings, lookup) as graph:
        messages, _, _ = await turn_with_ticks(graph, "Look up k")

    error = "Error: the lookup tool failed (TimeoutError: the store did not answer for k)."
    assert summary(messages)[2] == ("ToolMessage", error, "error", "lookup")


async def test_hostile_text_through_the_agent_leaves_the_loop_free(ollama_server: FakeOllama):
    text = "x" + "." * 19_998 + "x"  # held the loop for seconds with the quadratic pattern
    ollama_server.enqueue_tool_call("text_analyzer", {"text": text})
    ollama_server.enqueue_text("Two words.")
    async with agent(make_settings(ollama_server)) as graph:
        messages, _, longest_tick = await turn_with_ticks(graph, "Analyze this")

    analysis = "\n".join(
        [
            "Characters: 20,000 (20,000 without spaces)",
            "Words: 2",
            "Sentences: 1",
            "Paragraphs: 1",
            "Average word length: 1.0 characters",
            "Reading time: about 1 second at 200 words per minute",
            "Most frequent words: x (2)",
            "Readability: 120.2 on the Flesch reading ease scale (very easy)",
        ]
    )
    assert summary(messages)[2:] == [
        ("ToolMessage", analysis, "success", "text_analyzer"),
        ("AIMessage", "Two words."),
    ]
    assert longest_tick < 1.0  # the quadratic pattern held it for seconds


# calculator: numbers past Python's int-to-text limit

TOO_LONG = "Error: the expression is too long (4,402 characters; the limit is 500)."


def test_a_4400_digit_expression_is_a_calculator_error():
    assert calculator.invoke({"expression": "1" * 4400 + "+1"}) == TOO_LONG


async def test_a_4400_digit_expression_through_the_agent(ollama_server: FakeOllama):
    expression = "1" * 4400 + "+1"
    ollama_server.enqueue_tool_call("calculator", {"expression": expression})
    ollama_server.enqueue_text("That is too long for me.")
    async with agent(make_settings(ollama_server)) as graph:
        messages, _, _ = await turn_with_ticks(graph, "Add one")

    assert summary(messages)[2:] == [
        ("ToolMessage", TOO_LONG, "success", "calculator"),
        ("AIMessage", "That is too long for me."),
    ]
    assert messages[1].tool_calls[0]["args"] == {"expression": expression}


BIG_INT_FOR_FLOATS = (
    "Error: whole numbers above about 1.8e308 work only with + - * // % and whole powers; /, "
    "decimals and functions like sqrt need smaller numbers."
)


@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("10**2999 // 3", "3" * 2999),
        ("10**400 / 3", BIG_INT_FOR_FLOATS),
        ("(10**400) ** -1", BIG_INT_FOR_FLOATS),
        ("10**400 + 0.5", BIG_INT_FOR_FLOATS),
        ("sqrt(10**400)", BIG_INT_FOR_FLOATS),
        ("hypot(10**400, 1)", BIG_INT_FOR_FLOATS),
        ("exp(1000)", "Error: the result is too large (overflow)."),
        ("1e308 * 10", "Error: the result is too large (overflow)."),
        ("log10(10**2999)", "2999"),
    ],
)
def test_calculator_names_float_overflow(expression, answer):
    assert calculator.invoke({"expression": expression}) == answer


@pytest.fixture
def int_text_limit_640() -> Iterator[None]:
    """Python's lowest int-to-text limit, as PYTHONINTMAXSTRDIGITS=640 would set it."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    yield
    sys.set_int_max_str_digits(before)


@pytest.mark.usefixtures("int_text_limit_640")
@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("10**600", "1" + "0" * 600),
        ("10**700", "Error: the result is too large (about 700 digits; the limit is 640 digits)."),
        (
            "factorial(400)",
            "Error: the result is too large (about 869 digits; the limit is 640 digits).",
        ),
        ("9**600 // 9**599", "9"),
    ],
)
def test_calculator_results_stay_within_the_interpreters_int_text_limit(expression, answer):
    assert calculator.invoke({"expression": expression}) == answer
