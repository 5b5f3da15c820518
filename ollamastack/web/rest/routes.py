"""The plain REST API under `/api/v1`: JSON in and out over the same core, `Edge` and turn
pipeline as the named API. Pydantic checks only the body's shape and types; the values are
checked by the chat service, so the page, the named API and these routes refuse the same
inputs with the same words."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr

from ollamastack import validation
from ollamastack.events import Done, Started
from ollamastack.web.api_schema import ChatProgress, message_entry, model_entry, session_entry
from ollamastack.web.http import reported_health
from ollamastack.web.rest.bodies import openapi_bodies, read_body
from ollamastack.web.rest.context import RestContext
from ollamastack.web.rest.errors import api_error, api_errors
from ollamastack.web.rest.turn import StartedTurn
from ollamastack.web.turns import TurnRequest

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class ChatBody(BaseModel):
    """`POST /api/v1/chat`."""

    model_config = ConfigDict(extra="forbid")

    message: StrictStr
    conversation_id: StrictStr = Field("", description="Empty: a new conversation.")
    model: StrictStr = Field("", description="Empty: the server's default model.")
    temperature: StrictFloat | None = Field(None, description="0 to 2.")
    system_prompt: StrictStr = ""
    stream: StrictBool = Field(False, description="Answer as server-sent events.")


class ApprovalBody(BaseModel):
    """`POST /api/v1/conversations/{conversation_id}/approval`."""

    model_config = ConfigDict(extra="forbid")

    approve: StrictBool = Field(
        description="true: the tool runs; false: the model is told you declined.")
    stream: StrictBool = Field(False, description="Answer as server-sent events.")


class PendingApprovalOut(BaseModel):
    name: str
    args: dict[str, Any]


class SourceOut(BaseModel):
    file: str
    page: int | None
    text: str


class ChatAnswer(BaseModel):
    conversation_id: str
    content: str
    thinking: str
    tool_calls: list[dict[str, Any]]
    model: str
    stats: dict[str, Any] | None
    pending_approval: PendingApprovalOut | None = Field(None, description=(
        "Only when the turn stopped at a tool call that waits for your approval: answer it "
        "with POST /api/v1/conversations/{conversation_id}/approval."))
    sources: list[SourceOut] | None = Field(None, description=(
        "Only when the conversation has documents: what the answer drew on (file, page, the "
        "passage found for the question; an empty text for a document read whole)."))


class HealthOut(BaseModel):  # the named API's TypedDicts, as pydantic needs them on 3.11
    status: str
    ollama_url: str
    ollama_version: str
    models: int
    default_model: str
    embedded_model: str


class ModelOut(BaseModel):
    name: str
    size: int
    parameter_size: str
    quantization: str
    capabilities: list[str]
    embedded: bool


class ConversationOut(BaseModel):
    conversation_id: str
    title: str
    created_at: float
    updated_at: float


def conversation(info: Any) -> dict[str, Any]:
    """One conversation of the list: `/sessions`' dict, its id named as in this API."""
    entry = dict(session_entry(info))
    return {"conversation_id": entry.pop("session_id")} | entry


def frame(progress: ChatProgress, model: str, **fields: Any) -> dict[str, Any]:
    """One streamed frame: `/chat`'s dict, its session id named as in this API."""
    chunk = dict(progress.chunk(**fields))
    return {"conversation_id": chunk.pop("session_id"), "model": model} | chunk


def sse(data: dict[str, Any], event: str = "") -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def rest_router(ctx: RestContext) -> APIRouter:
    """The `/api/v1` routes over `ctx`."""
    router = APIRouter(prefix="/api/v1", tags=["OllamaStack"])

    @router.post("/chat", response_model=ChatAnswer, response_model_exclude_unset=True,
                 summary="Ask the agent", openapi_extra=openapi_bodies(ChatBody))
    async def chat(request: Request) -> Any:
        """Answer `message` in a conversation (a new one without `conversation_id`). With
        `"stream": true`, server-sent events: one frame as the answer grows, the last with
        `done: true` and stats; an error after the start comes as an `error` event. When the
        model calls a tool that runs only with your approval, the turn stops there and the
        answer (the last event) has `pending_approval`; until you answer it, a new message
        to the conversation is refused (409).

        Files come with a multipart/form-data body instead: the same fields as form fields,
        each file a part named `files` (images for a vision model; .txt, .md, .csv, .pdf,
        .docx, .html documents, which stay with the conversation). When the conversation has
        documents, the answer has `sources`: file, page and passage."""
        with api_errors():
            caller = await ctx.caller(request)
            body, files = await read_body(request, ChatBody, limit=ctx.settings.upload_bytes,
                                          max_files=ctx.settings.max_files)
            turn = TurnRequest(body.message, body.conversation_id, body.model,
                               body.temperature, body.system_prompt, files=files)
            started = await StartedTurn.start(
                ctx, "/api/v1/chat", caller, turn, request.receive)
        return await answered(started, body.stream)

    @router.post("/conversations/{conversation_id}/approval", response_model=ChatAnswer,
                 response_model_exclude_unset=True,
                 summary="Approve or deny the tool call a turn waits for")
    async def approval(conversation_id: str, body: ApprovalBody, request: Request) -> Any:
        """Answer the tool call at which a turn of this conversation stopped
        (`pending_approval`), and get the rest of that turn as `/api/v1/chat` gives it
        (streamed or not): the call with its result, then the answer. Approved, the tool
        runs; denied, the model answers without it. 400 when no call waits, 409 while the
        conversation answers."""
        with api_errors():
            caller = await ctx.caller(request)
            started = await StartedTurn.start(
                ctx, "/api/v1/approval", caller, TurnRequest("", conversation_id),
                request.receive, approve=body.approve)
        return await answered(started, body.stream)

    @router.get("/health", response_model=HealthOut, summary="Whether Ollama is reachable")
    async def health(request: Request) -> Any:
        caller = await ctx.caller(request)
        return await reported_health(ctx.handle, ctx.settings, caller.user, caller.client)

    @router.get("/models", response_model=list[ModelOut], summary="Installed models")
    async def models(request: Request) -> Any:
        with api_errors():
            await ctx.caller(request)
            service = await ctx.service()
            return [model_entry(m) for m in await service.engines.list_models()]

    @router.delete("/models/{name:path}", summary="Delete a model (administrators)")
    async def delete_model(name: str, request: Request) -> dict[str, Any]:
        with api_errors():
            caller = await ctx.caller(request)
            with ctx.edge.audit("/api/v1/models", caller, model=name):
                ctx.edge.check_models(caller)
                name = validation.model_name(name, registries=ctx.settings.registries)
                await (await ctx.service()).delete_model(name, caller.user)
                return {"name": name, "deleted": True}

    @router.get("/conversations", response_model=list[ConversationOut],
                summary="Your conversations, most recent first")
    async def conversations(request: Request) -> Any:
        with api_errors():
            caller = await ctx.caller(request)
            with ctx.edge.audit("/api/v1/conversations", caller):
                service = await ctx.service()
                return [conversation(s) for s in await service.sessions(caller.user)]

    @router.get("/conversations/{conversation_id}", summary="A conversation's messages")
    async def messages(conversation_id: str, request: Request) -> list[dict[str, Any]]:
        with api_errors():
            caller = await ctx.caller(request)
            with ctx.edge.audit("/api/v1/conversation", caller, session_id=conversation_id):
                service = await ctx.service()
                messages = await service.history(conversation_id, caller.user)
                return [message_entry(m) for m in messages]

    @router.delete("/conversations/{conversation_id}", summary="Delete a conversation")
    async def delete_conversation(conversation_id: str, request: Request) -> dict[str, Any]:
        with api_errors():
            caller = await ctx.caller(request)
            with ctx.edge.audit("/api/v1/delete_conversation", caller,
                                session_id=conversation_id):
                await (await ctx.service()).delete_session(conversation_id, caller.user)
                return {"conversation_id": conversation_id, "deleted": True}

    return router


async def answered(started: StartedTurn, stream: bool) -> Any:
    """A started turn's answer: server-sent events, or the whole answer's JSON once done."""
    progress = ChatProgress(started.started.session_id)
    model = started.started.model
    if stream:
        return StreamingResponse(
            streamed(started, progress, model), media_type="text/event-stream",
            headers=SSE_HEADERS)
    stats = None
    with api_errors():
        async for event in started.events():
            if isinstance(event, Done):
                stats = event.stats.as_dict()
            else:
                progress.apply(event)
    answer = frame(progress, model, done=True, stats=stats)  # the last: pending_approval too
    del answer["done"]
    return answer


async def streamed(started: StartedTurn, progress: ChatProgress, model: str
                   ) -> AsyncIterator[bytes]:
    """The SSE body of a streaming `/api/v1/chat` or approval; the last frame has `done`."""
    yield sse(frame(progress, model))
    try:
        async for event in started.events():
            if isinstance(event, Done):
                yield sse(frame(progress, model, done=True, stats=event.stats.as_dict()))
            elif not isinstance(event, Started) and progress.apply(event):
                yield sse(frame(progress, model))
    except Exception as error:  # the status is sent: the error is the stream's last event
        yield sse(api_error(error).body(), event="error")

