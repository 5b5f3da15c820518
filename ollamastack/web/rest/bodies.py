"""`POST /api/v1/chat`'s two bodies: JSON, or multipart/form-data when files come along (the
same fields as form fields, each file a part named `files`). Both are checked by the same
pydantic model, so both are refused with the same words."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from ollamastack.web.rest.errors import ApiError, invalid_body
from ollamastack.web.uploads import Files

Body = TypeVar("Body", bound=BaseModel)
FILE_FIELD = "files"


def openapi_bodies(model: type[BaseModel]) -> dict[str, Any]:
    """The route's request body for the OpenAPI page: JSON, or the same as form fields."""
    schema = model.model_json_schema()
    form = {
        "type": "object",
        "properties": schema["properties"] | {
            FILE_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}},
        "required": schema.get("required", []),
    }
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema},
        "multipart/form-data": {"schema": form},
    }}}


async def read_body(request: Request, model: type[Body], *, limit: int, max_files: int
                    ) -> tuple[Body, Files]:
    """The body as `model`, and the files of a multipart body (none for JSON)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return await _multipart(request, model, limit=limit, max_files=max_files)
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "invalid_request", "The body is empty: send a JSON object.")
    try:
        value = json.loads(raw)
    except ValueError as error:  # FastAPI's own words for a body it cannot parse
        reason = getattr(error, "msg", str(error))
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {reason}.") from None
    try:
        return model.model_validate(value, from_attributes=True), ()  # as FastAPI validates
    except ValidationError as error:
        raise _refusal(error) from None


async def _multipart(request: Request, model: type[Body], *, limit: int, max_files: int
                     ) -> tuple[Body, Files]:
    # one part over the limit is enough to refuse the message: the core says which file
    form = await request.form(max_files=max_files + 1, max_fields=64, max_part_size=2**20)
    try:
        fields: dict[str, Any] = {}
        files = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != FILE_FIELD:
                    raise ApiError(400, "invalid_request",
                                   f"{key}: files go in parts named {FILE_FIELD}.", key)
                files.append((value.filename or "", await value.read(limit + 1)))
            else:
                fields[key] = _form_value(model, key, value)
        try:
            return model.model_validate(fields), tuple(files)
        except ValidationError as error:
            raise _refusal(error) from None
    finally:
        await form.close()


def _form_value(model: type[BaseModel], key: str, value: str) -> Any:
    """A form field as its JSON value where the model wants a number or a boolean.

    >>> from pydantic import BaseModel
    >>> class B(BaseModel):
    ...     t: float | None = None
    ...     s: bool = False
    ...     m: str = ""
    >>> _form_value(B, "t", "0.5"), _form_value(B, "s", "true"), _form_value(B, "m", "1")
    (0.5, True, '1')
    """
    field = model.model_fields.get(key)
    if field is None or field.annotation is str:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # pydantic names the field and what it wants


def _refusal(error: ValidationError) -> ApiError:
    errors = [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
    return invalid_body(RequestValidationError(errors))
