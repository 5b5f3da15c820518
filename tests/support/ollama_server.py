"""A scripted Ollama server for tests: the real HTTP API on a loopback port.

Every test talks to Ollama through this server, over real HTTP, with the real
clients (``ollama.Client``, ``ollama.AsyncClient``, ``langchain_ollama``). Like
simonw/llm's ``MockModel`` it answers from a queue of scripted replies and keeps
every request it received::

    server = FakeOllama()
    server.add_model("llama3.2")               # tools-capable by default
    server.start()                             # background thread, <10 ms
    server.enqueue_text("Hello there!")        # next /api/chat, word by word
    ollama.Client(host=server.url).chat("llama3.2", [...], stream=True)
    server.chat_requests[-1]["options"]        # what the client sent
    server.stop(); server.start()              # same port: Ollama went away and back

Scripting the next ``/api/chat`` replies (each helper returns the queued
``Reply``; extra keyword arguments go to ``Reply``: ``model=`` reserves the
reply for chats with that model, ``first_byte_delay=``, ``done_reason=``,
``together=``):

- ``enqueue_text(text)``: content streamed in word chunks (``"Hello"``,
  ``" there!"``) that concatenate to ``text`` exactly.
- ``enqueue_tool_call(name, arguments)`` / ``enqueue_tool_calls([(name, args)])``.
- ``enqueue_thinking_text(thinking=..., text=...)``: ``message.thinking``
  chunks first; sent only when the request thinks (thinking models do by
  default, ``think: false`` turns it off).
- ``enqueue_error(status, message)``: ``{"error": message}`` with that status.
- ``enqueue_stream_error(message, after_chunks=1)``: an ``{"error"}`` line inside
  a 200 stream, as Ollama sends runner failures (a 500 when not streaming).
- ``enqueue_cut(text, after_chunks=2)``: drop the TCP connection mid-stream.
- ``enqueue(Reply(...))`` for any mix of the above.
- ``enqueue_json(value)``: the answer to the next chat asking for JSON (``format``);
  unscripted, such a chat gets the least value its schema allows (``minimal_instance``).

With the queue empty a chat answers ``"You said: <last user message>"``.
``first_byte_delay`` delays the response headers; ``together = N`` holds each
chat until N chats wait at once (proof they were in flight together, whatever
delayed their clients); ``token_rate`` paces chunks
(tokens/s, ``None`` = no pacing). Reported metrics are nominal and exact, so
tests can assert them: ``eval_count`` = chunks streamed, ``eval_duration`` =
``eval_count / (token_rate or 100)`` s, ``prompt_eval_count`` = words in the
messages at 1000 tokens/s, ``load_duration`` = the first-byte delay (min 1 ms),
``total_duration`` = their sum. All durations are in nanoseconds.

Models: ``add_model``/``remove_model``; names are normalised as Ollama lists
them (``llama3.2`` -> ``llama3.2:latest``). A chat loads its model into
``/api/ps`` for ``keep_alive`` (default 5m); ``load_model`` does it directly.
``/api/pull`` installs any name except those given to ``mark_unpullable`` or
starting with ``missing``; ``add_pullable(name, **add_model_kwargs)`` sets what a
pull installs. ``pull_delay`` paces pull progress lines.

Embeddings: ``POST /api/embed`` answers deterministic vectors (``embed_vector``: hashed
bag of words, L2-normalised, ``embedding_length`` dimensions, 768 unless set), so texts that
share words are close. A model needs the ``embedding`` capability
(``add_model("nomic-embed-text", capabilities=("embedding",))``), which cannot chat;
``enqueue_embed_error(status, message, after=0)`` fails the embed request after ``after``
good ones; ``embed_requests`` are the bodies received.

Images: a chat whose messages carry ``images`` needs a ``vision`` model; unscripted, it
answers ``"You said: <text> [2 images: <sha256[:12]> (<bytes> bytes), ...]"``.

``requests`` records every request (``RecordedRequest``: method, path, parsed
JSON body, and ``disconnected`` once a client hung up mid-stream);
``wait_until(predicate)`` blocks until the server's state satisfies it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

NDJSON = "application/x-ndjson"
NOMINAL_TOKEN_RATE = 100.0  # tokens/s reported when token_rate is None
PROMPT_TOKEN_RATE = 1000.0  # tokens/s reported for prompt evaluation
DEFAULT_NUM_CTX = 4096
PULL_STEPS = 4  # progress lines per layer after the first
TEMPLATE = "{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}{{ end }}<|assistant|>"
TOOLS_TEMPLATE = "{{ if .Tools }}<|tools|>{{ .Tools }}{{ end }}" + TEMPLATE
EMBEDDING_LENGTH = 768  # nomic-embed-text's, for an embedding model that does not say


class ConnectionCut(Exception):
    """Raised inside a response stream so uvicorn drops the connection."""


@dataclass
class Reply:
    """One scripted ``/api/chat`` answer."""

    content: str = ""
    thinking: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    done_reason: str = "stop"
    status: int = 200  # anything else: answer {"error": error} with this status
    error: str = ""
    stream_error: str | None = None  # {"error"} line after `after_chunks` chunks
    cut: bool = False  # drop the connection after `after_chunks` chunks
    after_chunks: int = 0
    first_byte_delay: float | None = None  # None: the server's setting
    model: str | None = None  # only for chats with this model
    together: int | None = None  # None: the server's setting
    for_format: bool = False  # only for chats that ask for JSON (`format`): enqueue_json

    def messages(self, think: bool) -> list[dict[str, Any]]:
        """The streamed ``message`` objects, one per token."""
        parts: list[dict[str, Any]] = []
        if think:
            parts += [_msg(thinking=w) for w in split_words(self.thinking)]
        parts += [_msg(content=w) for w in split_words(self.content)]
        if self.tool_calls:
            calls = [
                {
                    "id": f"call_{uuid.uuid4().hex[:8]}",
                    "function": {"index": i, "name": name, "arguments": dict(args)},
                }
                for i, (name, args) in enumerate(self.tool_calls)
            ]
            parts.append(_msg(tool_calls=calls))
        return parts


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any  # parsed JSON, or None
    disconnected: bool = False  # the client hung up before the stream ended


@dataclass
class FakeModel:
    name: str  # normalised, e.g. "llama3.2:latest"
    capabilities: tuple[str, ...] = ("completion", "tools")
    size: int = 2_019_393_189
    parameter_size: str = "3.2B"
    quantization: str = "Q4_K_M"
    family: str = "llama"
    context_length: int = 131_072
    modified_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    embedding_length: int | None = None  # None: EMBEDDING_LENGTH if it embeds, else unsaid

    @property
    def dimensions(self) -> int | None:
        """The length of its vectors, as `/api/show` reports it (None: not reported)."""
        if self.embedding_length is None and "embedding" in self.capabilities:
            return EMBEDDING_LENGTH
        return self.embedding_length

    @property
    def digest(self) -> str:
        return _sha256(self.name)

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }

    def listing(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": _iso(self.modified_at),
            "size": self.size,
            "digest": self.digest,
            "details": self.details(),
        }


@dataclass
class EmbedFault:
    """An ``/api/embed`` answered with ``{"error": message}`` after ``after`` good ones."""

    status: int
    message: str
    after: int = 0


TOGETHER_TIMEOUT = 10.0  # how long a `together` reply waits for the others


class FakeOllama:
    def __init__(self, *, version: str = "0.12.6") -> None:
        self.version = version
        self.token_rate: float | None = None
        self.first_byte_delay = 0.0
        self.together = 1  # answer once this many chats wait at once (TOGETHER_TIMEOUT)
        self.pull_delay = 0.0
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._replies: list[Reply] = []
        self._embed_faults: list[EmbedFault] = []
        self._models: dict[str, FakeModel] = {}
        self._together: list[Any] | None = None  # [replies waiting, event set when complete]
        self._loaded: dict[str, tuple[datetime, int]] = {}  # expires_at, num_ctx
        self._pull_specs: dict[str, dict[str, Any]] = {}
        self._unpullable: set[str] = set()
        self._port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._app = Starlette(
            routes=[
                Route("/", self._root, methods=["GET", "HEAD"]),
                Route("/api/version", self._version, methods=["GET", "HEAD"]),
                Route("/api/tags", self._tags, methods=["GET", "HEAD"]),
                Route("/api/show", self._show, methods=["POST"]),
                Route("/api/ps", self._ps, methods=["GET"]),
                Route("/api/chat", self._chat, methods=["POST"]),
                Route("/api/embed", self._embed, methods=["POST"]),
                Route("/api/pull", self._pull, methods=["POST"]),
                Route("/api/delete", self._delete, methods=["DELETE"]),
            ],
            exception_handlers={404: _not_found, 405: _not_allowed},
        )

    # -- lifecycle -----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FakeOllama:
        """Serve on a free port, or on the previous one after ``stop()``."""
        if self._thread is not None:
            raise RuntimeError(f"FakeOllama is already running at {self.url}")
        _quiet_intended_errors()
        # IPPROTO_TCP, or asyncio skips TCP_NODELAY and each response stalls 40 ms
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        sock.listen(128)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=False,
            http="h11",
            ws="none",
            loop="asyncio",
        )
        self._server = server = _Uvicorn(config)
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            daemon=True,
            name=f"FakeOllama:{self._port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 5
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("FakeOllama did not start")
            time.sleep(0.001)
        return self

    def stop(self) -> None:
        """Close the port and cut every open connection, like a killed Ollama."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting -----------------------------------------------------------

    def add_model(self, name: str, **attributes: Any) -> FakeModel:
        """Install a model; ``attributes`` are ``FakeModel`` fields."""
        if "capabilities" in attributes:
            attributes["capabilities"] = tuple(attributes["capabilities"])
        model = FakeModel(normalize_name(name), **attributes)
        with self._lock:
            self._models[model.name] = model
        return model

    def remove_model(self, name: str) -> None:
        with self._lock:
            self._models.pop(normalize_name(name))
            self._loaded.pop(normalize_name(name), None)

    def load_model(
        self, name: str, *, context_length: int = DEFAULT_NUM_CTX, keep_alive: float = 300
    ) -> None:
        """Show the model in ``/api/ps`` for ``keep_alive`` s (0: unload, <0: forever)."""
        name = normalize_name(name)
        now = datetime.now(UTC)
        with self._lock:
            if name not in self._models:
                raise KeyError(name)
            if keep_alive == 0:
                self._loaded.pop(name, None)
            else:
                expiry = timedelta(seconds=keep_alive if keep_alive > 0 else 1e10)
                self._loaded[name] = (now + expiry, context_length)

    def unload_model(self, name: str) -> None:
        self.load_model(name, keep_alive=0)

    def add_pullable(self, name: str, **attributes: Any) -> None:
        """What ``/api/pull`` of ``name`` installs (default: ``add_model`` defaults)."""
        with self._lock:
            self._pull_specs[normalize_name(name)] = attributes

    def mark_unpullable(self, name: str) -> None:
        """Pulls of ``name`` fail as for a name missing from the registry."""
        with self._lock:
            self._unpullable.add(normalize_name(name))

    def enqueue(self, reply: Reply) -> Reply:
        with self._lock:
            self._replies.append(reply)
        return reply

    def enqueue_text(self, text: str, **options: Any) -> Reply:
        return self.enqueue(Reply(content=text, **options))

    def enqueue_json(self, value: Any, **options: Any) -> Reply:
        """The answer to the next chat that asks for JSON (`format`), streamed as text."""
        return self.enqueue(Reply(content=json.dumps(value), for_format=True, **options))

    def enqueue_tool_call(
        self, name: str, arguments: Mapping[str, Any], *, text: str = "", **options: Any
    ) -> Reply:
        return self.enqueue_tool_calls([(name, arguments)], text=text, **options)

    def enqueue_tool_calls(
        self,
        calls: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        text: str = "",
        **options: Any,
    ) -> Reply:
        return self.enqueue(Reply(content=text, tool_calls=list(calls), **options))

    def enqueue_thinking_text(self, *, thinking: str, text: str, **options: Any) -> Reply:
        return self.enqueue(Reply(content=text, thinking=thinking, **options))

    def enqueue_error(self, status: int, message: str, **options: Any) -> Reply:
        return self.enqueue(Reply(status=status, error=message, **options))

    def enqueue_stream_error(
        self,
        message: str,
        *,
        text: str = "partial answer",
        after_chunks: int = 1,
        **options: Any,
    ) -> Reply:
        return self.enqueue(
            Reply(
                content=text,
                stream_error=message,
                after_chunks=after_chunks,
                **options,
            )
        )

    def enqueue_cut(
        self, text: str = "partial answer", *, after_chunks: int = 2, **options: Any
    ) -> Reply:
        return self.enqueue(Reply(content=text, cut=True, after_chunks=after_chunks, **options))

    def enqueue_embed_error(self, status: int, message: str, *, after: int = 0) -> EmbedFault:
        """Fail an ``/api/embed`` request with ``{"error": message}``, after ``after`` more
        succeed (a runner that dies in the middle of a document)."""
        with self._lock:
            self._embed_faults.append(fault := EmbedFault(status, message, after))
        return fault

    # -- reading back --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[Any]:
        return [r.body for r in self.requests if r.path == "/api/chat"]

    @property
    def embed_requests(self) -> list[Any]:
        return [r.body for r in self.requests if r.path == "/api/embed"]

    @property
    def pending_replies(self) -> list[Reply]:
        with self._lock:
            return list(self._replies)

    @property
    def models(self) -> list[FakeModel]:
        with self._lock:
            return list(self._models.values())

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` holds; it is re-checked on every change."""
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise TimeoutError(f"FakeOllama: condition not met in {timeout} s")

    # -- HTTP handlers -------------------------------------------------------

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(request.method, request.url.path, body)
        with self._changed:
            self._requests.append(record)
            self._changed.notify_all()
        return record

    def _find(self, name: str) -> FakeModel | None:
        with self._lock:
            return self._models.get(normalize_name(name)) if name else None

    async def _root(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("Ollama is running")

    async def _version(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"version": self.version})

    async def _tags(self, request: Request) -> Response:
        await self._record(request)
        newest_first = sorted(self.models, key=lambda m: m.modified_at, reverse=True)
        return JSONResponse({"models": [m.listing() for m in newest_first]})

    async def _show(self, request: Request) -> Response:
        body = (await self._record(request)).body or {}
        name = body.get("model") or body.get("name") or ""
        if not name:
            return _error(400, "model is required")
        if (m := self._find(name)) is None:
            return _error(404, f"model '{name}' not found")
        return JSONResponse(
            {
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {m.name}\n',
                "parameters": 'stop                           "<|end|>"',
                "template": TOOLS_TEMPLATE if "tools" in m.capabilities else TEMPLATE,
                "details": m.details(),
                "model_info": {
                    "general.architecture": m.family,
                    "general.parameter_count": _parse_count(m.parameter_size),
                    f"{m.family}.context_length": m.context_length,
                    **({} if m.dimensions is None
                       else {f"{m.family}.embedding_length": m.dimensions}),
                },
                "capabilities": list(m.capabilities),
                "modified_at": _iso(m.modified_at),
            }
        )

    async def _ps(self, request: Request) -> Response:
        await self._record(request)
        now = datetime.now(UTC)
        with self._lock:
            rows = [
                (self._models[name], expires_at, num_ctx)
                for name, (expires_at, num_ctx) in self._loaded.items()
                if expires_at > now and name in self._models
            ]
        rows.sort(key=lambda row: row[1], reverse=True)
        return JSONResponse(
            {
                "models": [
                    {
                        **m.listing(),
                        "expires_at": _iso(expires_at),
                        "size_vram": m.size,
                        "context_length": num_ctx,
                    }
                    for m, expires_at, num_ctx in rows
                ]
            }
        )

    async def _delete(self, request: Request) -> Response:
        body = (await self._record(request)).body or {}
        name = body.get("model") or body.get("name") or ""
        if self._find(name) is None:
            return _error(404, f"model '{name}' not found")
        self.remove_model(name)
        return Response()

    async def _chat(self, request: Request) -> Response:
        record = await self._record(request)
        body = record.body
        if not isinstance(body, dict):
            return _error(400, "missing request body")
        name, messages = body.get("model") or "", body.get("messages") or []
        if not name:
            return _error(400, "model is required")
        if (model := self._find(name)) is None:
            return _error(404, f"model '{name}' not found")
        if "completion" not in model.capabilities:
            return _error(400, f'"{name}" does not support chat')
        think = body.get("think")
        if "thinking" in model.capabilities:
            think = True if think is None else think
        elif think not in (None, False):
            return _error(400, f'"{name}" does not support thinking')
        if body.get("tools") and "tools" not in model.capabilities:
            return _error(400, f"{_qualified(model.name)} does not support tools")
        try:
            keep_alive = keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            return _error(400, str(exc))
        num_ctx = (body.get("options") or {}).get("num_ctx") or DEFAULT_NUM_CTX
        if not messages:  # a load (or, with keep_alive 0, unload) request
            self.load_model(model.name, context_length=num_ctx, keep_alive=keep_alive)
            reason = "unload" if keep_alive == 0 else "load"
            return JSONResponse(_chunk(name, _msg(), done=True, done_reason=reason))
        try:
            images = [_decode_image(i) for m in messages for i in m.get("images") or ()]
        except ValueError as exc:
            return _error(400, str(exc))
        if images and "vision" not in model.capabilities:  # the runner has no projector
            self.load_model(model.name, context_length=num_ctx, keep_alive=keep_alive)
            return _error(500, "this model is missing data required for image input")

        formatted = body.get("format") not in (None, "")
        reply = self._take_reply(model.name, formatted) or Reply(
            content=json.dumps(minimal_instance(body["format"])) if formatted
            else "You said: " + _last_user_text(messages) + describe_images(images)
        )
        delay = self.first_byte_delay
        if reply.first_byte_delay is not None:
            delay = reply.first_byte_delay
        await asyncio.sleep(delay)
        together = self.together if reply.together is None else reply.together
        if together > 1:
            await self._gather(together)
        if reply.status != 200:
            return _error(reply.status, reply.error)
        self.load_model(model.name, context_length=num_ctx, keep_alive=keep_alive)
        parts = reply.messages(think=think not in (None, False))
        metrics = self._metrics(parts, messages, delay)
        if reply.cut or reply.stream_error is not None:
            parts = parts[: reply.after_chunks]
        if body.get("stream", True) is not False:
            lines = self._chat_lines(name, parts, reply, metrics, record)
            return StreamingResponse(lines, media_type=NDJSON)
        if reply.cut:  # headers, then the connection drops
            lines = self._chat_lines(name, [], reply, metrics, record)
            return StreamingResponse(lines, media_type="application/json")
        if reply.stream_error is not None:
            return _error(500, reply.stream_error)
        final = _chunk(name, _merge(parts), done=True, done_reason=reply.done_reason)
        return JSONResponse({**final, **metrics})

    async def _chat_lines(
        self,
        model: str,
        parts: list[dict[str, Any]],
        reply: Reply,
        metrics: dict[str, int],
        record: RecordedRequest,
    ) -> AsyncIterator[bytes]:
        interval = 1 / self.token_rate if self.token_rate else 0.0
        try:
            for i, message in enumerate(parts):
                await asyncio.sleep(interval if i else 0)
                yield _line(_chunk(model, message))
            if reply.cut:
                raise ConnectionCut
            if reply.stream_error is not None:
                yield _line({"error": reply.stream_error})
            else:
                final = _chunk(model, _msg(), done=True, done_reason=reply.done_reason)
                yield _line({**final, **metrics})
        except (asyncio.CancelledError, GeneratorExit):
            with self._changed:
                record.disconnected = True
                self._changed.notify_all()
            raise

    async def _gather(self, count: int) -> None:
        """Wait until `count` replies wait here at once: proof that their requests were in
        flight together, whatever delayed the clients that sent them."""
        if self._together is None or self._together[1].is_set():
            self._together = [0, asyncio.Event()]  # a new group
        group = self._together
        group[0] += 1
        if group[0] >= count:
            group[1].set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(group[1].wait(), TOGETHER_TIMEOUT)

    def _take_reply(self, model: str, formatted: bool = False) -> Reply | None:
        with self._lock:
            for i, reply in enumerate(self._replies):
                if reply.for_format != formatted:
                    continue
                if reply.model is None or normalize_name(reply.model) == model:
                    return self._replies.pop(i)
        return None

    def _metrics(
        self, parts: list[dict[str, Any]], messages: list[dict[str, Any]], delay: float
    ) -> dict[str, int]:
        prompt_count = sum(len(str(m.get("content") or "").split()) for m in messages)
        load = max(round(delay * 1e9), 1_000_000)
        prompt = round(prompt_count / PROMPT_TOKEN_RATE * 1e9)
        generation = round(len(parts) / (self.token_rate or NOMINAL_TOKEN_RATE) * 1e9)
        return {
            "total_duration": load + prompt + generation,
            "load_duration": load,
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": prompt,
            "eval_count": len(parts),
            "eval_duration": generation,
        }

    async def _embed(self, request: Request) -> Response:
        """``/api/embed`` as Ollama's EmbedHandler answers it."""
        body = (await self._record(request)).body
        if not isinstance(body, dict):
            return _error(400, "missing request body")
        name, given = body.get("model") or "", body.get("input")
        if isinstance(given, str):
            texts = [given] if given else []
        elif given is None or (isinstance(given, list) and all(isinstance(t, str) for t in given)):
            texts = list(given or [])
        else:
            return _error(400, "invalid input type")
        if not name:
            return _error(400, "model is required")
        if (model := self._find(name)) is None:
            return _error(404, f'model "{name}" not found, try pulling it first')
        try:
            keep_alive = keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            return _error(400, str(exc))
        num_ctx = (body.get("options") or {}).get("num_ctx") or DEFAULT_NUM_CTX
        await asyncio.sleep(self.first_byte_delay)
        self.load_model(model.name, context_length=num_ctx, keep_alive=keep_alive)
        if not texts:  # an empty request loads the model
            return JSONResponse({"model": name, "embeddings": []})
        if (fault := self._take_embed_fault()) is not None:
            return _error(fault.status, fault.message)
        if model.dimensions is None or "embedding" not in model.capabilities:
            return _error(501, "this model does not support embeddings")
        limit = min(num_ctx, model.context_length)
        words = [text.split() for text in texts]
        if body.get("truncate") is False and any(len(w) > limit for w in words):
            return _error(400, "the input length exceeds the context length")
        words = [w[:limit] for w in words]  # truncated, as Ollama does by default
        vectors = [embed_vector(" ".join(w), model.dimensions, body.get("dimensions"))
                   for w in words]
        count = sum(len(w) for w in words)
        load = max(round(self.first_byte_delay * 1e9), 1_000_000)
        return JSONResponse({
            "model": name,
            "embeddings": vectors,
            "total_duration": load + round(count / PROMPT_TOKEN_RATE * 1e9),
            "load_duration": load,
            "prompt_eval_count": count,
        })

    def _take_embed_fault(self) -> EmbedFault | None:
        with self._lock:
            if not self._embed_faults:
                return None
            if self._embed_faults[0].after > 0:
                self._embed_faults[0].after -= 1
                return None
            return self._embed_faults.pop(0)

    async def _pull(self, request: Request) -> Response:
        body = (await self._record(request)).body or {}
        name = body.get("model") or body.get("name") or ""
        if not name:
            return _error(400, "invalid model name")
        if body.get("stream", True) is not False:
            return StreamingResponse(self._pull_lines(name), media_type=NDJSON)
        events = list(self._pull_events(name))
        await asyncio.sleep(self.pull_delay * len(events))
        last = events[-1]  # Ollama answers with the last progress event
        return _error(500, last["error"]) if "error" in last else JSONResponse(last)

    async def _pull_lines(self, name: str) -> AsyncIterator[bytes]:
        for event in self._pull_events(name):
            await asyncio.sleep(self.pull_delay)
            yield _line(event)

    def _pull_events(self, name: str) -> Iterator[dict[str, Any]]:
        yield {"status": "pulling manifest"}
        key = normalize_name(name)
        with self._lock:
            missing = key in self._unpullable or key.rsplit("/", 1)[-1].startswith("missing")
            spec = self._pull_specs.get(key)
            installed = key in self._models
        if missing:
            yield {"error": "pull model manifest: file does not exist"}
            return
        size = (spec or {}).get("size", FakeModel.size)
        layers = [("model", size - 2_000), ("template", 1_429), ("params", 571)]
        for layer, total in layers:
            digest = "sha256:" + _sha256(f"{key}/{layer}")
            for step in range(PULL_STEPS + 1):
                event = {"status": f"pulling {digest[7:19]}", "digest": digest}
                event["total"] = total
                if step:  # Ollama omits a zero `completed`
                    event["completed"] = total * step // PULL_STEPS
                yield event
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        if spec is not None or not installed:
            self.add_model(key, **(spec or {}))
        yield {"status": "success"}


# -- helpers -----------------------------------------------------------------


def normalize_name(name: str) -> str:
    """The name Ollama lists a model under.

    >>> normalize_name("llama3.2")
    'llama3.2:latest'
    >>> normalize_name("registry.ollama.ai/library/qwen3:8b")
    'qwen3:8b'
    >>> normalize_name("hf.co/bartowski/gemma-GGUF")
    'hf.co/bartowski/gemma-GGUF:latest'
    """
    name = name.strip().removeprefix("registry.ollama.ai/").removeprefix("library/")
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def split_words(text: str) -> list[str]:
    """Stream chunks: one word each, with the whitespace before it.

    >>> split_words("Hello there!  How are you?\\n")
    ['Hello', ' there!', '  How', ' are', ' you?\\n']
    >>> split_words(""), split_words(" ")
    ([], [' '])
    """
    return re.findall(r"\s*\S+(?:\s+$)?|\s+", text)


def keep_alive_seconds(value: Any) -> float:
    """Seconds a ``keep_alive`` (number of seconds or Go duration) keeps a model loaded.

    >>> [keep_alive_seconds(v) for v in (None, 0, "0", 30, "10s", "5m", "1h30m", -1, "-1m")]
    [300.0, 0.0, 0.0, 30.0, 10.0, 300.0, 5400.0, -1.0, -60.0]
    >>> keep_alive_seconds("soon")
    Traceback (most recent call last):
    ValueError: time: invalid duration "soon"
    """
    if value is None:
        return 300.0
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    sign, text = (-1, text[1:]) if text.startswith("-") else (1, text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if text != "0" and "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f'time: invalid duration "{value}"')
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sign * sum((float(number) * units[unit] for number, unit in parts), 0.0)


def embed_vector(text: str, dims: int, dimensions: int | None = None) -> list[float]:
    """A deterministic embedding: each word (lower case) adds +-1 at the place its hash
    picks, then the vector is L2-normalised, so texts that share words are close. As Ollama,
    ``dimensions`` below the model's keeps the first ones, normalised again.

    >>> a, b, c = (embed_vector(t, 768) for t in ("Red apples", "red APPLES!", "blue sky"))
    >>> a == b, round(sum(x * y for x, y in zip(a, c)), 6), round(sum(x * x for x in a), 6)
    (True, 0.0, 1.0)
    >>> len(embed_vector("red apples", 768, dimensions=64)), embed_vector("", 4)
    (64, [0.0, 0.0, 0.0, 0.0])
    """
    vector = [0.0] * dims
    for word in re.findall(r"[^\W_]+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:7], "big") % dims] += 1.0 if digest[7] & 1 else -1.0
    if dimensions and 0 < dimensions < dims:
        vector = vector[:dimensions]
    norm = max(sum(x * x for x in vector) ** 0.5, 1e-12)
    return [x / norm for x in vector]


def describe_images(images: list[bytes]) -> str:
    """What the unscripted reply says of a chat's images: how many, and each one's SHA-256
    prefix and size, so a test sees which bytes reached the model.

    >>> describe_images([b"png", b"jpeg!"])
    ' [2 images: 8f8cbb7dcf46 (3 bytes), b8c3a12e7e2a (5 bytes)]'
    >>> describe_images([])
    ''
    """
    if not images:
        return ""
    each = ", ".join(f"{hashlib.sha256(data).hexdigest()[:12]} ({len(data)} bytes)"
                     for data in images)
    return f" [{len(images)} image{'s' if len(images) > 1 else ''}: {each}]"


def _decode_image(value: Any) -> bytes:
    """An image of a chat message: base64, as Go decodes a JSON ``[]byte``."""
    text = value if isinstance(value, str) else ""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        bad = next((i for i, ch in enumerate(text) if ch not in _BASE64), len(text))
        raise ValueError(f"illegal base64 data at input byte {bad}") from None


_BASE64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _qualified(name: str) -> str:
    """``llama3.2:latest`` -> ``registry.ollama.ai/library/llama3.2:latest``."""
    prefix = {0: "registry.ollama.ai/library/", 1: "registry.ollama.ai/"}
    return prefix.get(name.count("/"), "") + name


def _parse_count(parameter_size: str) -> int:
    units = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
    return round(float(parameter_size[:-1]) * units.get(parameter_size[-1], 1))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    return str(users[-1].get("content") or "") if users else ""


def _msg(content: str = "", **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, **extra}


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    message = _msg("".join(p["content"] for p in parts))
    if thinking := "".join(p.get("thinking", "") for p in parts):
        message["thinking"] = thinking
    if calls := [call for p in parts for call in p.get("tool_calls", [])]:
        message["tool_calls"] = calls
    return message


def _chunk(model: str, message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    now = _iso(datetime.now(UTC))
    return {"model": model, "created_at": now, "message": message, "done": False, **extra}


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("404 page not found", status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("405 method not allowed", status_code=405)


class _Uvicorn(uvicorn.Server):
    """uvicorn without the grace a test does not need: ``stop()`` takes milliseconds."""

    async def main_loop(self) -> None:
        await self.on_tick(0)  # should_exit is set from another thread; uvicorn polls at 0.1 s
        while not self.should_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop listening; the port is free again
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle ones close; responses in flight are
        # cancelled when the event loop ends, which cuts their connections


class _QuietIntendedErrors(logging.Filter):
    """Drops the tracebacks uvicorn logs for connections this server cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        intended = isinstance(exc, ConnectionCut | asyncio.CancelledError)
        return not (intended and record.threadName.startswith("FakeOllama:"))


def _quiet_intended_errors() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietIntendedErrors) for f in logger.filters):
        logger.addFilter(_QuietIntendedErrors())


def minimal_instance(schema: Any) -> Any:
    """The least JSON value `schema` allows, what a chat asking for JSON gets unscripted:
    required keys only, an enum's "none" (else its first value), empty strings, zeros.

    >>> minimal_instance({"type": "object", "required": ["tool"],
    ...                   "properties": {"tool": {"enum": ["calculator", "none"]}}})
    {'tool': 'none'}
    >>> minimal_instance("json")
    {}
    """
    if not isinstance(schema, dict):
        return {}
    if "anyOf" in schema:
        return minimal_instance(schema["anyOf"][0])
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return "none" if "none" in schema["enum"] else schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        return {key: minimal_instance(properties.get(key, {})) for key in required}
    return {"array": [], "string": "", "integer": 0, "number": 0, "boolean": False}.get(kind)
