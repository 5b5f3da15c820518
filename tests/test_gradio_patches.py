"""Gradio's per-session and per-event work, cut down without changing what it serves."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio.blocks import BlocksConfig
from gradio.components import Textbox
from gradio.state_holder import SessionState

from ollamastack.settings import Settings
from ollamastack.web import gradio_patches
from ollamastack.web.app import build_app
from tests.support.api_helpers import OllamaView, serve
from tests.support.ollama_server import FakeOllama


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("data"), embedded=False)
    return build_app(settings).blocks  # installs the lazy SessionState


def eager_state(blocks) -> SessionState:
    """A SessionState as Gradio itself builds it."""
    state = SessionState.__new__(SessionState)
    gradio_patches._gradio_init(state, blocks)
    return state


def test_a_new_session_renders_no_block_config(blocks, monkeypatch: pytest.MonkeyPatch):
    rendered: list[int] = []
    original = BlocksConfig.config_for_block

    def counting(*args, **kwargs):
        rendered.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(BlocksConfig, "config_for_block", staticmethod(counting))
    SessionState(blocks)
    assert rendered == []
    assert len(eager_state(blocks).config_values) == len(blocks.blocks) > 60
    assert len(rendered) == len(blocks.blocks)  # what Gradio's own does for every session


def test_the_lazy_configs_equal_gradios_own(blocks):
    lazy, eager = SessionState(blocks), eager_state(blocks)
    assert len(lazy.config_values) == len(eager.config_values)
    assert all(key in lazy.config_values for key in eager.config_values)
    assert list(lazy.components) == list(eager.components)  # what a deep link stores


def test_an_updated_value_shows_in_the_deep_link_configs(blocks):
    textbox = next(k for k, b in blocks.blocks.items() if isinstance(b, Textbox))
    lazy, eager = SessionState(blocks), eager_state(blocks)
    for state in (lazy, eager):
        state._update_value_in_config(textbox, "typed by the user")
    assert lazy.config_values[textbox]["props"]["value"] == "typed by the user"
    assert list(lazy.components) == list(eager.components)


def test_the_monitoring_summary_is_never_computed(ollama_server: FakeOllama, tmp_path: Path):
    with OllamaView.of(ollama_server), serve(ollama_server, tmp_path) as served:
        for question in ("One?", "Two?"):
            inputs = [question, "", "", None, ""]
            posted = httpx.post(f"{served.url}/gradio_api/call/chat", json={"data": inputs})
            event_id = posted.json()["event_id"]
            answer = httpx.get(f"{served.url}/gradio_api/call/chat/{event_id}", timeout=30)
            assert f"You said: {question}" in answer.text
        queue = served.app.blocks._queue
        assert len(queue.event_analytics) == 1
        assert queue.cached_event_analytics_summary == {"functions": {}}


def test_every_probe_passes_on_the_pinned_gradio(blocks):
    assert gradio_patches._lazy_state_fits(blocks) == ""
    assert gradio_patches.state_holder_fits() == ""
    assert gradio_patches.gradio_cors_fits() == ""
    assert gradio_patches.rest_session_middleware() == [gradio_patches.ForgetRestSessions]
    assert SessionState.__init__ is gradio_patches._lazy_init


class OtherStateHolder:
    """A `StateHolder` of another shape: sessions kept under another name."""

    def __init__(self):
        self.sessions = {}


def test_a_gradio_of_another_shape_runs_unpatched_and_still_chats(
    ollama_server: FakeOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    gradio_init = gradio_patches._gradio_init

    def other_init(self, blocks, theme=None):  # a SessionState taking other arguments
        gradio_init(self, blocks)

    monkeypatch.setattr(SessionState, "__init__", other_init)
    monkeypatch.setattr(gradio_patches, "_gradio_init", other_init)
    monkeypatch.setattr(gradio_patches, "StateHolder", OtherStateHolder)
    with caplog.at_level("WARNING", logger="ollamastack.web.gradio_patches"):
        with OllamaView.of(ollama_server), serve(ollama_server, tmp_path) as served:
            inputs = {"data": ["Hi?", "", "", None, ""]}
            posted = httpx.post(f"{served.url}/gradio_api/call/chat", json=inputs)
            event_id = posted.json()["event_id"]
            answer = httpx.get(f"{served.url}/gradio_api/call/chat/{event_id}", timeout=30)
            assert "You said: Hi?" in answer.text
            assert SessionState.__init__ is other_init  # Gradio's own, untouched
            assert event_id in served.app.blocks.state_holder  # not forgotten: unpatched
    warned = [r.getMessage() for r in caplog.records]
    assert [w.split("'")[1] for w in warned] == [
        "render_session_config_lazily", "forget_rest_sessions"
    ]


def test_a_queue_without_analytics_limits_is_left_alone(caplog: pytest.LogCaptureFixture):
    queue = SimpleNamespace(event_analytics={})
    with caplog.at_level("WARNING", logger="ollamastack.web.gradio_patches"):
        assert gradio_patches.skip_monitoring_summary(SimpleNamespace(_queue=queue)) is False
    assert vars(queue) == {"event_analytics": {}}
    assert "'skip_monitoring_summary' is off" in caplog.text


def test_blocks_of_another_shape_keep_gradios_input_errors(caplog: pytest.LogCaptureFixture):
    async def preprocess_data(block_fn, inputs):  # no `state` nor `explicit_call`
        return inputs

    blocks = SimpleNamespace(preprocess_data=preprocess_data)
    with caplog.at_level("WARNING", logger="ollamastack.web.gradio_patches"):
        assert gradio_patches.quiet_input_errors(blocks) is False
    assert blocks.preprocess_data is preprocess_data
    assert "'quiet_input_errors' is off" in caplog.text


class OtherCORSMiddleware:
    """A CORS middleware of another shape: it keeps the app it wraps under another name."""

    def __init__(self, inner, strict_cors=True, parent_app=None):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        await self.inner(scope, receive, send)


def test_another_cors_middleware_is_left_alone_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from gradio import route_utils, routes

    call = OtherCORSMiddleware.__call__
    monkeypatch.setattr(route_utils, "CustomCORSMiddleware", OtherCORSMiddleware)
    monkeypatch.setattr(routes, "CustomCORSMiddleware", OtherCORSMiddleware)
    with caplog.at_level("WARNING", logger="ollamastack.web.gradio_patches"):
        assert gradio_patches.leave_cors_to_routes() is False
    assert OtherCORSMiddleware.__call__ is call
    assert "'leave_cors_to_routes' is off: CustomCORSMiddleware keeps the app it wraps " in (
        caplog.text)
    assert "OLLAMASTACK_CORS_ORIGINS applies to simple requests only" in caplog.text


async def test_gradios_cors_passes_on_only_what_a_middleware_of_the_app_answers():
    from gradio.route_utils import CustomCORSMiddleware
    from starlette.middleware import Middleware

    assert gradio_patches.leave_cors_to_routes() is True
    assert gradio_patches.leave_cors_to_routes() is True  # once: not wrapped twice
    assert not hasattr(CustomCORSMiddleware.__call__.__wrapped__, "leaves_cors_to_routes")

    class Answers:
        @staticmethod
        def answers_cors(scope):
            return scope["path"].startswith("/own/")

    reached = []

    async def inner(scope, receive, send):
        reached.append(scope["path"])

    sent = []

    async def send(message):
        sent.append(message)

    cors = CustomCORSMiddleware(inner)
    headers = [(b"origin", b"http://localhost:3000"), (b"host", b"127.0.0.1:7860"),
               (b"access-control-request-method", b"POST")]
    ours = [Middleware(Answers)]
    for path, middleware in (("/own/chat", ours), ("/other", ours), ("/own/chat", [])):
        app = SimpleNamespace(user_middleware=middleware)
        scope = {"type": "http", "method": "OPTIONS", "path": path, "headers": headers,
                 "app": app}
        await cors(scope, None, send)
    assert reached == ["/own/chat"]  # the others: Gradio's own preflight answer
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200, 200]
