"""The page's "API tokens" section: a logged-in user makes, sees and revokes their tokens.

It calls the same methods as the named endpoints (`TokenEndpoints`), so the page and the API
make, list and refuse tokens alike. `web/ui/layout.py` places it (one call inside a tab).
"""

# No `from __future__ import annotations`: Gradio reads the handlers' annotations at runtime.

from datetime import UTC, datetime

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web.edge import Edge, user_errors
from ollamastack.web.rest.token_endpoints import TokenEndpoints

HEADERS = ["Name", "Created", "Expires", "Last used"]


def when(moment: float | None, never: str = "never") -> str:
    """A time as the table shows it (UTC, to the minute).

    >>> when(0.0), when(None)
    ('1970-01-01 00:00 UTC', 'never')
    """
    if moment is None:
        return never
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


class TokenSection:
    """The section's handlers, over the named endpoints' methods."""

    def __init__(self, handle: ServiceHandle, edge: Edge) -> None:
        self.api = TokenEndpoints(handle, edge)

    async def rows(self, request: gr.Request) -> list[list[str]]:
        with user_errors(html=True):
            tokens = await self.api.api_tokens(request)
        return [[t["name"], when(t["created_at"]), when(t["expires_at"]),
                 when(t["last_used"])] for t in tokens]

    async def create(self, name: str, days: float | None, request: gr.Request):
        with user_errors(html=True):
            made = await self.api.create_api_token(name, days or 0, request)
        shown = gr.Textbox(value=made["token"], visible=True)
        return shown, await self.rows(request), ""

    async def revoke(self, name: str, request: gr.Request):
        with user_errors(html=True):
            await self.api.revoke_api_token(name, request)
        return await self.rows(request), ""


def build_token_section(blocks: gr.Blocks, settings: Settings, handle: ServiceHandle,
                        edge: Edge) -> None:
    """Lay out the section inside the open `blocks` (in a tab of its own)."""
    if not settings.logins:
        gr.Markdown(
            "This app has no logins, so its REST API (`/api/v1`) and OpenAI-compatible "
            "routes (`/v1`) need no token. Set `OLLAMASTACK_AUTH` to require one.",
            elem_id="api-tokens-off",
        )
        return
    section = TokenSection(handle, edge)
    gr.Markdown(
        "Tokens let scripts and OpenAI clients use the API as you: send "
        "`Authorization: Bearer <token>`. A token is shown once, when it is made. "
        "[API docs](api/v1/docs)"
    )
    with gr.Row(equal_height=True):
        name = gr.Textbox(label="Name", placeholder="laptop script", scale=3,
                          elem_id="token-name")
        days = gr.Number(label="Expires after (days, 0: never)", value=0, minimum=0,
                         maximum=3650, scale=2, elem_id="token-days")
        create = gr.Button("Create token", variant="primary", scale=1, elem_id="create-token")
    made = gr.Textbox(label="Your new token (copy it now: it is not shown again)",
                      visible=False, buttons=["copy"], elem_id="new-token", interactive=False)
    table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, elem_id="token-list")
    with gr.Row(equal_height=True):
        revoke_name = gr.Textbox(label="Token to revoke", scale=3, elem_id="revoke-name")
        revoke = gr.Button("Revoke", variant="stop", scale=1, elem_id="revoke-token")
    create.click(section.create, [name, days], [made, table, name], api_visibility="private")
    revoke.click(section.revoke, [revoke_name], [table, revoke_name],
                 api_visibility="private")
    blocks.load(section.rows, None, table, api_visibility="private")
