"""Gradio's per-session state of a one-off REST call, forgotten when its call ends.

Gradio builds a `SessionState` for every session hash it sees, a copy of the config of every
block of the Blocks (about 88 KiB and a few ms for our page), and keeps up to
`state_session_capacity` (10,000) of them. A call on the REST route (`POST
/gradio_api/call/<name>`, then `GET .../<event_id>` for its result) that sends no session hash
gets its event id as one: nobody can name that session again, so once its result has been
read the state is dropped. Sessions a client named itself (a browser tab, a
`gradio_client.Client`) are left to Gradio.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

RESULT_PATH = re.compile(r"/gradio_api/call/[^/]+/(?P<event_id>[0-9a-f]{32})/?$")


def event_id_of(path: str) -> str | None:
    """The event id a REST call's result route names, else None.

    >>> event_id_of("/gradio_api/call/chat/0123456789abcdef0123456789abcdef")
    '0123456789abcdef0123456789abcdef'
    >>> event_id_of("/gradio_api/call/chat"), event_id_of("/gradio_api/queue/data")
    (None, None)
    """
    match = RESULT_PATH.search(path)
    return match["event_id"] if match else None


def forget_session(state_holder: Any, session_hash: str) -> bool:
    """Drop one session's state from Gradio's `StateHolder`; False when it held none."""
    with state_holder.lock:
        state_holder.time_last_used.pop(session_hash, None)
        return state_holder.session_data.pop(session_hash, None) is not None


class ForgetRestSessions:
    """ASGI middleware: after the result stream of a REST call, forget the session Gradio
    made up for it (its hash is the event id; a hash the client sent differs from it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        event_id = None
        if scope["type"] == "http" and scope["method"] == "GET":
            event_id = event_id_of(scope["path"])
        try:
            await self.app(scope, receive, send)
        finally:
            holder = getattr(scope.get("app"), "state_holder", None)
            if event_id is not None and holder is not None:
                forget_session(holder, event_id)
