"""A stored conversation as a file to download: Markdown to read, JSON to process."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from ollamastack.web.ui.chat_view import interrupted_note
from ollamastack.web.ui.safe_markdown import fenced


def message_dicts(messages: Sequence[AnyMessage]) -> list[dict[str, Any]]:
    """The messages as plain dicts: role and content, plus what each kind adds.

    >>> from langchain_core.messages import HumanMessage
    >>> message_dicts([HumanMessage("2+3?"),
    ...     AIMessage("", tool_calls=[{"name": "calculator", "args": {"e": "2+3"}, "id": "c1"}]),
    ...     ToolMessage("5", tool_call_id="c1", name="calculator"), AIMessage("5.")])
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'role': 'user', 'content': '2+3?'},
     {'role': 'assistant', 'content': '', 'tool_calls': [{'id': 'c1', 'name': 'calculator',
      'args': {'e': '2+3'}}]},
     {'role': 'tool', 'content': '5', 'name': 'calculator', 'tool_call_id': 'c1'},
     {'role': 'assistant', 'content': '5.'}]
    """
    return [message_dict(message) for message in messages]


ROLES = {"human": "user", "ai": "assistant", "tool": "tool", "system": "system"}


def message_dict(message: AnyMessage) -> dict[str, Any]:
    """One stored message as a plain dict: the one serialisation exports and the API share."""
    entry: dict[str, Any] = {
        "role": ROLES.get(message.type, message.type), "content": str(message.text)
    }
    if isinstance(message, AIMessage):
        if thinking := message.additional_kwargs.get("reasoning_content"):
            entry["thinking"] = str(thinking)
        if message.tool_calls:
            entry["tool_calls"] = [
                {"id": c["id"], "name": c["name"], "args": c["args"]} for c in message.tool_calls
            ]
        if reason := message.response_metadata.get("interrupted"):
            entry["interrupted"] = str(reason)
        if model := message.response_metadata.get("model_name"):
            entry["model"] = str(model)
    elif isinstance(message, HumanMessage):
        if files := message.additional_kwargs.get("attachments"):
            entry["files"] = [
                {key: ref.get(key) for key in ("id", "name", "kind", "mime", "size", "pages")}
                for ref in files
            ]
        if sources := message.additional_kwargs.get("sources"):
            entry["sources"] = [dict(source) for source in sources]
    elif isinstance(message, ToolMessage):
        entry["name"] = message.name or ""
        entry["tool_call_id"] = message.tool_call_id
        if message.status == "error":
            entry["is_error"] = True
    return entry


def to_json(
    messages: Sequence[AnyMessage], *, session_id: str, title: str, exported_at: str
) -> str:
    document = {
        "session_id": session_id,
        "title": title,
        "exported_at": exported_at,
        "messages": message_dicts(messages),
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def to_markdown(messages: Sequence[AnyMessage], *, title: str, exported_at: str) -> str:
    """A readable transcript: each turn under headings, tool calls as quoted blocks."""
    lines = [f"# {title or 'Conversation'}", "", f"*Exported from OllamaStack, {exported_at}*"]
    answering = False  # under an "Assistant" heading
    for entry in message_dicts(messages):
        if entry["role"] == "user":
            lines += ["", "## You", "", entry["content"]]
            lines += [f"> Attached `{f['name']}`" for f in entry.get("files", [])]
            answering = False
            continue
        if not answering:
            lines += ["", "## Assistant"]
            answering = True
        if entry["role"] == "tool":
            result = "\n".join(f"> {line}" for line in fenced(entry["content"]).splitlines())
            lines += [">", result]
            continue
        text = entry["content"]
        if reason := entry.get("interrupted"):
            text = f"{text}\n\n{interrupted_note(reason)}" if text else interrupted_note(reason)
        if text:
            lines += ["", text]
        for call in entry.get("tool_calls", []):
            arguments = json.dumps(call["args"], ensure_ascii=False)
            lines += ["", f"> Used tool `{call['name']}` with `{arguments}`"]
    return "\n".join(lines) + "\n"


def file_stem(title: str) -> str:
    """A file name from a conversation title.

    >>> file_stem("What is 2+3? Tell me!"), file_stem("")
    ('what-is-2-3-tell-me', 'conversation')
    """
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-")
    return slug or "conversation"
