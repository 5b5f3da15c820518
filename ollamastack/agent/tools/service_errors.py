"""What a network tool (weather, web search) tells the model when its service fails: one
readable line that says which service and what to do, never a traceback."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

FAILURES = (httpx.HTTPError, ValidationError)  # what `service_error` explains


def service_error(
    service: str, error: Exception, timeout: float, *, hints: dict[int, str] | None = None
) -> str:
    """The tool's answer for `error` from `service` ("the weather service"); `hints`: a
    word to add after some HTTP statuses.

    >>> service_error("the search service", httpx.ReadTimeout("slow"), 5)
    'Error: the search service did not answer within 5 seconds; try again later.'
    >>> service_error("the weather service", httpx.ConnectError(""), 5)
    'Error: the weather service could not be reached (ConnectError); try again later.'
    """
    if isinstance(error, httpx.TimeoutException):
        return (f"Error: {service} did not answer within {timeout:g} seconds; "
                "try again later.")
    if isinstance(error, httpx.HTTPStatusError):
        status = error.response.status_code
        hint = (hints or {}).get(status, "")
        return f"Error: {service} answered with HTTP {status}{hint}; try again later."
    if isinstance(error, httpx.HTTPError):
        reason = str(error) or type(error).__name__
        return f"Error: {service} could not be reached ({reason}); try again later."
    return f"Error: {service} sent an unexpected answer; try again later."
