"""The named API: the endpoints on Gradio's "Use via API" page, and MCP tools when enabled.

Each endpoint is a thin layer over the chat service: the user comes from the request (the
service checks ownership), the service validates, and `user_errors` turns its typed errors into
`gr.Error`s, the only errors whose text reaches a client. The `Edge` it shares with the page
counts messages against the rate limit, decides who may manage models, and records every
call in the audit log.
"""

# No `from __future__ import annotations`: Gradio reads the annotations at runtime to
# describe each endpoint, and skips parameters typed `gr.Request`.

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import gradio as gr

from ollamastack import validation
from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.events import Done, Started, TurnError
from ollamastack.settings import Settings
from ollamastack.web.api_schema import (
    ChatChunk,
    ChatProgress,
    HealthInfo,
    ModelEntry,
    PullStatus,
    SessionEntry,
    message_entry,
    model_entry,
    pull_status,
    session_entry,
)
from ollamastack.web.coalesce import FRAME_SECONDS, same_run
from ollamastack.web.edge import Edge, caller_of, user_errors
from ollamastack.web.http import reported_health
from ollamastack.web.rest.token_endpoints import token_endpoints
from ollamastack.web.turns import TurnPipeline, TurnRequest


class NamedApi:
    """The endpoints over one chat service; each method's name is its MCP tool name."""

    def __init__(
        self,
        settings: Settings,
        handle: ServiceHandle,
        edge: Edge,
        *,
        update_interval: float = FRAME_SECONDS,
    ) -> None:
        self.settings = settings
        self.handle = handle
        self.edge = edge
        self.update_interval = update_interval  # /chat: one dict per frame; 0 sends each event
        self.turns = TurnPipeline(handle, edge)

    async def chat(
        self,
        message: str,
        session_id: str = "",
        model: str = "",
        temperature: float | None = None,
        system_prompt: str = "",
        request: gr.Request | None = None,
    ) -> AsyncIterator[ChatChunk]:
        """Send a message to the agent and stream its answer as it is generated.

        Each streamed dict has the answer so far (content), a thinking model's reasoning so
        far (thinking) and the tools it used (tool_calls: name, args, result); the last one
        has done: true and stats (tokens, tokens/s, time to first token). While text streams,
        a dict comes at most every 50 ms, with all the text that came meanwhile.

        Args:
            message: What to ask.
            session_id: The conversation to continue; empty starts a new one (its id is returned).
            model: An installed Ollama model; empty uses the server's default model.
            temperature: Sampling temperature from 0 to 2; empty uses the server's default.
            system_prompt: Instructions for the model; empty uses the server's default prompt.
        """
        caller = caller_of(request)
        turn = TurnRequest(message, session_id, model, temperature, system_prompt)
        with user_errors(), self.turns.admitted("/chat", caller, turn) as entry:
            progress = ChatProgress(session_id)  # a new session's id comes with Started
            batches = self.turns.frames(
                entry, caller.user, turn, interval=self.update_interval, may_wait=same_run
            )
            async with aclosing(batches):
                async for batch in batches:  # one dict per frame: the answer so far
                    changed = done = False
                    for _, event in batch:
                        if isinstance(event, Started):
                            progress = ChatProgress(event.session_id)
                        elif isinstance(event, TurnError):
                            if changed:  # what streamed before the failure, first
                                yield progress.chunk()
                            raise event.error
                        elif isinstance(event, Done):
                            done = True
                            yield progress.chunk(done=True, stats=event.stats.as_dict())
                        else:
                            changed = progress.apply(event) or changed
                    if changed and not done:
                        yield progress.chunk()

    async def models(self) -> list[ModelEntry]:
        """The models installed in Ollama, then the embedded model that runs inside the app
        (embedded: true), with their size, parameters, quantization and capabilities
        ("tools": can call tools, "thinking": reasons before answering)."""
        with user_errors():
            service = await self.handle.get()
            return [model_entry(m) for m in await service.engines.list_models()]

    async def health(self, request: gr.Request | None = None) -> HealthInfo:
        """Whether Ollama is reachable, where, which version, and how many models it has;
        which model a chat without one uses (default_model: the embedded model while Ollama
        or its default model is missing) and the embedded model's name (embedded_model).
        Where and which version only for administrators and this machine (else empty).

        Never fails: an unreachable Ollama is reported as status "unavailable".
        """
        caller = caller_of(request)
        body = await reported_health(self.handle, self.settings, caller.user, caller.client)
        return HealthInfo(**body)

    async def history(self, session_id: str, request: gr.Request | None = None) -> list[dict]:
        """The stored messages of a conversation, oldest first, tool calls included.

        Each is {"role", "content"} (role user, assistant, tool or system); an assistant
        message that called tools has "tool_calls" [{"name", "args"}], a tool message "name",
        and an answer cut short (stopped, or Ollama failed) "interrupted" with the reason.

        Args:
            session_id: The conversation, as returned by /chat or /sessions.
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/history", caller, session_id=str(session_id)):
            service = await self.handle.get()
            messages = await service.history(session_id, caller.user)
            return [message_entry(m) for m in messages]

    async def sessions(self, request: gr.Request | None = None) -> list[SessionEntry]:
        """Your conversations, most recently active first, titled by their first message."""
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/sessions", caller):
            service = await self.handle.get()
            return [session_entry(s) for s in await service.sessions(caller.user)]

    async def delete_session(self, session_id: str, request: gr.Request | None = None) -> dict:
        """Delete a conversation and everything stored for it.

        Args:
            session_id: The conversation, as returned by /chat or /sessions.
        """
        caller = caller_of(request)
        audited = self.edge.audit("/delete_session", caller, session_id=str(session_id))
        with user_errors(), audited:
            service = await self.handle.get()
            await service.delete_session(session_id, caller.user)
            return {"session_id": session_id, "deleted": True}

    async def pull_model(
        self, name: str, request: gr.Request | None = None
    ) -> AsyncIterator[PullStatus]:
        """Download a model into Ollama, streaming its progress.

        Each dict has status ("pulling <digest>", ..., "success" at the end) and, while a
        layer downloads, completed and total bytes of that layer.

        Args:
            name: The model, as `ollama pull` takes it (e.g. llama3.2 or qwen3:8b).
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/pull_model", caller, model=str(name)):
            self.edge.check_models(caller)
            name = validation.model_name(name, registries=self.settings.registries)
            service = await self.handle.get()
            async with aclosing(service.engines.pull(name)) as progress:
                async for step in progress:
                    yield pull_status(step)

    async def delete_model(self, name: str, request: gr.Request | None = None) -> dict:
        """Delete an installed model from Ollama.

        Args:
            name: The model, as /models lists it.
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/delete_model", caller, model=str(name)):
            self.edge.check_models(caller)
            name = validation.model_name(name, registries=self.settings.registries)
            service = await self.handle.get()
            await service.engines.delete(name)
            return {"name": name, "deleted": True}


def register_api(
    settings: Settings,
    handle: ServiceHandle,
    edge: Edge,
    *,
    update_interval: float = FRAME_SECONDS,
) -> NamedApi:
    """Register every endpoint inside the open Blocks; returns the object serving them."""
    api = NamedApi(settings, handle, edge, update_interval=update_interval)
    endpoints: list[Any] = [
        api.chat,
        api.models,
        api.health,
        api.history,
        api.sessions,
        api.delete_session,
        api.pull_model,
        api.delete_model,
        *token_endpoints(settings, handle, edge),  # API tokens, with logins only
    ]
    for endpoint in endpoints:
        gr.api(endpoint, api_name=endpoint.__name__)
    return api
