"""Talking to the Ollama server: version, models, pull, delete, and error translation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import ollama

from ollamastack.engines.types import Health, ModelInfo, PullProgress, RunningModel
from ollamastack.errors import (
    ModelNotFound,
    OllamaConnectionLost,
    OllamaError,
    OllamaStackError,
    OllamaTimeout,
    OllamaUnavailable,
)


def translate_error(
    error: BaseException, *, url: str, model: str = "", timeout: float = 0
) -> OllamaStackError | None:
    """Map a client or transport exception to the typed error a user reads, or None.

    >>> translate_error(ConnectionError("x"), url="http://h:1").__class__.__name__
    'OllamaUnavailable'
    >>> str(translate_error(ollama.ResponseError("boom", 500), url="http://h:1"))
    'Ollama reported an error: boom'
    >>> translate_error(ValueError("x"), url="http://h:1") is None
    True
    """
    if isinstance(error, OllamaStackError):
        return error
    if isinstance(error, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
        return OllamaUnavailable(url)
    if isinstance(error, ollama.ResponseError):
        if error.status_code == 404 and model:
            return ModelNotFound(model)
        return OllamaError(error.error, error.status_code)
    if isinstance(error, httpx.TimeoutException):
        return OllamaTimeout(url, timeout)
    if isinstance(error, httpx.TransportError):
        return OllamaConnectionLost(url)
    return None


def ollama_timeout(request_timeout: float) -> httpx.Timeout:
    """Connect fast, but wait `request_timeout` for each byte: a cold model load is slow."""
    return httpx.Timeout(request_timeout, connect=5.0)


@dataclass
class OllamaClient:
    """The official async `ollama` client plus the typed errors and a capability cache."""

    url: str
    request_timeout: float = 300.0
    _client: ollama.AsyncClient = field(init=False, repr=False)
    _http: httpx.AsyncClient = field(init=False, repr=False)
    # what /api/show says of each model: (capabilities, context length), until pull or delete
    _shown: dict[str, tuple[tuple[str, ...], int | None]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        timeout = ollama_timeout(self.request_timeout)
        self._client = ollama.AsyncClient(host=self.url, timeout=timeout)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, follow_redirects=True)

    def _error(self, error: BaseException, model: str = "") -> OllamaStackError:
        typed = translate_error(error, url=self.url, model=model, timeout=self.request_timeout)
        if typed is None:
            raise error
        return typed

    async def version(self) -> str:
        """Ollama's version (`GET /api/version`; the `ollama` client has no call for it)."""
        try:
            response = await self._http.get("/api/version")
            if response.is_error:
                raise ollama.ResponseError(response.text, response.status_code)
            return str(response.json()["version"])
        except Exception as error:
            raise self._error(error) from None

    async def health(self) -> Health:
        """Never raises: a down server is an answer, not an error."""
        try:
            version, listing = await asyncio.gather(self.version(), self._client.list())
        except Exception as error:
            typed = translate_error(error, url=self.url, timeout=self.request_timeout)
            return Health(False, self.url, error=str(typed or error))
        return Health(True, self.url, version, len(listing.models))

    async def capabilities(self, model: str) -> tuple[str, ...]:
        """What `model` can do (tools, vision, thinking...), cached until pull or delete."""
        return (await self._show(model))[0]

    async def context_length(self, model: str) -> int | None:
        """The longest context `model` was trained for (`<family>.context_length`), if said."""
        return (await self._show(model))[1]

    async def _show(self, model: str) -> tuple[tuple[str, ...], int | None]:
        if model not in self._shown:
            try:
                shown = await self._client.show(model)
            except Exception as error:
                raise self._error(error, model) from None
            info = shown.modelinfo or {}
            lengths = [v for k, v in info.items() if k.endswith(".context_length")]
            length = int(lengths[0]) if lengths and isinstance(lengths[0], int) else None
            self._shown[model] = (tuple(shown.capabilities or ()), length)
        return self._shown[model]

    def forget(self, model: str) -> None:
        """Drop `model`'s cached capabilities: it was pulled or deleted through another client."""
        self._shown.pop(model, None)

    async def list_models(self) -> list[ModelInfo]:
        try:
            listing = await self._client.list()
        except Exception as error:
            raise self._error(error) from None
        names = [entry.model or "" for entry in listing.models]
        capabilities = await asyncio.gather(
            *(self.capabilities(name) for name in names), return_exceptions=True
        )
        return [
            ModelInfo(
                name=name,
                size=int(entry.size or 0),
                parameter_size=(entry.details.parameter_size or "") if entry.details else "",
                quantization=(entry.details.quantization_level or "") if entry.details else "",
                family=(entry.details.family or "") if entry.details else "",
                capabilities=caps if isinstance(caps, tuple) else (),
            )
            for name, entry, caps in zip(names, listing.models, capabilities, strict=True)
        ]

    async def running_models(self) -> list[RunningModel]:
        try:
            listing = await self._client.ps()
        except Exception as error:
            raise self._error(error) from None
        return [
            RunningModel(
                name=entry.model or entry.name or "",
                size=int(entry.size or 0),
                size_vram=int(entry.size_vram or 0),
                context_length=entry.context_length,
            )
            for entry in listing.models
        ]

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Stream the pull's progress; a failed pull raises the typed error."""
        self.forget(model)
        try:
            async for line in await self._client.pull(model, stream=True):
                yield PullProgress(
                    status=line.status or "",
                    completed=int(line.completed or 0),
                    total=int(line.total or 0),
                    digest=line.digest or "",
                )
        except Exception as error:
            raise self._error(error) from None

    async def delete(self, model: str) -> None:
        self.forget(model)
        try:
            await self._client.delete(model)
        except Exception as error:
            raise self._error(error, model) from None

    async def close(self) -> None:
        await self._client.close()
        await self._http.aclose()
