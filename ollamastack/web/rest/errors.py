"""The one place where the core's typed errors become HTTP statuses for the REST and OpenAI
routes, and the error bodies each of them sends. Tracebacks go to the log, never to a client:
an unexpected error is a 500 carrying an id that finds it in the log.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.exceptions import RequestValidationError

from ollamastack.errors import (
    DatabaseUnavailable,
    EmbeddedError,
    InvalidInput,
    ModelNotFound,
    NotAllowed,
    OllamaConnectionLost,
    OllamaError,
    OllamaStackError,
    OllamaTimeout,
    OllamaUnavailable,
    RateLimited,
    SessionBusy,
    SessionNotFound,
    TooManyTurns,
)

log = logging.getLogger(__name__)

# Each typed error's status and `type`, the first match winning.
STATUSES: list[tuple[type[Exception], int, str]] = [
    (InvalidInput, 400, "invalid_request"),
    (NotAllowed, 403, "forbidden"),
    (SessionNotFound, 404, "not_found"),
    (ModelNotFound, 404, "model_not_found"),
    (SessionBusy, 409, "conversation_busy"),
    (RateLimited, 429, "rate_limited"),
    (TooManyTurns, 429, "too_many_turns"),
    (OllamaError, 502, "ollama_error"),
    (OllamaConnectionLost, 502, "ollama_error"),
    (OllamaUnavailable, 503, "unavailable"),
    (DatabaseUnavailable, 503, "unavailable"),
    (EmbeddedError, 503, "unavailable"),
    (OllamaTimeout, 504, "timeout"),
]
# Which request field an `InvalidInput` of the core is about, by the words it names.
FIELDS = [
    ("The message ", "message"),
    ("The session id", "conversation_id"),
    ("The temperature", "temperature"),
    ("The system prompt", "system_prompt"),
    ("model name", "model"),
    ("model registry", "model"),
    ("token name", "name"),
    ("The expiry", "days"),
]


class ApiError(Exception):
    """An error answer: its status, `type`, readable message and the field it is about."""

    def __init__(
        self, status: int, type: str, message: str, field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.field = status, type, message, field
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        """`{"error": {"type", "message", "field"?}}`, the REST routes' error body."""
        error: dict[str, object] = {"type": self.type, "message": self.message}
        return {"error": error | ({"field": self.field} if self.field else {})}

    def openai_body(self) -> dict[str, object]:
        """The OpenAI API's error object, which its clients read."""
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        code = self.type if self.type != "invalid_request" else None
        return {"error": {"message": self.message, "type": kind, "param": self.field,
                          "code": code}}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def field_of(message: str) -> str | None:
    """The request field an `InvalidInput` names.

    >>> field_of("The temperature must be a number from 0 to 2."), field_of("Odd.")
    ('temperature', None)
    """
    return next((name for words, name in FIELDS if words in message), None)


def api_error(error: BaseException) -> ApiError:
    """`error` as the answer a client gets; an unexpected one is logged with an id."""
    if isinstance(error, ApiError):
        return error
    for kind, status, name in STATUSES:
        if isinstance(error, kind):
            text = str(error)
            headers = (
                {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else {}
            )
            where = field_of(text) if status == 400 else None
            return ApiError(status, name, text, where, headers)
    if isinstance(error, OllamaStackError):  # a typed error meant to be read, of no class above
        return ApiError(500, "server_error", str(error))
    error_id = secrets.token_hex(6)
    log.error("unexpected error %s at the REST API", error_id, exc_info=error)
    return ApiError(
        500, "server_error",
        f"Something went wrong on the server (error id {error_id}); see its log.",
    )


def invalid_body(error: RequestValidationError) -> ApiError:
    """Pydantic's verdict on a body's shape: the first problem, naming its field."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"][1:]) or None  # after "body"
    if first["type"] == "json_invalid":
        reason = (first.get("ctx") or {}).get("error") or first["msg"]
        return ApiError(400, "invalid_json", f"The body is not valid JSON: {reason}.")
    if first["type"] == "missing" and where is None:
        return ApiError(400, "invalid_request", "The body is empty: send a JSON object.")
    text = first["msg"].removeprefix("Value error, ")
    return ApiError(400, "invalid_request", f"{where or 'The body'}: {text}.", where)


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn whatever the block raises into an `ApiError` (the app's handler answers it)."""
    try:
        yield
    except ApiError:
        raise
    except Exception as error:
        raise api_error(error) from None
