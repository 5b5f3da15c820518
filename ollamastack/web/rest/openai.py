"""An OpenAI-compatible door (`/v1/chat/completions`, `/v1/models`) so that any OpenAI client
(the `openai` package, editors, other chat front ends) can talk to the agent; its tools run
here and the reply is the final answer.

OpenAI clients send the whole conversation each time. Unless the client names a stored
conversation (header `X-Conversation-Id`), nothing is kept: the turn runs in a conversation
of its own that is deleted when it ends, and the earlier messages reach the model as the
context of the last one. With the header, the last message is the turn and the stored
conversation is the memory, as on the page.

This door cannot ask a person to approve a tool of `OLLAMASTACK_CONFIRM_TOOLS`, and OpenAI's
protocol has no way to say that a turn waits. A turn whose model calls such a tool therefore
ends there, nothing run, with an ordinary answer (`finish_reason` "stop") whose text says so
(`approval_note`) rather than hanging or running it unasked. In a conversation that is not
kept, that call is deleted with the rest; in a stored one it waits, to be answered on the
page or with `POST /api/v1/conversations/{id}/approval`, and until then another message to it
is refused (409), as on every door.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from ollamastack.errors import InvalidInput
from ollamastack.events import Done, Started
from ollamastack.web.api_schema import ChatProgress, PendingApproval
from ollamastack.web.edge import Caller
from ollamastack.web.rest.context import RestContext
from ollamastack.web.rest.errors import api_error, api_errors
from ollamastack.web.rest.turn import StartedTurn
from ollamastack.web.turns import TurnRequest
from ollamastack.web.uploads import Files, data_url, numbered

CONVERSATION_HEADER = "X-Conversation-Id"


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: StrictStr
    content: StrictStr | list[dict[str, Any]] | None = None


class CompletionBody(BaseModel):
    """The fields of OpenAI's chat-completions request this server uses; others are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: StrictBool = False
    temperature: StrictFloat | None = None
    max_tokens: StrictInt | None = Field(None, ge=1)


def text_of(message: OpenAIMessage) -> str:
    """A message's text: a string, or the text parts of a list of content parts.

    >>> text_of(OpenAIMessage(role="user", content=[{"type": "text", "text": "Hi"}]))
    'Hi'
    """
    if isinstance(message.content, list):
        return "".join(str(p.get("text", "")) for p in message.content if p.get("type") == "text")
    return message.content or ""


def images_of(message: OpenAIMessage, *, limit: int) -> Files:
    """The images of a message's `image_url` parts (data URLs only: nothing is fetched).

    >>> part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}
    >>> images_of(OpenAIMessage(role="user", content=[part]), limit=10)
    (('image.png', b'hi'),)
    """
    if not isinstance(message.content, list):
        return ()
    urls = [part.get("image_url") for part in message.content if part.get("type") == "image_url"]
    urls = [url.get("url") if isinstance(url, dict) else url for url in urls]
    if any(not isinstance(url, str) for url in urls):
        raise InvalidInput('An image_url part must hold a "url" string (a data: URL).')
    return numbered([data_url(url, limit=limit) for url in urls])


def turn_of(body: CompletionBody, conversation_id: str, *, limit: int = 0) -> TurnRequest:
    """The turn the request asks for: the last message (the user's) and, for a conversation
    that is not stored, the earlier ones before it; system messages are the system prompt.

    >>> m = [OpenAIMessage(role="system", content="Be brief."),
    ...      OpenAIMessage(role="user", content="I am Ann."),
    ...      OpenAIMessage(role="assistant", content="Hello Ann."),
    ...      OpenAIMessage(role="user", content="Who am I?")]
    >>> turn = turn_of(CompletionBody(model="m", messages=m), "")
    >>> turn.system_prompt, turn.message.splitlines()[-1]
    ('Be brief.', 'Who am I?')
    >>> turn.message.splitlines()[:3]
    ['Earlier in this conversation:', 'user: I am Ann.', 'assistant: Hello Ann.']
    """
    *earlier, last = body.messages
    if last.role != "user":
        raise InvalidInput("The last of the messages must be the user's (role \"user\").")
    system = "\n\n".join(text_of(m) for m in body.messages if m.role in ("system", "developer"))
    context = [f"{m.role}: {text_of(m)}" for m in earlier if m.role in ("user", "assistant")]
    message = text_of(last)
    if context and not conversation_id:
        message = "\n".join(["Earlier in this conversation:", *context, "", message])
    return TurnRequest(
        message, conversation_id, body.model, body.temperature, system, body.max_tokens,
        files=images_of(last, limit=limit),
    )


def approval_note(pending: PendingApproval, conversation_id: str, kept: bool) -> str:
    """What the answer says when the turn stopped at a tool call that waits for approval.

    >>> approval_note({"name": "calculator", "args": {"expression": "6*7"}}, "c1", False)[:68]
    'The calculator tool (arguments {"expression": "6*7"}) runs only once'
    """
    call = f"The {pending['name']} tool (arguments {json.dumps(pending['args'])})"
    if kept:
        return (f"{call} runs only once you approve it: approve or deny it on the page or with "
                f"POST /api/v1/conversations/{conversation_id}/approval. Until then this "
                "conversation takes no new message.")
    return (f"{call} runs only once you approve it, which this OpenAI-compatible API cannot "
            "ask for, so it did not run. Send the message on the page or to POST /api/v1/chat "
            "to approve it there.")


def with_note(content: str, note: str) -> str:
    """The answer's text with `note` (if any) as a paragraph of its own.

    >>> with_note("Hi.", ""), with_note("Hi.", "Note."), with_note("", "Note.")
    ('Hi.', 'Hi.\\n\\nNote.', 'Note.')
    """
    return f"{content}\n\n{note}" if content and note else content or note


def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def usage(stats: dict[str, Any] | None) -> dict[str, int]:
    prompt = int((stats or {}).get("prompt_tokens", 0))
    completion = int((stats or {}).get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def finish_reason(stats: dict[str, Any] | None) -> str:
    return "length" if (stats or {}).get("done_reason") == "length" else "stop"


def openai_router(ctx: RestContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    @router.get("/models", summary="Installed models, OpenAI's way")
    async def models(request: Request) -> dict[str, Any]:
        with api_errors():
            await ctx.caller(request)
            listed = await (await ctx.service()).engines.list_models()
        data = [{"id": m.name, "object": "model", "created": 0,
                 "owned_by": "embedded" if m.embedded else "ollama"} for m in listed]
        return {"object": "list", "data": data}

    @router.post("/chat/completions", summary="Chat completions, OpenAI's way")
    async def completions(body: CompletionBody, request: Request) -> Any:
        """OpenAI's chat completions, answered by the agent (its tools run here). A tool
        that needs a person's approval does not run: the answer says so and ends there."""
        conversation_id = request.headers.get(CONVERSATION_HEADER, "")
        with api_errors():
            caller = await ctx.caller(request)
            turn = turn_of(body, conversation_id, limit=ctx.settings.upload_bytes)
            started = await StartedTurn.start(
                ctx, "/v1/chat/completions", caller, turn, request.receive)
        session_id = started.started.session_id
        kept = bool(conversation_id)
        headers = {CONVERSATION_HEADER: session_id} if kept else {}
        reply = Reply(ctx, started, caller, kept, body.model)
        if body.stream:
            return StreamingResponse(reply.chunks(), media_type="text/event-stream",
                                     headers=headers | {"Cache-Control": "no-store"})
        with api_errors():
            content, stats = await reply.whole()
        message = {"role": "assistant", "content": content}
        return JSONResponse({
            "id": reply.id, "object": "chat.completion", "created": reply.created,
            "model": body.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(stats),
                         "logprobs": None}],
            "usage": usage(stats),
        }, headers=headers)

    return router


class Reply:
    """One completion's answer, whole or in chunks; a conversation not kept is deleted."""

    def __init__(self, ctx: RestContext, started: StartedTurn, caller: Caller, kept: bool,
                 model: str) -> None:
        self.ctx, self.started, self.caller, self.kept, self.model = (
            ctx, started, caller, kept, model)
        self.progress = ChatProgress(started.started.session_id)
        self.id, self.created = completion_id(), int(time.time())

    async def _forget(self) -> None:
        """Delete the turn's conversation unless it is kept; shielded, as it runs when the
        client went away and Starlette cancels the stream (each await would be cancelled)."""
        if not self.kept:
            with anyio.CancelScope(shield=True):
                service = await self.ctx.service()
                await service.delete_session(self.started.started.session_id, self.caller.user)

    async def whole(self) -> tuple[str, dict[str, Any] | None]:
        stats = None
        try:
            async for event in self.started.events():
                if isinstance(event, Done):
                    stats = event.stats.as_dict()
                elif not isinstance(event, Started):
                    self.progress.apply(event)
        finally:
            await self._forget()
        return with_note(self.progress.content, self.note()), stats

    def note(self) -> str:
        """The `approval_note` of a turn that stopped at a tool call; "" for the others."""
        pending = self.progress.pending
        return "" if pending is None else approval_note(
            pending, self.started.started.session_id, self.kept)

    def _chunk(self, delta: dict[str, Any], reason: str | None = None, **extra: Any) -> bytes:
        data = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason,
                             "logprobs": None}]} | extra
        return f"data: {json.dumps(data)}\n\n".encode()

    async def chunks(self) -> AsyncIterator[bytes]:
        """OpenAI's stream: the role, the text as it comes, the finish with usage, [DONE]."""
        yield self._chunk({"role": "assistant", "content": ""})
        sent = 0
        try:
            async for event in self.started.events():
                if isinstance(event, Done):
                    if note := self.note():  # after what was sent, as `whole` adds it
                        yield self._chunk(
                            {"content": with_note(self.progress.content, note)[sent:]})
                    stats = event.stats.as_dict()
                    yield self._chunk({}, finish_reason(stats), usage=usage(stats))
                elif not isinstance(event, Started) and self.progress.apply(event):
                    if len(self.progress.content) > sent:
                        yield self._chunk({"content": self.progress.content[sent:]})
                        sent = len(self.progress.content)
        except Exception as error:  # the status is sent: the error is the stream's last data
            yield f"data: {json.dumps(api_error(error).openai_body())}\n\n".encode()
        finally:
            await self._forget()
        yield b"data: [DONE]\n\n"
