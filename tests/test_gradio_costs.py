"""Gradio's per-session and per-event work, cut down without changing what it serves."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_helpers import OllamaView, serve
from gradio.blocks import BlocksConfig
from gradio.components import Textbox
from gradio.state_holder import SessionState
from ollama_server import FakeOllama

from ollamastack import gradio_costs
from ollamastack.settings import Settings
from ollamastack.web import build_app


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("data"), embedded=False)
    return build_app(settings).blocks  # installs the lazy SessionState


def eager_state(blocks) -> SessionState:
    """A SessionState as Gradio itself builds it."""
    state = SessionState.__new__(SessionState)
    gradio_costs._gradio_init(state, blocks)
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
