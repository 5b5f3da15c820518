"""Helpers for the API tests: the real app launched on a loopback port, and what to expect
from it."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client
from gradio_client.exceptions import AppError

from ollamastack.settings import Settings
from ollamastack.web.app import WebApp, build_app, launch
from tests.support.ollama_server import FakeOllama, RecordedRequest, split_words


@dataclass
class Served:
    app: WebApp
    settings: Settings
    url: str


class OllamaView:
    """The module's test server as one test sees it: only the requests made during the test."""

    __slots__ = ("_start", "server")  # setting a server attribute here would do nothing

    def __init__(self, server: FakeOllama) -> None:
        self.server = server
        self._start = len(server.requests)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    @classmethod
    @contextmanager
    def of(cls, server: FakeOllama) -> Iterator[OllamaView]:
        """A view for one test; afterwards the server is put back as it was."""
        models = {m.name: m for m in server.models}
        yield cls(server)
        assert server.pending_replies == [], "a test left scripted replies unused"
        server.token_rate = None
        server.together = 1
        if server._thread is None:  # a test stopped it and failed before restarting
            server.start()
        for model in server.models:
            if model.name not in models:
                server.remove_model(model.name)
        for name, model in models.items():
            if name not in {m.name for m in server.models}:
                server.add_model(name, **{k: v for k, v in vars(model).items() if k != "name"})

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests[self._start:]

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path == "/api/chat"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Tests of one app send many messages a minute from one address; those of the limit set it.
TEST_RATE_LIMIT = 10_000


def app_settings(server: FakeOllama, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for an app over the test server; no `.env` is read."""
    values: dict[str, Any] = {
        "ollama_host": server.url,
        "data_dir": data_dir,
        "model": "llama3.2",
        "server_name": "127.0.0.1",
        "server_port": free_port(),
        "rate_limit": TEST_RATE_LIMIT,
        "embedded": False,  # tests of the embedded model switch it on
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@contextmanager
def serve(
    server: FakeOllama, data_dir: Path, *, update_interval: float = 0, **overrides: Any
) -> Iterator[Served]:
    """The whole app (page, API, login and MCP as `overrides` say), closed on exit. /chat
    sends a dict after every event (the tests check each), unless `update_interval` is set."""
    settings = app_settings(server, data_dir, **overrides)
    app = build_app(settings, update_interval=update_interval)
    _, url, _ = launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield Served(app, settings, url.rstrip("/"))
    finally:
        app.blocks.close()


def growing(text: str) -> list[str]:
    """The `content` of each chunk while the test server streams `text`, word by word."""
    return list(accumulate(split_words(text)))


def chunk(session_id: str, content: str = "", **fields: Any) -> dict[str, Any]:
    """One dict streamed by /chat."""
    return {
        "session_id": session_id,
        "content": content,
        "thinking": "",
        "tool_calls": [],
        "done": False,
        "stats": None,
    } | fields


def stats(
    requests: list[dict[str, Any]], completion_tokens: int, token_rate: float = 100.0
) -> dict[str, Any]:
    """The stats of a turn that made these model calls, without wall-clock timings.

    The test server reports exact counters: a word of the prompt is a token, a streamed
    chunk is a token, and generation runs at its `token_rate` (nominally 100 tokens/s).
    """
    prompt_tokens = sum(
        len(str(m.get("content") or "").split()) for r in requests for m in r["messages"]
    )
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "tokens_per_second": token_rate,
        "model_calls": len(requests),
        "done_reason": "stop",
        "messages_left_out": 0,
        "cached": False,
    }


def without_timings(final: dict[str, Any]) -> dict[str, Any]:
    """The last /chat dict with its wall-clock timings checked and removed."""
    timings = {k: final["stats"][k] for k in ("time_to_first_token", "total_seconds")}
    assert all(isinstance(v, float) and v > 0 for v in timings.values()), timings
    rest = {k: v for k, v in final["stats"].items() if k not in timings}
    return final | {"stats": rest}


def run(
    client: Client, *args: Any, api_name: str, **kwargs: Any
) -> tuple[list[dict], str | None]:
    """Every output a job streamed, and the error message it ended with (None: success)."""
    job = client.submit(*args, api_name=api_name, **kwargs)
    try:
        job.result()
        error = None
    except AppError as exc:
        error = exc.message
    return job.outputs(), error


def run_raw(url: str, api_name: str, data: list[Any]) -> tuple[list[Any], str | None]:
    """Like `run`, over Gradio's REST route as curl users call it: `data` goes out as Python's
    `json` writes it, so NaN, Infinity and lone surrogates too, which gradio_client refuses."""
    with httpx.Client(base_url=f"{url}/gradio_api/call", timeout=30) as http:
        posted = http.post(
            api_name, content=json.dumps({"data": data}),
            headers={"content-type": "application/json"},
        )
        posted.raise_for_status()
        answer = http.get(f"{api_name}/{posted.json()['event_id']}").text
    outputs, error = [], None
    for event in answer.strip().split("\n\n"):
        kind, _, payload = event.partition("\n")
        value = json.loads(payload.removeprefix("data: "))
        if kind == "event: error":
            error = value["error"] if isinstance(value, dict) else value
        elif kind in ("event: generating", "event: complete"):
            outputs.append(value[0])
    return outputs, error
