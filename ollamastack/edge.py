"""Where the core meets Gradio: who is asking, and errors a client can read."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

from ollamastack.errors import OllamaStackError

log = logging.getLogger(__name__)


def user_of(request: gr.Request | None) -> str:
    """The logged-in user, or "" when login is off (everyone shares one space)."""
    return (getattr(request, "username", None) or "") if request is not None else ""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn our typed errors into `gr.Error`, the only kind whose text reaches a client."""
    try:
        yield
    except OllamaStackError as error:
        raise gr.Error(str(error), print_exception=False) from None
    except gr.Error:
        raise
    except Exception as error:
        log.exception("unexpected error at the edge")
        raise gr.Error(
            f"Something went wrong on the server ({type(error).__name__}); see its log."
        ) from None
