"""The named endpoints that manage a logged-in user's API tokens (`/create_api_token`,
`/api_tokens`, `/revoke_api_token`); the page's "API tokens" section calls the same methods.
"""

# No `from __future__ import annotations`: Gradio reads the annotations at runtime.

from typing import Any, TypedDict

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web.edge import Edge, caller_of, user_errors
from ollamastack.web.rest.context import tokens_of


class TokenEntry(TypedDict):
    name: str
    created_at: float
    expires_at: float | None
    last_used: float | None


class TokenEndpoints:
    """Each method acts for the request's login; the audit log gets the name, never a token."""

    def __init__(self, handle: ServiceHandle, edge: Edge) -> None:
        self.handle = handle
        self.edge = edge

    async def create_api_token(
        self, name: str, days: float = 0, request: gr.Request | None = None
    ) -> dict:
        """Make an API token for the REST and OpenAI-compatible routes (send it as
        `Authorization: Bearer <token>`). The token is shown only in this answer.

        Args:
            name: A name to tell it apart (1 to 64 letters, digits, spaces, '_', '.', '-').
            days: Days until it expires; 0: never.
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/create_api_token", caller):
            tokens = tokens_of(await self.handle.get())
            token = await tokens.create(caller.user, name, days)
            return {"name": name.strip(), "token": token}

    async def api_tokens(self, request: gr.Request | None = None) -> list[TokenEntry]:
        """Your API tokens, newest first: name, when made, when they expire, last used
        (Unix times; null: never). The tokens themselves are not kept."""
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/api_tokens", caller):
            tokens = tokens_of(await self.handle.get())
            return [TokenEntry(**vars(info)) for info in await tokens.list(caller.user)]

    async def revoke_api_token(self, name: str, request: gr.Request | None = None) -> dict:
        """Revoke one of your API tokens: it is refused from now on.

        Args:
            name: The token's name, as /api_tokens lists it.
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/revoke_api_token", caller):
            await tokens_of(await self.handle.get()).revoke(caller.user, name)
            return {"name": name.strip(), "revoked": True}


def token_endpoints(settings: Settings, handle: ServiceHandle, edge: Edge) -> list[Any]:
    """The three endpoints, for `register_api`'s list; none without logins (tokens stand
    for a login, and the REST routes are open then, like the Gradio API)."""
    if not settings.logins:
        return []
    api = TokenEndpoints(handle, edge)
    return [api.create_api_token, api.api_tokens, api.revoke_api_token]
