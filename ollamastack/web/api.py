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
from dataclasses import replace
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from ollamastack import validation
from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import NotAllowed
from ollamastack.events import Done, Started, TurnError
from ollamastack.settings import Settings
from ollamastack.storage.usage import UsageLog
from ollamastack.web.api_schema import (
    ChatChunk,
    ChatProgress,
    HealthInfo,
    ModelEntry,
    PullStatus,
    ToolEntry,
    model_entry,
    pull_status,
    tool_entry,
)
from ollamastack.web.api_sessions import SessionEndpoints
from ollamastack.web.coalesce import FRAME_SECONDS, same_run
from ollamastack.web.edge import Edge, caller_of, user_errors
from ollamastack.web.http import reported_health
from ollamastack.web.metrics import USAGE_REFUSAL, is_admin
from ollamastack.web.rest.token_endpoints import token_endpoints
from ollamastack.web.turns import Frame, TurnPipeline, TurnRequest
from ollamastack.web.uploads import gradio_files


class NamedApi:
    """The endpoints over one chat service; each method's name is its MCP tool name."""

    def __init__(
        self,
        settings: Settings,
        handle: ServiceHandle,
        edge: Edge,
        *,
        update_interval: float = FRAME_SECONDS,
        usage: UsageLog | None = None,
    ) -> None:
        self.settings = settings
        self.handle = handle
        self.edge = edge
        self.update_interval = update_interval  # /chat: one dict per frame; 0 sends each event
        self.turns = TurnPipeline(handle, edge)
        self.usage_log = usage or UsageLog(settings)

    async def chat(
        self,
        message: str,
        session_id: str = "",
        model: str = "",
        temperature: float | None = None,
        system_prompt: str = "",
        files: list[FileData] | None = None,
        request: gr.Request | None = None,
    ) -> AsyncIterator[ChatChunk]:
        """Send a message to the agent and stream its answer as it is generated.

        Each streamed dict has the answer so far (content), a thinking model's reasoning so
        far (thinking) and the tools it used (tool_calls: name, args, result); the last one
        has done: true and stats (tokens, tokens/s, time to first token). While text streams,
        a dict comes at most every 50 ms, with all the text that came meanwhile. When the
        model called a tool that needs the user's approval, the last dict also has
        pending_approval (name, args): answer it with /approve_tool; until then a new message
        to this conversation is refused. Attached documents stay with the conversation for
        later questions (the message may be empty when files come); images go to models that
        can see (PNG, JPEG, WebP, GIF). When the conversation has documents, each dict also
        has sources (file, page, and the passage found for the question; an empty text for a
        document read whole).

        Args:
            message: What to ask.
            session_id: The conversation to continue; empty starts a new one (its id is returned).
            model: An installed Ollama model; empty uses the server's default model.
            temperature: Sampling temperature from 0 to 2; empty uses the server's default.
            system_prompt: Instructions for the model; empty uses the server's default prompt.
            files: Images or documents (.txt .md .csv .pdf .docx .html) to attach (handle_file).
        """
        caller = caller_of(request)
        turn = TurnRequest(message, session_id, model, temperature, system_prompt)
        with user_errors(), self.turns.admitted("/chat", caller, turn) as entry:
            if files:
                limit = self.settings.upload_bytes
                turn = replace(turn, files=await gradio_files(files, limit=limit))
            batches = self.turns.frames(
                entry, caller.user, turn, interval=self.update_interval, may_wait=same_run
            )
            async with aclosing(self._chunks(batches, session_id)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def approve_tool(
        self, session_id: str, approve: bool, request: gr.Request | None = None
    ) -> AsyncIterator[ChatChunk]:
        """Approve or deny the tool call a /chat turn stopped at (its last dict had
        pending_approval), and stream the rest of that turn like /chat: the call with its
        result first, then the answer. Approved, the tool runs; denied, the model is told you
        declined and answers without it. Waiting calls survive a restart of the server.

        Args:
            session_id: The conversation whose turn waits, as returned by /chat.
            approve: true to run the tool, false to deny it.
        """
        caller = caller_of(request)
        turn = TurnRequest("", str(session_id))
        with user_errors(), self.turns.admitted("/approve_tool", caller, turn) as entry:
            batches = self.turns.approval_frames(
                entry, caller.user, session_id, approve,
                interval=self.update_interval, may_wait=same_run,
            )
            async with aclosing(self._chunks(batches, session_id)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def edit_message(
        self, session_id: str, message_index: int, message: str,
        request: gr.Request | None = None,
    ) -> AsyncIterator[ChatChunk]:
        """Edit one of your messages and stream the answer to the new text, like /chat. The
        conversation continues from just before that message, as a new branch: the earlier
        one is kept (see "branch" and "branches" in /history, and /switch_branch). The
        message keeps its files; the answer uses the model and options of the turn edited.
        Sending a message's own text again answers it anew (Retry).

        Args:
            session_id: The conversation, as returned by /chat or /sessions.
            message_index: The user message's place in /history (from 0).
            message: The new text.
        """
        caller = caller_of(request)
        turn = TurnRequest(message, str(session_id), edit_index=message_index)
        with user_errors(), self.turns.admitted("/edit_message", caller, turn) as entry:
            batches = self.turns.frames(
                entry, caller.user, turn, interval=self.update_interval, may_wait=same_run
            )
            async with aclosing(self._chunks(batches, session_id)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def _chunks(
        self, batches: AsyncIterator[Frame], session_id: str
    ) -> AsyncIterator[ChatChunk]:
        """One dict per frame: the answer so far; a `TurnError` raises its error."""
        progress = ChatProgress(session_id)  # a new session's id comes with Started
        async with aclosing(batches):
            async for batch in batches:
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

    async def tools(self, refresh: bool = True, request: gr.Request | None = None
                    ) -> list[ToolEntry]:
        """The agent's tools: built-in ones (server empty) and those of each MCP server, with
        whether the server answered (reachable). A server never reached is one entry with an
        empty name, its description saying why.

        Args:
            refresh: Ask the MCP servers again (counts like a message against the rate
                limit); false returns the last listing.
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/tools", caller):
            service = await self.handle.get()
            if refresh is True:
                self.edge.count_message(caller)
                return [tool_entry(t) for t in await service.refresh_tools()]
            return [tool_entry(t) for t in service.tool_entries()]

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
            async with aclosing(service.pull_model(name, caller.user)) as progress:
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
            await service.delete_model(name, caller.user)
            return {"name": name, "deleted": True}

    async def usage(self, days: int = 7, request: gr.Request | None = None) -> dict:
        """Who used which model, how much and how fast, over the last days (UTC, today
        included): turns, tokens, errors and cached answers per day and model (per_day),
        first-token p50/p95 per day in seconds (first_token), the share of failed turns per
        day (error_rate), calls per tool (tools) and figures per user (users). Administrators
        only (OLLAMASTACK_ADMIN_USERS; everyone without login).

        Args:
            days: How many days, from 1 to 366.
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/usage", caller):
            if not is_admin(self.settings, caller.user):
                raise NotAllowed(USAGE_REFUSAL)
            return await self.usage_log.summary(days)


def register_api(
    settings: Settings,
    handle: ServiceHandle,
    edge: Edge,
    *,
    update_interval: float = FRAME_SECONDS,
    usage: UsageLog | None = None,
) -> NamedApi:
    """Register every endpoint inside the open Blocks; returns the object serving them."""
    api = NamedApi(settings, handle, edge, update_interval=update_interval, usage=usage)
    conversations = SessionEndpoints(handle, edge)
    endpoints: list[Any] = [
        api.chat,
        api.approve_tool,
        api.tools,
        api.models,
        api.health,
        conversations.history,
        conversations.sessions,
        conversations.delete_session,
        conversations.search_conversations,
        conversations.rename_session,
        api.edit_message,
        conversations.switch_branch,
        api.pull_model,
        api.delete_model,
        api.usage,
        *token_endpoints(settings, handle, edge),  # API tokens, with logins only
    ]
    for endpoint in endpoints:
        gr.api(endpoint, api_name=endpoint.__name__)
    return api
