"""The bare relay: the least a Gradio app over Ollama costs, the benchmark's floor.

`python bench/relay.py --ollama URL --port N` serves `/relay`, one `gr.api` async generator
that forwards the official `ollama` client's chat stream token by token (answering a tool call
itself when the model asks for one). No agent, no storage, no UI: whatever OllamaStack costs
above this is ours. `stream_reply` is also what the Direct side runs. `/relay_frames` is the
same stream coalesced to 20 updates a second, to show what coalescing saves.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from typing import Any

SYSTEM_PROMPT = "You are a helpful assistant. Answer concisely."
FRAME_SECONDS = 0.05
TOOLS = [{
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression exactly and return the result.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}]


async def in_frames(pieces: AsyncIterator[str], seconds: float) -> AsyncIterator[str]:
    """The pieces joined into one update per `seconds` (the first at once): the coalescing
    the benchmark recommends, here to show what it saves. A pause holds the tail back until the
    next piece or the end; a production version flushes on a timer."""
    pending, sent = "", 0.0
    async for piece in pieces:
        pending += piece
        if time.monotonic() - sent >= seconds:
            yield pending
            pending, sent = "", time.monotonic()
    if pending:
        yield pending


async def stream_reply(client: Any, model: str, messages: list[Any]) -> AsyncIterator[str]:
    """The answer's text pieces; a tool call is answered ("42") and the model asked again."""
    while True:
        calls: list[Any] = []
        async for part in await client.chat(model, messages, tools=TOOLS, stream=True):
            if part.message.content:
                yield part.message.content
            calls += part.message.tool_calls or []
        if not calls:
            return
        messages = [
            *messages,
            {"role": "assistant", "content": "", "tool_calls": calls},
            *({"role": "tool", "content": "42", "tool_name": c.function.name} for c in calls),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ollama", required=True, help="Ollama server URL")
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args()

    import gradio as gr
    import ollama

    client = ollama.AsyncClient(host=args.ollama)

    def chat(message: str, model: str) -> AsyncIterator[str]:
        asked = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": message}]
        return stream_reply(client, model, asked)

    async def relay(message: str, model: str) -> AsyncIterator[str]:
        async for text in chat(message, model):
            yield text

    async def relay_frames(message: str, model: str) -> AsyncIterator[str]:
        async for text in in_frames(chat(message, model), FRAME_SECONDS):
            yield text

    with gr.Blocks() as demo:
        gr.api(relay, api_name="relay")  # the floor: one update per token
        gr.api(relay_frames, api_name="relay_frames")  # the fix shown: 20 updates a second
    demo.queue(default_concurrency_limit=None)  # never Gradio's default of one at a time
    demo.launch(server_name="127.0.0.1", server_port=args.port, quiet=True, show_error=True)


if __name__ == "__main__":
    main()
