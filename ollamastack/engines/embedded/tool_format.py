"""Tool calls for the embedded model, in the Hermes `<tool_call>` format, done in Python.

The shipped GGUF's chat template knows nothing of tools, and llama.cpp's own parser depends
on the template; so we describe the tools in the system prompt, write past calls and
results as text, and find calls in the answer ourselves. A call that does not parse never
raises: the answer becomes the raw text plus a short note.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


def tools_prompt(tools: Iterable[dict[str, Any]]) -> str:
    """The system prompt section that offers `tools` (OpenAI tool dicts)."""
    signatures = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{signatures}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:\n"
        f'{OPEN}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n{CLOSE}'
    )


def call_text(name: str, args: dict[str, Any]) -> str:
    """A past tool call, as the model would have written it.

    >>> print(call_text("calculator", {"expression": "2+2"}))
    <tool_call>
    {"name": "calculator", "arguments": {"expression": "2+2"}}
    </tool_call>
    """
    body = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
    return f"{OPEN}\n{body}\n{CLOSE}"


def result_text(content: str) -> str:
    return f"<tool_response>\n{content}\n</tool_response>"


def parse_calls(raw: str, names: set[str]) -> tuple[list[dict[str, Any]], str]:
    """The tool calls in `raw` (text from the first `<tool_call>` on), or why they are unusable.

    >>> parse_calls('<tool_call>\\n{"name": "calculator", "arguments": {"expression": "1+1"}}'
    ...             '\\n</tool_call>', {"calculator"})[0][0]["args"]
    {'expression': '1+1'}
    >>> parse_calls('<tool_call>{"name": "calculator", "arguments": {"expr', {"calculator"})
    ([], 'its call was not valid JSON')
    >>> parse_calls('<tool_call>{"name": "search", "arguments": {}}</tool_call>', {"calculator"})
    ([], "there is no tool named 'search'")
    >>> parse_calls('<tool_call>{"name": "calculator", "arguments": "[1]"}', {"calculator"})
    ([], 'the arguments of calculator were not an object')
    """
    calls = []
    for block in _BLOCK.findall(raw):
        try:
            data = json.loads(block.strip())
        except json.JSONDecodeError:
            return [], "its call was not valid JSON"
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str):
            return [], "its call named no tool"
        if name not in names:
            return [], f"there is no tool named {name!r}"
        args = data.get("arguments", data.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except json.JSONDecodeError:
                args = None
        if not isinstance(args, dict):
            return [], f"the arguments of {name} were not an object"
        calls.append({"name": name, "args": args, "id": f"call_{secrets.token_hex(8)}"})
    return calls, ""


class ToolCallSplitter:
    """Splits streamed answer text from a trailing tool call.

    Text streams on until `<tool_call>` appears (a possible start of it is held back);
    from there on everything is kept for `finish`.

    >>> s = ToolCallSplitter({"calculator"})
    >>> [s.feed(t) for t in ("I will", " compute.<tool", '_call>{"name": "calculator", ',
    ...                      '"arguments": {"expression": "6*7"}}</tool_call>')]
    ['I will', ' compute.', '', '']
    >>> text, calls = s.finish(); text, [(c["name"], c["args"]) for c in calls]
    ('', [('calculator', {'expression': '6*7'})])
    >>> s = ToolCallSplitter({"calculator"})
    >>> s.feed("Sure <tool_call>{oops")
    'Sure '
    >>> s.finish()
    ('<tool_call>{oops\\n\\n(The model tried to call a tool, but its call was not valid JSON.)', [])
    >>> s = ToolCallSplitter(set()); s.feed("<tool_call>"), s.finish()
    ('<tool_call>', ('', []))
    """

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.held = ""
        self.raw: str | None = None  # from `<tool_call>` on, once seen

    def feed(self, text: str) -> str:
        """The part of `text` that is answer and can be shown now."""
        if not self.names:
            return text
        if self.raw is not None:
            self.raw += text
            return ""
        text, self.held = self.held + text, ""
        if (start := text.find(OPEN)) >= 0:
            self.raw = text[start:]
            return text[:start]
        for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
            if text.endswith(OPEN[:size]):
                self.held = text[-size:]
                return text[:-size]
        return text

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """The rest of the answer text, and the tool calls (none when they were malformed)."""
        if self.raw is None:
            return self.held, []
        calls, problem = parse_calls(self.raw, self.names)
        if problem:
            return f"{self.raw}\n\n(The model tried to call a tool, but {problem}.)", []
        return "", calls
