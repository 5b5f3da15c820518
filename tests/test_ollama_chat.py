"""The agent's Ollama chat model over real HTTP: tool-call arguments read without crashing."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama

from ollamastack.agent.service_handle import open_chat_service
from ollamastack.engines.ollama.chat_model import OllamaChatModel, check_chat_ollama
from ollamastack.errors import EngineMismatch
from ollamastack.settings import Settings


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression.

    Args:
        expression: The expression, e.g. "2+2".
    """
    return expression


LONG_SUM = "1+" * 5000 + "1"


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ({"expression": "2+2"}, {"expression": "2+2"}),
        ({"expression": LONG_SUM}, {"expression": LONG_SUM}),
        ({"expression": '{"a": [1, 2]}'}, {"expression": {"a": [1, 2]}}),
        ({"expression": "{'a': 1}"}, {"expression": {"a": 1}}),
        ({"expression": "2+2", "functionName": "calculator"}, {"expression": "2+2"}),
    ],
    ids=["plain", "10k-char-sum", "json-in-text", "python-literal", "echoed-name"],
)
async def test_tool_call_arguments_are_read_as_sent(ollama_server, sent, read):
    ollama_server.enqueue_tool_call("calculator", sent)
    model = OllamaChatModel(model="llama3.2", base_url=ollama_server.url)

    chunks = [c async for c in model.bind_tools([calculator]).astream([HumanMessage("Sum")])]

    calls = [call for chunk in chunks for call in chunk.tool_calls]
    assert [(c["name"], c["args"]) for c in calls] == [("calculator", read)]
    assert ollama_server.chat_requests[0]["tools"][0]["function"]["name"] == "calculator"


async def test_text_and_stats_pass_through_unchanged(ollama_server):
    ollama_server.enqueue_text("Hello there, friend.")
    model = OllamaChatModel(model="llama3.2", base_url=ollama_server.url)

    message = await model.ainvoke([HumanMessage("Hi")])

    assert message.content == "Hello there, friend."
    assert message.tool_calls == []
    assert message.usage_metadata["output_tokens"] > 0


def test_the_pinned_langchain_ollama_has_the_overridden_shape():
    check_chat_ollama()  # raises otherwise


async def test_a_changed_langchain_ollama_fails_at_start_up_not_at_a_tool_call(
    ollama_server, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    async def renamed(self, messages, stop=None, *, options=None, **kwargs):
        yield {}

    monkeypatch.setattr(ChatOllama, "_acreate_chat_stream", renamed)
    with pytest.raises(EngineMismatch, match=r"ChatOllama\._acreate_chat_stream is not the one"):
        check_chat_ollama()
    settings = Settings(
        _env_file=None, ollama_host=ollama_server.url, data_dir=tmp_path, embedded=False
    )
    with pytest.raises(EngineMismatch):  # the chat service does not open
        async with open_chat_service(settings):
            pass
    assert ollama_server.requests == []  # nothing reached Ollama
