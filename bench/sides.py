"""The sides compared: each runs one chat turn and reports when its first token and its end came.

- `DirectSide`: the official `ollama` async client, the conversation kept client-side.
- `AgentSide`: OllamaStack's `ChatService.stream_turn` in this process, no UI.
- `SseSide`: a launched Gradio app over its documented REST route, `/gradio_api/call/<name>`
  (server-sent events), with httpx: the light client, for the bare relay and for the app.
- `GradioClientSide`: the same apps through `gradio_client`, one `Client` per session.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.relay import SYSTEM_PROMPT, stream_reply


@dataclass
class Session:
    index: int
    model: str
    session_id: str = ""  # the app's id, once its first turn started
    history: list[dict[str, Any]] = field(default_factory=list)  # Direct keeps it client-side


@dataclass
class Timed:
    """One turn as its client saw it: seconds from the request to the first token and to the end."""

    ttft: float | None
    seconds: float
    text: str
    error: str = ""
    last: float = 0.0  # seconds to the last token


class _Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.last = 0.0

    def token(self) -> None:
        self.last = time.perf_counter() - self.start
        if self.first is None:
            self.first = self.last

    def done(self, text: str, error: str = "") -> Timed:
        return Timed(self.first, time.perf_counter() - self.start, text, error, self.last)


class DirectSide:
    name, client = "Direct", "ollama"

    def __init__(self, ollama_url: str) -> None:
        import ollama

        self._client = ollama.AsyncClient(host=ollama_url, timeout=120)

    async def turn(self, session: Session, message: str) -> Timed:
        clock = _Clock()
        asked = {"role": "user", "content": message}
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, *session.history, asked]
        parts: list[str] = []
        async for text in stream_reply(self._client, session.model, messages):
            clock.token()
            parts.append(text)
        answer = "".join(parts)
        session.history += [asked, {"role": "assistant", "content": answer}]
        return clock.done(answer)

    async def close(self) -> None:
        await self._client._client.aclose()


class AgentSide:
    """The agent as the UI and API use it; SQLite (or PostgreSQL) as the app would have it."""

    name, client = "Agent", "in-process"

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()
        self.service: Any = None

    async def open(self) -> AgentSide:
        from ollamastack.agent.service_handle import open_chat_service

        self.service = await self._stack.enter_async_context(open_chat_service(self.settings))
        return self

    async def turn(self, session: Session, message: str) -> Timed:
        from ollamastack.events import Started, TextDelta, TurnError

        clock = _Clock()
        parts: list[str] = []
        turn = self.service.stream_turn(message, session_id=session.session_id, model=session.model)
        async for event in turn:
            if isinstance(event, TextDelta):
                clock.token()
                parts.append(event.text)
            elif isinstance(event, Started):
                session.session_id = event.session_id
            elif isinstance(event, TurnError):
                return clock.done("".join(parts), str(event.error))
        return clock.done("".join(parts))

    async def close(self) -> None:
        await self._stack.aclose()


def relay_call(session: Session, message: str) -> list[Any]:
    return [message, session.model]


def app_call(session: Session, message: str) -> list[Any]:
    return [message, session.session_id, session.model, None, ""]


class SseSide:
    """Gradio's REST route: POST the inputs, then read the job's events as they stream."""

    client = "httpx"

    def __init__(self, name: str, url: str, api: str, data: Callable[[Session, str], list]):
        self.name, self.api, self._data = name, api, data
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        self._http = httpx.AsyncClient(
            base_url=f"{url}/gradio_api/call", timeout=120, limits=limits
        )

    async def turn(self, session: Session, message: str) -> Timed:
        clock = _Clock()
        posted = await self._http.post(f"/{self.api}", json={"data": self._data(session, message)})
        posted.raise_for_status()
        text, error = "", ""
        async for event, data in self._events(posted.json()["event_id"]):
            if event == "generating":
                value = data[0]
                if isinstance(value, dict):  # the app: the answer so far
                    session.session_id = value["session_id"]
                    new = value["content"]
                else:  # the relay: one token
                    new = text + value
                if new != text:
                    clock.token()
                    text = new
            elif event == "error":
                error = json.dumps(data)
        return clock.done(text, error)

    async def _events(self, event_id: str) -> AsyncIterator[tuple[str, Any]]:
        async with self._http.stream("GET", f"/{self.api}/{event_id}") as response:
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    yield event, json.loads(line[6:])
                    if event in ("complete", "error"):
                        return

    async def close(self) -> None:
        await self._http.aclose()


class GradioClientSide:
    """`gradio_client` as its docs show it: `submit`, then iterate the job's outputs.

    Its calls block, so each turn runs in a thread of a pool as large as the sessions.
    """

    client = "gradio_client"

    def __init__(self, name: str, url: str, api: str, sessions: int) -> None:
        self.name, self.url, self.api = name, url, api
        self._pool = ThreadPoolExecutor(max_workers=sessions, thread_name_prefix="gradio_client")
        self._clients: dict[int, Any] = {}

    async def turn(self, session: Session, message: str) -> Timed:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._turn, session, message
        )

    def _turn(self, session: Session, message: str) -> Timed:
        from gradio_client import Client

        if (client := self._clients.get(session.index)) is None:
            client = Client(self.url, verbose=False, analytics_enabled=False)
            self._clients[session.index] = client
        clock = _Clock()
        if self.api == "relay":
            job = client.submit(message, session.model, api_name="/relay")
        else:
            job = client.submit(
                message, session.session_id, session.model, api_name=f"/{self.api}"
            )
        text = ""
        try:
            for output in job:
                if isinstance(output, dict):
                    session.session_id = output["session_id"]
                    new = output["content"]
                else:
                    new = text + output
                if new != text:
                    clock.token()
                    text = new
            job.result()  # raises the app's error, which iterating does not
        except Exception as error:
            return clock.done(text, repr(error))
        return clock.done(text)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._close)

    def _close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._pool.shutdown()
