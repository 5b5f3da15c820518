"""The named API's conversation endpoints: history, list, delete, search, rename, branches.

Split from `api.py` (the turn, model and health endpoints) only for size; both are registered
by `register_api`, with the same edge (rate limit, audit log) and error translation.
"""

# No `from __future__ import annotations`: Gradio reads the annotations at runtime to
# describe each endpoint, and skips parameters typed `gr.Request`.

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.web.api_schema import (
    RenamedSession,
    SearchEntry,
    SessionEntry,
    history_entries,
    search_entry,
    session_entry,
)
from ollamastack.web.edge import Edge, caller_of, user_errors


class SessionEndpoints:
    """The conversation endpoints over one chat service; each method's name is its MCP
    tool name."""

    def __init__(self, handle: ServiceHandle, edge: Edge) -> None:
        self.handle = handle
        self.edge = edge

    async def history(self, session_id: str, request: gr.Request | None = None) -> list[dict]:
        """The stored messages of a conversation, oldest first, tool calls included.

        Each is {"role", "content"} (role user, assistant, tool or system); an assistant
        message that called tools has "tool_calls" [{"name", "args"}], a tool message "name",
        and an answer cut short (stopped, or Ollama failed) "interrupted" with the reason. A
        user message with attachments has "files" [{"id", "name", "kind" (image or
        document), "mime", "size", "pages"}], and "sources" once the conversation had
        documents (what its answer drew on: file, page, text). Each user message has
        "branch" (which of its versions is shown, from 1) and "branches" (how many there
        are: more than one once edited with /edit_message; /switch_branch shows another).

        Args:
            session_id: The conversation, as returned by /chat or /sessions.
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/history", caller, session_id=str(session_id)):
            service = await self.handle.get()
            messages = await service.history(session_id, caller.user)
            return history_entries(messages, await service.branches(session_id, caller.user))

    async def sessions(self, request: gr.Request | None = None) -> list[SessionEntry]:
        """Your conversations, most recently active first, titled by their first message."""
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/sessions", caller):
            service = await self.handle.get()
            return [session_entry(s) for s in await service.sessions(caller.user)]

    async def delete_session(self, session_id: str, request: gr.Request | None = None) -> dict:
        """Delete a conversation and everything stored for it.

        Args:
            session_id: The conversation, as returned by /chat or /sessions.
        """
        caller = caller_of(request)
        audited = self.edge.audit("/delete_session", caller, session_id=str(session_id))
        with user_errors(), audited:
            service = await self.handle.get()
            await service.delete_session(session_id, caller.user)
            return {"session_id": session_id, "deleted": True}

    async def search_conversations(
        self, query: str, request: gr.Request | None = None
    ) -> list[SearchEntry]:
        """Find your conversations by words in any message, yours or the model's.

        Each result is the newest matching message of one conversation, newest first (at most
        20): session_id, title, snippet (plain text around the words) and message_index (the
        message's place in /history). Every word must appear; the last may be the start of a
        word. Quotes and operators are not query syntax, only words count. Counts like a
        message against the rate limit.

        Args:
            query: The words to find, at most 200 characters on one line.
        """
        caller = caller_of(request)
        content = query if isinstance(query, str) else None
        with user_errors(), self.edge.audit("/search_conversations", caller, message=content):
            self.edge.count_message(caller)
            service = await self.handle.get()
            return [search_entry(f) for f in await service.search_conversations(query, caller.user)]

    async def rename_session(
        self, session_id: str, title: str, request: gr.Request | None = None
    ) -> RenamedSession:
        """Give a conversation a new title (one line, at most 200 characters).

        Args:
            session_id: The conversation, as returned by /chat or /sessions.
            title: The new title.
        """
        caller = caller_of(request)
        content = title if isinstance(title, str) else None
        audited = self.edge.audit(
            "/rename_session", caller, session_id=str(session_id), message=content
        )
        with user_errors(), audited:
            service = await self.handle.get()
            title = await service.rename_session(session_id, title, caller.user)
            return {"session_id": session_id, "title": title}

    async def switch_branch(
        self, session_id: str, message_index: int, branch: int,
        request: gr.Request | None = None,
    ) -> list[dict]:
        """Show another version of an edited message: the conversation continues from that
        branch, as it was left, and it is what the model sees next. Returns the conversation
        now active, as /history lists it.

        Args:
            session_id: The conversation, as returned by /chat or /sessions.
            message_index: The user message's place in /history (from 0).
            branch: Which version, from 1 to its "branches" in /history.
        """
        caller = caller_of(request)
        with user_errors(), self.edge.audit("/switch_branch", caller, session_id=str(session_id)):
            service = await self.handle.get()
            messages = await service.switch_branch(session_id, message_index, branch,
                                                   caller.user)
            return history_entries(messages, await service.branches(session_id, caller.user))
