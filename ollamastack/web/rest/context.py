"""What the REST and OpenAI routes share: the chat service, the `Edge`, the turn pipeline,
the bound on turns answering at once, and who is calling (a bearer token's user when login
is on)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.storage.tokens import TokenStore
from ollamastack.web.edge import Caller, Edge
from ollamastack.web.rest.errors import unauthorized
from ollamastack.web.rest.slots import TurnSlots
from ollamastack.web.turns import TurnPipeline

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService


def tokens_of(service: ChatService) -> TokenStore:
    """The token store, in the store that also holds the session index."""
    return TokenStore(service.memory.store)  # one database for both


@dataclass
class RestContext:
    settings: Settings
    handle: ServiceHandle
    edge: Edge
    slots: TurnSlots
    turns: TurnPipeline = field(init=False)

    def __post_init__(self) -> None:
        self.turns = TurnPipeline(self.handle, self.edge)

    async def service(self) -> ChatService:
        return await self.handle.get()

    async def caller(self, request: Request) -> Caller:
        """Who sends `request`: without login anyone (as on the Gradio API); with login the
        user of a valid `Authorization: Bearer` token, else a 401."""
        client = request.client.host if request.client else ""
        if not self.settings.logins:
            return Caller("", client)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized(
                "This app has logins: send `Authorization: Bearer <token>` with an API token "
                "made on the page (API tokens) or with /create_api_token."
            )
        user = await tokens_of(await self.service()).user_of(token.strip())
        if not user:
            raise unauthorized("The API token is unknown, revoked or expired.")
        return Caller(user, client)
