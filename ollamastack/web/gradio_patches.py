"""Every change this app makes to Gradio's private parts, each fenced by a probe.

Gradio does work per event and per session that this app does not need (issue 8's figures in
BENCHMARKS.md), and prints what it should not:
- after every event its queue recomputes the monitoring dashboard's summary, a pandas group-by
  over up to 10,000 events (1.5 to 5 ms of CPU holding the GIL); the dashboard is only served
  with `launch(enable_monitoring=True)`, which this app never passes;
- every new session hash (each REST call without one, each browser tab or `gradio_client`)
  gets a `SessionState` that renders the config of every block of the page (about 2 ms for
  our 67 blocks), though a call touches two or three of them;
- a REST call (`POST /gradio_api/call/<name>`, then `GET .../<event_id>`) that sends no
  session hash gets its event id as one, and Gradio keeps that state (up to 10,000 of them,
  88 KiB each) though nobody can name the session again;
- the errors of reading a call's inputs quote those inputs, and its queue prints them to
  stderr (a message's text in the log, whatever `OLLAMASTACK_LOG_CONTENT` says);
- its CORS middleware, outside every middleware of ours, answers every preflight itself (and
  grants origins by its own rule), so the REST routes' `OLLAMASTACK_CORS_ORIGINS` could not
  apply to a browser's `fetch` with a JSON body.

Each patch first probes the shape it relies on. When the probe fails (another Gradio version),
it logs one warning naming the patch and leaves Gradio as it is: correct, only slower (or
more talkative, or the REST routes' CORS list for simple requests only).
`apply(blocks)` runs those that act on the Blocks; the middleware are added at launch.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from types import SimpleNamespace
from typing import Any

from gradio import route_utils, routes
from gradio.exceptions import Error as GradioError
from gradio.state_holder import SessionState, StateHolder

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def _unpatched(patch: str, reason: str, effect: str = "slower, still correct") -> bool:
    log.warning("Gradio patch %r is off: %s. The app runs unpatched (%s).", patch, reason, effect)
    return False


# -- the monitoring summary ------------------------------------------------------------------

def skip_monitoring_summary(blocks: Any) -> bool:
    """Keep one analytics record and never recompute the summary (after `queue()`)."""
    queue = getattr(blocks, "_queue", None)
    names = ("ANALYTICS_MAX_EVENTS", "ANAYLTICS_CACHE_FREQUENCY")  # Gradio's own spelling
    if queue is None or not all(isinstance(getattr(queue, n, None), int) for n in names):
        return _unpatched("skip_monitoring_summary", "the queue has no analytics limits")
    queue.ANALYTICS_MAX_EVENTS = 1
    queue.ANAYLTICS_CACHE_FREQUENCY = sys.maxsize
    return True


# -- block configs rendered lazily -----------------------------------------------------------

_PENDING: Any = object()


class LazyConfigValues(dict):
    """`SessionState.config_values`: each block's config rendered when first read, the keys
    (and their order) those of Gradio's own from the start."""

    def __init__(self, blocks_config: Any, ids: Iterable[int]) -> None:
        super().__init__(dict.fromkeys(ids, _PENDING))
        self._blocks_config = blocks_config

    def __getitem__(self, key: int) -> dict:
        value = super().__getitem__(key)
        if value is _PENDING:
            block = self._blocks_config.blocks[key]
            value = self._blocks_config.config_for_block(key, [], block)
            super().__setitem__(key, value)
        return value

    def get(self, key: int, default: Any = None) -> Any:
        return self[key] if key in self else default

    def _render_all(self) -> None:
        for key in super().keys():
            self[key]

    def __iter__(self) -> Iterator[int]:
        self._render_all()
        return super().__iter__()

    def values(self) -> Any:
        self._render_all()
        return super().values()

    def items(self) -> Any:
        self._render_all()
        return super().items()


_gradio_init = SessionState.__init__


def _lazy_init(self: SessionState, blocks: Any) -> None:
    # Gradio's own __init__ with no block to render, then the same blocks, rendered lazily.
    _gradio_init(self, SimpleNamespace(default_config=blocks.default_config, blocks={}))
    ids = [k for k in self.blocks_config.blocks if k in blocks.blocks]
    self.config_values = LazyConfigValues(self.blocks_config, ids)


def _lazy_state_fits(blocks: Any) -> str:
    """Why the lazy `SessionState` would not match Gradio's own for `blocks`, or ""."""
    if list(inspect.signature(_gradio_init).parameters) != ["self", "blocks"]:
        return "SessionState.__init__ takes other arguments"
    try:
        eager = SessionState.__new__(SessionState)
        _gradio_init(eager, blocks)
        lazy = SessionState.__new__(SessionState)
        _lazy_init(lazy, blocks)
        if list(lazy.config_values) != list(eager.config_values):
            return "the rendered configs differ"
    except Exception as error:  # any other shape of SessionState or BlocksConfig
        return f"{type(error).__name__}: {error}"
    return ""


def render_session_config_lazily(blocks: Any) -> bool:
    """Make every `SessionState` of this process render block configs on first use."""
    if SessionState.__init__ is _lazy_init:
        return True
    if reason := _lazy_state_fits(blocks):
        return _unpatched("render_session_config_lazily", reason)
    SessionState.__init__ = _lazy_init  # type: ignore[method-assign]
    return True


# -- one-off REST sessions forgotten ---------------------------------------------------------

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


def state_holder_fits() -> str:
    """Why `forget_session` could not work on Gradio's `StateHolder`, or ""."""
    holder = StateHolder()
    for name, kind in (("lock", object), ("time_last_used", dict), ("session_data", dict)):
        if not isinstance(getattr(holder, name, None), kind):
            return f"StateHolder has no {name}"
    return ""


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


def rest_session_middleware() -> list[type]:
    """`[ForgetRestSessions]` when Gradio's `StateHolder` has the shape it needs, else []."""
    if reason := state_holder_fits():
        _unpatched("forget_rest_sessions", reason)
        return []
    return [ForgetRestSessions]


# -- errors reading a call's inputs, printed with the inputs --------------------------------

def left_off_defaults(block_fn: Any, sent: int) -> list[Any]:
    """The defaults of the parameters a raw call left off the end, so an endpoint that gains
    a parameter (`/chat`'s `files`) keeps its older callers; none when one of them has no
    default (Gradio then refuses the call as before).

    >>> from types import SimpleNamespace
    >>> def chat(message: str, session_id: str = "", files: list | None = None, request=None): ...
    >>> left_off_defaults(SimpleNamespace(fn=chat, inputs=[1, 2, 3]), 1)
    ['', None]
    >>> left_off_defaults(SimpleNamespace(fn=chat, inputs=[1, 2, 3]), 0)
    []
    """
    try:
        parameters = [p for p in inspect.signature(block_fn.fn).parameters.values()
                      if p.name != "request" and p.kind is not p.VAR_KEYWORD]
    except (AttributeError, TypeError, ValueError):
        return []
    left = parameters[sent:]
    if len(parameters) != len(block_fn.inputs) or any(p.default is p.empty for p in left):
        return []
    return [p.default for p in left]


def quiet_input_errors(blocks: Any) -> bool:
    """Gradio's queue prints the traceback of every error but a `gr.Error` told not to, and
    the errors of reading a call's inputs quote them: too few inputs lists each one, a chat
    history that does not validate shows its messages, a slider its value. Those errors
    reach the client as a `gr.Error` that is not printed; the log gets only their kind.
    A raw call that leaves off trailing parameters with defaults gets those defaults."""
    preprocess = getattr(blocks, "preprocess_data", None)
    shape = ["block_fn", "inputs", "state", "explicit_call"]
    if not inspect.iscoroutinefunction(preprocess) or (
        list(inspect.signature(preprocess).parameters) != shape
    ):
        return _unpatched("quiet_input_errors", "Blocks.preprocess_data has another shape")

    async def preprocess_data(block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        if len(inputs) < len(getattr(block_fn, "inputs", ())):
            inputs = [*inputs, *left_off_defaults(block_fn, len(inputs))]
        try:
            return await preprocess(block_fn, inputs, *args, **kwargs)
        except GradioError as error:
            if not error.print_exception:
                raise
            raise GradioError(error.message, print_exception=False) from None
        except Exception as error:
            name = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", "") or "?"
            needed = len(getattr(block_fn, "inputs", ()))
            log.warning("refused a call to %s: Gradio could not read its inputs (%s)",
                        name, type(error).__name__)
            if len(inputs) < needed:
                text = f"{name} takes {needed} inputs; the call sent {len(inputs)}."
            else:
                text = f"Gradio could not read this call's inputs ({type(error).__name__})."
            raise GradioError(text, print_exception=False) from None

    blocks.preprocess_data = preprocess_data
    return True


# -- CORS left to the routes that answer it ---------------------------------------------------

CORS_CALL = ["self", "scope", "receive", "send"]


def answers_own_cors(scope: Scope) -> bool:
    """Whether a middleware of the request's app answers CORS for it: one whose class has an
    `answers_cors(scope)` that says so (`RestDoor`: /api/v1 and /v1). Gradio's own check
    for a parent app's CORS reads `user_middleware` the same way."""
    for middleware in getattr(scope.get("app"), "user_middleware", ()):
        answers = getattr(getattr(middleware, "cls", None), "answers_cors", None)
        if answers is not None and answers(scope):
            return True
    return False


def gradio_cors_fits() -> str:
    """Why `leave_cors_to_routes` could not work on Gradio's CORS middleware, or ""."""
    cors = getattr(route_utils, "CustomCORSMiddleware", None)
    if cors is None or getattr(routes, "CustomCORSMiddleware", None) is not cors:
        return "gradio.routes installs no CustomCORSMiddleware"
    call = cors.__call__
    if not inspect.iscoroutinefunction(call) or list(inspect.signature(call).parameters) != (
        CORS_CALL
    ):
        return "CustomCORSMiddleware.__call__ has another shape"
    inner = object()
    try:
        if getattr(cors(inner), "app", None) is not inner:
            return "CustomCORSMiddleware keeps the app it wraps elsewhere"
    except Exception as error:  # it takes other arguments
        return f"{type(error).__name__}: {error}"
    return ""


def leave_cors_to_routes() -> bool:
    """Make Gradio's CORS middleware pass on, untouched, the requests whose CORS a middleware
    of the app answers itself (`answers_own_cors`); every other request it answers as ever.
    Once per process: the check is per app and per request."""
    if reason := gradio_cors_fits():
        return _unpatched(
            "leave_cors_to_routes", reason, "Gradio answers the CORS preflights of /api/v1 "
            "and /v1: OLLAMASTACK_CORS_ORIGINS applies to simple requests only")
    cors = routes.CustomCORSMiddleware
    if getattr(cors.__call__, "leaves_cors_to_routes", False):
        return True
    gradio_call = cors.__call__

    @functools.wraps(gradio_call)
    async def call(self: Any, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and answers_own_cors(scope):
            await self.app(scope, receive, send)
            return
        await gradio_call(self, scope, receive, send)

    call.leaves_cors_to_routes = True  # type: ignore[attr-defined]
    cors.__call__ = call
    return True


def apply(blocks: Any) -> None:
    """The patches that act on the built Blocks (the middleware is added at launch)."""
    skip_monitoring_summary(blocks)
    render_session_config_lazily(blocks)
    quiet_input_errors(blocks)
