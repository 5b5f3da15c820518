"""Helpers shared by the core's tests: settings aimed at the test server, turns as event lists,
and the Ollama message dicts a request is compared with."""

from __future__ import annotations

import socket

from ollamastack.agent.service import ChatService
from ollamastack.events import Done, Event, Started, TurnError
from ollamastack.settings import DEFAULT_SYSTEM_PROMPT, Settings
from tests.support.ollama_server import FakeOllama

TOOL_NAMES = ["calculator", "text_analyzer", "current_time", "weather"]


def make_settings(server: FakeOllama, **overrides: object) -> Settings:
    """Settings for the test server with an in-memory database; no `.env` is read."""
    values: dict = {
        "ollama_host": server.url,
        "database_url": "sqlite:///:memory:",
        "model": "llama3.2",
        "temperature": 0.7,
        "system_prompt": DEFAULT_SYSTEM_PROMPT,
        "num_ctx": 8192,
        "history_tokens": 6000,
        "max_tool_rounds": 5,
        "max_message_chars": 4000,
        "embedded": False,  # Ollama's failures, not a fallback; tests of the embedded model say so
    }
    return Settings(_env_file=None, **(values | overrides))


async def run_turn(service: ChatService, message: str, **options: object) -> list[Event]:
    """Every event of one turn after `Started`, checked to carry the turn's session and the
    model that answers (the one asked for, else the configured default)."""
    events = [event async for event in service.stream_turn(message, **options)]
    if isinstance(events[-1], TurnError) and len(events) == 1:
        return events  # refused before the turn started (Ollama down, model missing)
    model = str(options.get("model") or service.settings.model)
    assert events[0] == Started(events[-1].session_id, model)
    return events[1:]


def counters(done: Event) -> dict:
    """Done's stats without the wall-clock timings, which vary from run to run."""
    assert isinstance(done, Done)
    stats = done.stats.as_dict()
    assert stats.pop("time_to_first_token") is not None
    assert stats.pop("total_seconds") > 0
    return stats


def prompt_words(request: dict) -> int:
    """The server's `prompt_eval_count` for a request: the words of its messages."""
    return sum(len(str(m.get("content") or "").split()) for m in request["messages"])


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# Messages as Ollama receives them


def system(content: str = DEFAULT_SYSTEM_PROMPT) -> dict:
    return {"role": "system", "content": content}


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def assistant_calls(*calls: tuple[str, dict]) -> dict:
    return {
        "role": "assistant",
        "tool_calls": [{"function": {"name": name, "arguments": args}} for name, args in calls],
    }


def tool_message(content: str, name: str = "calculator") -> dict:
    """A tool's result as the chat model sends it to Ollama, named (`tool_name`)."""
    return {"role": "tool", "content": content, "tool_name": name}
