"""What the named API sends: typed dicts, and the pure conversions from the service into them.

The TypedDicts are the contract clients are written against; Gradio also turns them into
the output types on the "Use via API" page.
"""

# No `from __future__ import annotations`: Gradio reads these classes' annotations at runtime.

from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from ollamastack.events import (
    ApprovalPending,
    Event,
    Sources,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolResult,
    answered_call,
)

if TYPE_CHECKING:  # LangChain and LangGraph load on first use, not at start-up
    from langchain_core.messages import AnyMessage

    from ollamastack.agent.branches import BranchInfo
    from ollamastack.agent.toolbox import ToolInfo
    from ollamastack.engines.types import ModelInfo, PullProgress
    from ollamastack.storage.memory import SessionInfo
    from ollamastack.storage.search import Found



class ToolCallInfo(TypedDict):
    name: str
    args: dict[str, Any]
    result: str | None


class PendingApproval(TypedDict):
    name: str
    args: dict[str, Any]


class SourceInfo(TypedDict):
    file: str
    page: int | None
    text: str  # the passage found for the question; empty for a document read whole


class ChatChunk(TypedDict):
    session_id: str
    content: str
    thinking: str
    tool_calls: list[ToolCallInfo]
    done: bool
    stats: dict[str, Any] | None
    # only in the last chunk of a turn that waits for the user's yes (/approve_tool)
    pending_approval: NotRequired[PendingApproval]
    # the conversation's documents the answer drew on, once there are any
    sources: NotRequired[list[SourceInfo]]


class ToolEntry(TypedDict):
    name: str  # empty for an MCP server that was never reached
    server: str  # the MCP server; empty for a built-in tool
    description: str
    reachable: bool


class ModelEntry(TypedDict):
    name: str
    size: int
    parameter_size: str
    quantization: str
    capabilities: list[str]
    embedded: bool  # runs inside the app (llama.cpp), not in Ollama


class HealthInfo(TypedDict):
    status: Literal["ok", "unavailable"]
    ollama_url: str
    ollama_version: str
    models: int
    default_model: str  # what a chat without a model uses: the embedded one while Ollama can't
    embedded_model: str  # the embedded model's name; empty when it is off or not installed


class SessionEntry(TypedDict):
    session_id: str
    title: str
    created_at: float
    updated_at: float


class SearchEntry(TypedDict):
    session_id: str
    title: str
    snippet: str  # plain text around the matched words (not HTML)
    message_index: int  # the matching message's index in /history


class RenamedSession(TypedDict):
    session_id: str
    title: str


class PullStatus(TypedDict):
    status: str
    completed: int
    total: int


class ChatProgress:
    """The answer so far of one `/chat` turn, as the dicts the endpoint streams.

    Each chunk is a new dict, and `tool_calls` a new list whenever it changes: Gradio keeps
    the previous chunk to send only the difference, so nothing it holds may be mutated.

    >>> progress = ChatProgress("s1")
    >>> progress.apply(TextDelta("Hel")), progress.apply(TextDelta("lo")), progress.content
    (True, True, 'Hello')
    >>> progress.apply(ToolCall("c1", "calculator", {"expression": "2+2"}))
    True
    >>> progress.apply(ToolResult("c1", "calculator", "4")), progress.chunk()["tool_calls"]
    (True, [{'name': 'calculator', 'args': {'expression': '2+2'}, 'result': '4'}])
    >>> progress.apply(ToolResult("c9", "weather", "sunny"))  # answers no call: no change
    False
    >>> progress.apply(TextDelta("It is 4.")), progress.content  # a new model call: a new paragraph
    (True, 'Hello\\n\\nIt is 4.')
    >>> progress.apply(ApprovalPending("s1", "c2", "weather", {"location": "Oslo"}))
    False
    >>> progress.chunk(done=True)["pending_approval"]
    {'name': 'weather', 'args': {'location': 'Oslo'}}
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.content = ""
        self.thinking = ""
        self.tool_calls: list[ToolCallInfo] = []
        self._call_ids: list[str] = []
        self._after_tools = False
        self.pending: PendingApproval | None = None
        self.sources: list[SourceInfo] = []

    def chunk(self, *, done: bool = False, stats: dict[str, Any] | None = None) -> ChatChunk:
        chunk: ChatChunk = {
            "session_id": self.session_id,
            "content": self.content,
            "thinking": self.thinking,
            "tool_calls": self.tool_calls,
            "done": done,
            "stats": stats,
        }
        if done and self.pending is not None:
            chunk["pending_approval"] = self.pending
        if self.sources:
            chunk["sources"] = self.sources
        return chunk

    def apply(self, event: Event) -> bool:
        """Take in `event`; False when it changes nothing a client sees."""
        if isinstance(event, TextDelta):
            if self._after_tools and self.content:
                self.content += "\n\n"
            self._after_tools = False
            self.content += event.text
        elif isinstance(event, ThinkingDelta):
            self.thinking += event.text
        elif isinstance(event, ToolCall):
            call: ToolCallInfo = {"name": event.name, "args": event.args, "result": None}
            self.tool_calls = [*self.tool_calls, call]
            self._call_ids.append(event.id)
            self._after_tools = True
        elif isinstance(event, ToolResult):
            index = self._open_call(event)
            if index is None:
                return False
            calls = list(self.tool_calls)
            calls[index] = {**calls[index], "result": event.content}
            self.tool_calls = calls
        elif isinstance(event, ApprovalPending):
            self.pending = {"name": event.name, "args": event.args}
            return False  # shown with the turn's last chunk
        elif isinstance(event, Sources):
            self.sources = [SourceInfo(**source.as_dict()) for source in event.sources]
        else:
            return False
        return True

    def _open_call(self, result: ToolResult) -> int | None:
        """The unanswered call `result` answers (`answered_call`)."""
        open_calls = [i for i, call in enumerate(self.tool_calls) if call["result"] is None]
        ids = [(self._call_ids[i], self.tool_calls[i]["name"]) for i in open_calls]
        index = answered_call(result, ids)
        return None if index is None else open_calls[index]


def message_entry(message: "AnyMessage") -> dict[str, Any]:
    """One stored message as `/history` returns it.

    >>> from langchain_core.messages import AIMessage, ToolMessage
    >>> call = {"name": "calculator", "args": {"expression": "2+2"}, "id": "1"}
    >>> message_entry(AIMessage("", tool_calls=[call]))  # doctest: +NORMALIZE_WHITESPACE
    {'role': 'assistant', 'content': '',
     'tool_calls': [{'name': 'calculator', 'args': {'expression': '2+2'}}]}
    >>> message_entry(ToolMessage("2", tool_call_id="1", name="calculator"))
    {'role': 'tool', 'content': '2', 'name': 'calculator'}
    >>> message_entry(AIMessage("Par", response_metadata={"interrupted": "stopped by the user"}))
    {'role': 'assistant', 'content': 'Par', 'interrupted': 'stopped by the user'}
    """
    from ollamastack.web.transcript import message_dict  # LangChain: loaded on first use

    full = message_dict(message)  # the export's form, less its ids, thinking and model
    entry = {"role": full["role"], "content": full["content"]}
    if calls := full.get("tool_calls"):
        entry["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in calls]
    return entry | {
        key: full[key] for key in ("name", "interrupted", "files", "sources") if key in full
    }


def history_entries(
    messages: "list[AnyMessage]", branches: "list[BranchInfo]"
) -> list[dict[str, Any]]:
    """`/history`'s list: each message's entry; each user message also has "branch" (which
    of its versions is shown, from 1) and "branches" (how many there are: more than one once
    it was edited or retried).

    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> from ollamastack.agent.branches import BranchInfo
    >>> messages = [HumanMessage("Hi"), AIMessage("Hello"), HumanMessage("Bye")]
    >>> history_entries(messages, [BranchInfo(0, 1, 1), BranchInfo(2, 2, 3)])
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'role': 'user', 'content': 'Hi', 'branch': 1, 'branches': 1},
     {'role': 'assistant', 'content': 'Hello'},
     {'role': 'user', 'content': 'Bye', 'branch': 2, 'branches': 3}]
    """
    entries = [message_entry(m) for m in messages]
    for info in branches:
        if info.index < len(entries):
            entries[info.index] |= {"branch": info.branch, "branches": info.branches}
    return entries


def tool_entry(info: "ToolInfo") -> ToolEntry:
    return {"name": info.name, "server": info.server, "description": info.description,
            "reachable": info.reachable}


def session_entry(info: "SessionInfo") -> SessionEntry:
    return {
        "session_id": info.id,
        "title": info.title,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
    }


def search_entry(found: "Found") -> SearchEntry:
    return {"session_id": found.session_id, "title": found.title, "snippet": found.snippet,
            "message_index": found.message_index}


def model_entry(model: "ModelInfo") -> ModelEntry:
    return {
        "name": model.name,
        "size": model.size,
        "parameter_size": model.parameter_size,
        "quantization": model.quantization,
        "capabilities": list(model.capabilities),
        "embedded": model.embedded,
    }


def pull_status(progress: "PullProgress") -> PullStatus:
    return {"status": progress.status, "completed": progress.completed, "total": progress.total}
