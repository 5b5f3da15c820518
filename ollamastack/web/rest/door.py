"""The REST API (`/api/v1/...`) and the OpenAI-compatible routes (`/v1/...`), served by a
FastAPI app of their own in front of Gradio's, in the same process and on the same port.

`rest_middleware` is the one hook `web/app.py` calls: `RestDoor` hands these paths to the
REST app (through CORS when origins are set, then a limit on the body's size) and everything
else to Gradio; the security headers and health route of the middleware before it apply to
both. Gradio's own CORS middleware, outside all of ours, leaves these paths alone
(`gradio_patches.leave_cors_to_routes`): their CORS is `OLLAMASTACK_CORS_ORIGINS` alone.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web import gradio_patches
from ollamastack.web.edge import Edge
from ollamastack.web.http import ASGIApp, Receive, Scope, Send
from ollamastack.web.logins import read_body, replaying
from ollamastack.web.proxies import relative_path
from ollamastack.web.rest.context import RestContext
from ollamastack.web.rest.docs import DOCS_PAGE
from ollamastack.web.rest.errors import ApiError, api_error, invalid_body
from ollamastack.web.rest.openai import openai_router
from ollamastack.web.rest.routes import rest_router
from ollamastack.web.rest.slots import TurnSlots

PREFIXES = ("/api/v1/", "/v1/")
OPENAI_PREFIX = "/v1/"
CORS_METHODS = ["GET", "POST", "DELETE"]
# Any header a listed origin's page asks for: Authorization, Content-Type, X-Conversation-Id,
# and the X-Stainless-* headers that OpenAI's JavaScript client sends with every request.
CORS_HEADERS = ["*"]
CORS_EXPOSED = ["X-Conversation-Id", "Retry-After"]


def body_limit(settings: Settings) -> int:
    """The largest body these routes read: room for an OpenAI client's whole conversation of
    messages at the longest allowed length (and their JSON escapes), at least 1 MiB, plus one
    file of the largest size accepted, base64-encoded (an `image_url` data URL). Files past
    that in one request are refused as a whole (413): send them in several messages.

    >>> body_limit(Settings(_env_file=None, max_message_chars=4000, max_upload_mb=20))
    29010602
    """
    return max(2**20, 64 * settings.max_message_chars) + settings.upload_bytes * 4 // 3


def cors_origins(settings: Settings) -> list[str]:
    """The origins whose pages may call these routes.

    >>> cors_origins(Settings(_env_file=None, cors_origins=" https://a.example, http://b:8080,"))
    ['https://a.example', 'http://b:8080']
    """
    return [o.strip() for o in settings.cors_origins.split(",") if o.strip()]


def error_response(request: Request, error: ApiError) -> JSONResponse:
    """The error in the shape the route's clients read: OpenAI's under /v1, else ours."""
    openai = relative_path(request.scope).startswith(OPENAI_PREFIX)
    body = error.openai_body() if openai else error.body()
    return JSONResponse(body, error.status, headers=error.headers)


def build_rest_app(
    settings: Settings, handle: ServiceHandle, edge: Edge, slots: TurnSlots
) -> FastAPI:
    """The FastAPI app of the REST and OpenAI routes, their turns bounded by `slots`."""
    ctx = RestContext(settings, handle, edge, slots)
    app = FastAPI(
        title="OllamaStack API", version="1",
        openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
    )
    app.include_router(rest_router(ctx))
    app.include_router(openai_router(ctx))

    @app.get("/api/v1/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE)

    @app.exception_handler(ApiError)
    async def answer_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def answer_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(request, invalid_body(error))

    @app.exception_handler(StarletteHTTPException)
    async def answer_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        problem = ApiError(error.status_code, kind, f"{request.method} {request.url.path}: "
                           f"{error.detail}.", headers=dict(error.headers or {}))
        return error_response(request, problem)

    @app.exception_handler(Exception)
    async def answer_unexpected(request: Request, error: Exception) -> JSONResponse:
        return error_response(request, api_error(error))

    return app


def with_cors(app: ASGIApp, origins: list[str]) -> ASGIApp:
    """`app` answering CORS for `origins` (preflights included), or for none (no grant)."""
    if not origins:
        return app
    return CORSMiddleware(app, allow_origins=origins, allow_methods=CORS_METHODS,
                          allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED)


class BodyLimit:
    """ASGI middleware: a 413 for a body over `limit` bytes, else the body read at once."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        too_large = not declared.isdigit() or int(declared) > self.limit
        body = None if too_large else await read_body(receive, self.limit)
        if body is None:
            error = ApiError(413, "too_large", f"The body is larger than {self.limit:,} bytes.")
            openai = relative_path(scope).startswith(OPENAI_PREFIX)
            await _json(send, 413, error.openai_body() if openai else error.body())
            return
        await self.app(scope, replaying(body, receive), send)


class RestDoor:
    """ASGI middleware: the REST and OpenAI paths go to `rest`, the rest to Gradio."""

    def __init__(self, app: ASGIApp, rest: ASGIApp) -> None:
        self.app = app
        self.rest = rest

    @staticmethod
    def answers_cors(scope: Scope) -> bool:
        """Whether `rest` answers this request's CORS itself (see `gradio_patches`)."""
        return scope["type"] == "http" and relative_path(scope).startswith(PREFIXES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (self.rest if self.answers_cors(scope) else self.app)(scope, receive, send)


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def rest_middleware(
    settings: Settings, handle: ServiceHandle, edge: Edge, slots: TurnSlots | None = None
) -> list[Middleware]:
    """The hook for `WebApp.app_kwargs`: the REST and OpenAI routes on the app's port, at most
    `OLLAMASTACK_CONCURRENCY` of their turns answering at once (or as `slots` say)."""
    gradio_patches.leave_cors_to_routes()
    slots = slots or TurnSlots(settings.concurrency)
    rest = BodyLimit(build_rest_app(settings, handle, edge, slots), body_limit(settings))
    return [Middleware(RestDoor, rest=with_cors(rest, cors_origins(settings)))]
