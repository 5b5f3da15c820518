"""Tool calls that small models write as text, read back into real calls.

Small local models often answer with the call itself instead of Ollama's `tool_calls` (Ollama
issues 11662, 16686, 18530, 17274). The shapes they use, each as the models' own chat
templates write them:

- a bare JSON object `{"name": ..., "parameters"|"arguments": {...}}`, or a JSON list of them
  (Llama 3.x's JSON tool format; Qwen and others when their template is missing);
- Hermes / Qwen `<tool_call>{...}</tool_call>`, once or several times;
- Mistral `[TOOL_CALLS][{...}]` (and the newer `[TOOL_CALLS]name[ARGS]{...}`);
- Llama 3.x pythonic `[calculator(expression="12*7")]`, and `<|python_tag|>` before a call;
- any of these inside a ```json fenced block.

Only a whole answer that is such a call, naming a tool offered in that turn with arguments
that validate against its schema, is read as one; a call quoted inside prose stays text.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

Call = tuple[str, dict[str, Any]]  # a tool's name and its arguments

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(?P<body>.*?)\n?```$", re.S)
_TAGGED = re.compile(r"<tool_call>\s*(?P<body>.*?)\s*</tool_call>", re.S)
_MISTRAL_NAMED = re.compile(
    r"^\[TOOL_CALLS\]\s*(?P<name>[\w.-]+)\s*\[ARGS\]\s*(?P<args>\{.*\})$", re.S
)
# What an answer that is about to be a call starts with: held back while it streams.
CALL_STARTS = ("{", "[", "<tool_call>", "<|python_tag|>", "```")


def may_become_call(text: str) -> bool:
    """Whether streamed text could still turn out to be a call (so it is held back). A fenced
    block is held only while it may be JSON, so code answers still stream.

    >>> may_become_call('{"na'), may_become_call("<tool"), may_become_call("  [calc")
    (True, True, True)
    >>> may_become_call("The answer is 84."), may_become_call("")
    (False, True)
    >>> may_become_call("```python"), may_become_call("```json\\n{"), may_become_call("```py\\nx")
    (False, True, False)
    """
    start = text.lstrip()
    if start.startswith("```"):
        language, newline, body = start[3:].partition("\n")
        if not "json".startswith(language.strip().lower()):
            return False
        return not newline or not body.strip() or body.lstrip()[0] in "{[<"
    return any(start.startswith(s) or s.startswith(start) for s in CALL_STARTS)


def read_calls(text: str, schemas: Mapping[str, type[BaseModel] | None]) -> list[Call] | None:
    """The calls `text` is, if the whole of it is calls to the offered tools, else None.

    `schemas` maps each offered tool's name to its arguments' model (None: any object).

    >>> tools = {"calculator": None}
    >>> read_calls('{"name": "calculator", "parameters": {"expression": "12*7"}}', tools)
    [('calculator', {'expression': '12*7'})]
    >>> read_calls('<tool_call>\\n{"name": "calculator", "arguments": {"expression": "1+1"}}'
    ...            '\\n</tool_call>', tools)
    [('calculator', {'expression': '1+1'})]
    >>> read_calls('[calculator(expression="12*7")]', tools)
    [('calculator', {'expression': '12*7'})]
    >>> read_calls('[TOOL_CALLS][{"name": "calculator", "arguments": {"expression": "2"}}]', tools)
    [('calculator', {'expression': '2'})]
    >>> read_calls('Call it like {"name": "calculator", "parameters": {}}', tools) is None
    True
    >>> read_calls('{"name": "rm_rf", "parameters": {}}', tools) is None
    True
    """
    for candidate in _candidates(text.strip()):
        calls = _calls_in(candidate)
        if calls and all(_valid(name, args, schemas) for name, args in calls):
            return calls
    return None


def _candidates(text: str) -> list[Any]:
    """The parsed forms `text` may be: JSON values, or pythonic calls as (name, args)."""
    if fenced := _FENCE.match(text):
        text = fenced["body"].strip()
    text = text.removeprefix("<|python_tag|>").strip()
    if named := _MISTRAL_NAMED.match(text):
        parsed = _json(named["args"])
        return [{"name": named["name"], "arguments": parsed}] if parsed is not None else []
    text = text.removeprefix("[TOOL_CALLS]").strip()
    tagged = _TAGGED.findall(text)
    if tagged and not _TAGGED.sub("", text).strip():
        values = [_json(body) for body in tagged]
        return [values] if all(v is not None for v in values) else []
    found = []
    if (value := _json(text)) is not None:
        found.append(value)
    if (pythonic := _pythonic(text)) is not None:
        found.append(pythonic)
    return found


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


def _pythonic(text: str) -> list[Call] | None:
    """`[f(a=1), g(b="x")]` or `f(a=1)` (also `f.call(a=1)`), arguments literals only."""
    if not re.match(r"^\[?\s*[A-Za-z_][\w.]*\s*\(", text):
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = tree.elts if isinstance(tree, ast.List) else [tree]
    calls: list[Call] = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "call":
            func = func.value
        if not isinstance(func, ast.Name):
            return None
        try:
            args = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            return None
        calls.append((func.id, args))
    return calls


def _calls_in(value: Any) -> list[Call] | None:
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return value  # pythonic, already (name, args)
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("function"), dict):
            item = item["function"]  # OpenAI's shape, as some models copy it
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        if set(item) - {"name", "parameters", "arguments", "type", "id"}:
            return None
        args = item.get("parameters", item.get("arguments", {}))
        if isinstance(args, str):
            args = _json(args)
        if not isinstance(args, dict):
            return None
        calls.append((item["name"], args))
    return calls or None


def _valid(name: str, args: dict[str, Any], schemas: Mapping[str, Any]) -> bool:
    """`name` is offered and `args` are what its schema takes (no unknown keys)."""
    if name not in schemas:
        return False
    schema = schemas[name]
    if schema is None:
        return True
    if set(args) - set(schema.model_fields):
        return False
    try:
        schema.model_validate(args)
    except ValidationError:
        return False
    return True
