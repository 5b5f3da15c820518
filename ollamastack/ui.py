"""The chat page (Gradio Blocks)."""

from __future__ import annotations

import gradio as gr

from ollamastack.core import ServiceHandle
from ollamastack.settings import Settings


def build_ui(settings: Settings, service: ServiceHandle) -> None:
    """Lay out the page inside the open Blocks (being written: see issue 4)."""
    gr.Markdown("# OllamaStack")
