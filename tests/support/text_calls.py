"""Tool calls as small models write them in text, each in the shape its chat template (or the
Ollama issue that reported it) shows, for the test server to stream token by token."""

from __future__ import annotations

import json
from typing import Any


def text_call(shape: str, name: str, args: dict[str, Any]) -> str:
    """The text a model of that family answers instead of a native call."""
    as_json = json.dumps(args)
    return {
        # Llama 3.2's JSON tool format ("Respond in the format {"name": ..., "parameters": ...}")
        "llama-json": f'{{"name": "{name}", "parameters": {as_json}}}',
        # Llama 3.1 built-in style with its python tag before the JSON
        "python-tag": f'<|python_tag|>{{"name": "{name}", "parameters": {as_json}}}',
        # Llama 3.2 1B/3B pythonic calls (Meta's prompt format docs)
        "pythonic": f"[{name}({', '.join(f'{k}={json.dumps(v)}' for k, v in args.items())})]",
        # Qwen 2.5 / Hermes templates (ollama issue 11662)
        "hermes": f'<tool_call>\n{{"name": "{name}", "arguments": {as_json}}}\n</tool_call>',
        # Mistral v3 (ollama issue 16686)
        "mistral": f'[TOOL_CALLS] [{{"name": "{name}", "arguments": {as_json}}}]',
        # Mistral's newer tokenizer (v11): name, then [ARGS]
        "mistral-args": f"[TOOL_CALLS]{name}[ARGS]{as_json}",
        # Inside a fenced block (ollama issue 18530)
        "fenced": f'```json\n{{"name": "{name}", "arguments": {as_json}}}\n```',
        # A JSON list of calls (ollama issue 17274)
        "json-list": f'[{{"name": "{name}", "arguments": {as_json}}}]',
    }[shape]


SHAPES = ["llama-json", "python-tag", "pythonic", "hermes", "mistral", "mistral-args", "fenced",
          "json-list"]
