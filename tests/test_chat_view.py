"""chat_view and transcript: stored messages and streamed events as what a person sees."""

import json

from gradio import ChatMessage
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from ollamastack.errors import InvalidInput, ModelNotFound, OllamaUnavailable
from ollamastack.events import (
    Done,
    Started,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolResult,
    TurnError,
    TurnStats,
)
from ollamastack.web.transcript import to_json, to_markdown
from ollamastack.web.ui.chat_view import TurnView, plain_words, tool_body
from ollamastack.web.ui.history_view import history_view

ARGS_BODY = '**Arguments**\n```json\n{\n  "expression": "2+3"\n}\n```\n**Result**\n'


def user(text):
    return ChatMessage(role="user", content=text)


def bot(text, **metadata):
    return ChatMessage(role="assistant", content=text, metadata=metadata)


def counted(text="", *, tokens, ns, **kwargs):
    """An AIMessage as langchain-ollama stores it, with Ollama's counters."""
    metadata = {"eval_count": tokens, "eval_duration": ns, "model_name": "llama3.2"}
    return AIMessage(text, response_metadata=metadata, **kwargs)


CALL = {"name": "calculator", "args": {"expression": "2+3"}, "id": "c1"}
TOOL_CONVERSATION = [
    HumanMessage("What is 2+3?"),
    counted(tool_calls=[CALL], tokens=1, ns=10_000_000),
    ToolMessage("5", tool_call_id="c1", name="calculator"),
    counted("It is **5**.", tokens=4, ns=40_000_000),
    HumanMessage("Thanks <script>x()</script>"),
    counted("You're welcome.", tokens=3, ns=30_000_000),
]


FAILED = "⚠ Ollama is not answering, so this message got no reply. Press Retry to ask again."


def details(text):
    return bot(f"```text\n{text}\n```", title="Details", status="done")


def test_tool_body_shows_arguments_and_result_or_running():
    assert tool_body({"expression": "2+3"}, "5") == ARGS_BODY + "```text\n5\n```"
    assert tool_body({"expression": "2+3"}, None) == ARGS_BODY + "*running…*"


def test_history_shows_each_tool_call_as_its_own_message_and_stats_under_each_answer():
    assert history_view(TOOL_CONVERSATION, show_thinking=True) == [
        user("What is 2+3?"),
        bot(ARGS_BODY + "```text\n5\n```", title="Used tool `calculator`", status="done"),
        bot("It is **5**.\n\n<sub>5 tokens · 100.0 tokens/s</sub>"),
        user("Thanks &lt;script>x()&lt;/script>"),  # shown as text, never run (safe_markdown)
        bot("You're welcome.\n\n<sub>3 tokens · 100.0 tokens/s</sub>"),
    ]


def test_history_shows_thinking_apart_from_the_answer_only_when_asked():
    thinking = counted(
        "Hi!", tokens=6, ns=60_000_000, additional_kwargs={"reasoning_content": "Greet back."}
    )
    messages = [HumanMessage("hello"), thinking]
    assert history_view(messages, show_thinking=True) == [
        user("hello"),
        bot("Greet back.", title="Thinking", status="done"),
        bot("Hi!\n\n<sub>6 tokens · 100.0 tokens/s</sub>"),
    ]
    assert history_view(messages, show_thinking=False) == [
        user("hello"),
        bot("Hi!\n\n<sub>6 tokens · 100.0 tokens/s</sub>"),
    ]


def test_history_marks_answers_cut_short_and_tools_that_never_finished():
    messages = [
        HumanMessage("Count slowly"),
        AIMessage("One, two", response_metadata={"interrupted": "stopped by the user"}),
        HumanMessage("What is 2+3?"),
        counted(tool_calls=[CALL], tokens=1, ns=10_000_000),
        ToolMessage(
            "The tool did not finish: the turn was interrupted.",
            tool_call_id="c1", name="calculator", status="error",
        ),
        AIMessage("", response_metadata={"interrupted": "Ollama is not reachable at x."}),
    ]
    assert history_view(messages, show_thinking=True) == [
        user("Count slowly"),
        bot("One, two\n\n■ *Stopped.*"),
        user("What is 2+3?"),
        bot(
            ARGS_BODY + "```text\nThe tool did not finish: the turn was interrupted.\n```",
            title="Tool `calculator` failed", status="done",
        ),
        bot("⚠ This answer was cut short. Press Retry to ask again."),
        bot("```text\nOllama is not reachable at x.\n```", title="Details", status="done"),
    ]


def test_history_shows_why_an_answer_was_cut_short_as_the_viewer_may_read_it():
    messages = [
        HumanMessage("hi"),
        AIMessage("", response_metadata={
            "interrupted": "Ollama is not reachable at http://10.0.0.5:11434."}),
    ]
    hidden = history_view(messages, show_thinking=True,
                          redact=lambda text: text.replace("http://10.0.0.5:11434", "Ollama"))
    assert hidden[1:] == [
        bot("⚠ This answer was cut short. Press Retry to ask again."),
        bot("```text\nOllama is not reachable at Ollama.\n```", title="Details",
            status="done"),
    ]


def test_a_streamed_turn_step_by_step():
    view = TurnView(show_thinking=True, waiting="Loading model `llama3.2`…")
    steps = []

    def step(event, now):
        urgent = view.apply(event, now)
        steps.append((urgent, view.messages()))

    assert view.messages() == [bot("", title="Loading model `llama3.2`…", status="pending")]
    step(Started("s1"), 0.5)
    step(TextDelta("Let me"), 1.0)
    step(TextDelta(" check."), 1.1)
    step(ToolCall("c1", "calculator", {"expression": "2+3"}), 1.2)
    step(ToolResult("c1", "calculator", "5"), 1.5)
    step(TextDelta("It is 5."), 2.0)
    stats = TurnStats(completion_tokens=7, eval_seconds=0.5, total_seconds=2.5,
                      time_to_first_token=1.0)
    step(Done("s1", stats), 2.5)

    running = bot(ARGS_BODY + "*running…*", title="Used tool `calculator`", status="pending")
    used = bot(ARGS_BODY + "```text\n5\n```", title="Used tool `calculator`", status="done",
               duration=0.3)
    assert steps == [
        (False, [bot("", title="Loading model `llama3.2`…", status="pending")]),
        (False, [bot("Let me")]),
        (False, [bot("Let me check.")]),
        (True, [bot("Let me check."), running]),
        (True, [bot("Let me check."), used]),
        (False, [bot("Let me check."), used, bot("It is 5.")]),
        (True, [
            bot("Let me check."), used,
            bot("It is 5.\n\n<sub>7 tokens · 14.0 tokens/s · first token 1.00 s · "
                "2.50 s in all</sub>"),
        ]),
    ]


def test_thinking_streams_into_its_own_message_or_a_spinner_when_hidden():
    events = [ThinkingDelta("Hmm"), ThinkingDelta(", easy."), TextDelta("4")]
    shown = TurnView(show_thinking=True, waiting="Waiting…")
    hidden = TurnView(show_thinking=False, waiting="Waiting…")
    for view in (shown, hidden):
        view.apply(events[0], 0.0)
        view.apply(events[1], 0.5)
    assert shown.messages() == [bot("Hmm, easy.", title="Thinking", status="pending")]
    assert hidden.messages() == [bot("", title="Thinking…", status="pending")]
    for view in (shown, hidden):
        view.apply(events[2], 1.25)
    assert shown.messages() == [bot("Hmm, easy.", title="Thinking", status="done", duration=1.25),
                                bot("4")]
    assert hidden.messages() == [bot("4")]


def test_a_failed_turn_keeps_what_streamed_and_says_why():
    view = TurnView(show_thinking=True, waiting="Waiting…")
    view.apply(TextDelta("Partial"), 0.0)
    view.apply(ToolCall("c1", "calculator", {"expression": "2+3"}), 0.5)
    urgent = view.apply(TurnError("s1", OllamaUnavailable("http://h:1")), 1.0)
    assert urgent and view.finished
    assert view.messages() == [
        bot("Partial"),
        bot(
            ARGS_BODY + "```text\nThe tool did not finish: the turn was interrupted.\n```",
            title="Tool `calculator` failed", status="done", duration=0.5,
        ),
        bot(FAILED),
        details(str(OllamaUnavailable("http://h:1"))),
    ]
    assert view.failed


def test_an_error_before_anything_streamed_replaces_the_spinner():
    view = TurnView(show_thinking=True, waiting="Loading model `x`…", redact=str.upper)
    view.apply(TurnError("", OllamaUnavailable("http://h:1")), 0.0)
    # the error's own text as `redact` lets this viewer read it, behind "Details"
    assert view.messages() == [bot(FAILED), details(str(OllamaUnavailable("http://h:1")).upper())]


def test_plain_words_name_the_missing_model_and_say_the_rest_as_it_is():
    assert plain_words(ModelNotFound("qwen3:8b")) == (
        "The model qwen3:8b is not installed. Pick another in Chat settings, or pull it in "
        "the Models tab."
    )
    assert plain_words(InvalidInput("The message is empty.")) == "The message is empty."


def test_markdown_export_reads_as_a_transcript():
    stopped = AIMessage("Par", response_metadata={"interrupted": "stopped by the user"})
    text = to_markdown([*TOOL_CONVERSATION, HumanMessage("More"), stopped],
                       title="What is 2+3?", exported_at="2026-01-02T03:04:05+00:00")
    assert text == (
        "# What is 2+3?\n\n*Exported from OllamaStack, 2026-01-02T03:04:05+00:00*\n\n"
        "## You\n\nWhat is 2+3?\n\n## Assistant\n\n"
        '> Used tool `calculator` with `{"expression": "2+3"}`\n>\n> ```\n> 5\n> ```\n\n'
        "It is **5**.\n\n"
        "## You\n\nThanks <script>x()</script>\n\n## Assistant\n\nYou're welcome.\n\n"
        "## You\n\nMore\n\n## Assistant\n\nPar\n\n■ *Stopped.*\n"
    )


def test_json_export_keeps_every_message_with_its_tool_calls():
    document = json.loads(to_json(TOOL_CONVERSATION[:4], session_id="s1", title="T",
                                  exported_at="now"))
    assert document == {
        "session_id": "s1",
        "title": "T",
        "exported_at": "now",
        "messages": [
            {"role": "user", "content": "What is 2+3?"},
            {"role": "assistant", "content": "", "model": "llama3.2",
             "tool_calls": [{"id": "c1", "name": "calculator", "args": {"expression": "2+3"}}]},
            {"role": "tool", "content": "5", "name": "calculator", "tool_call_id": "c1"},
            {"role": "assistant", "content": "It is **5**.", "model": "llama3.2"},
        ],
    }
