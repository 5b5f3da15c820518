"""The chat's model picker (`web/ui/picker.py`): chat models only, each marked with what it can
do and its size; the choice kept while it is installed; what is offered while Ollama is down.
`installed` is checked against the Ollama-protocol test server, up and down."""

from __future__ import annotations

import itertools
from pathlib import Path

import gradio as gr
import pytest

from ollamastack.engines.embedded.engine import EMBEDDED_MODEL, embedded_available
from ollamastack.engines.factory import open_engines
from ollamastack.engines.types import EMBEDDED, ModelInfo
from ollamastack.settings import Settings
from ollamastack.web.ui.picker import Installed, can_chat, choices, installed, model_picker
from tests.support.chat_helpers import closed_port_url
from tests.support.ollama_server import FakeOllama

LLAMA = ModelInfo("llama3.2:latest", 2_019_393_189, "3.2B", "Q4_K_M", "llama",
                  ("completion", "tools"))
QWEN = ModelInfo("qwen3:8b", 5_225_387_923, "8.2B", "Q4_K_M", "qwen3",
                 ("completion", "tools", "thinking"))
GEMMA = ModelInfo("gemma3:latest", 3_338_801_804, "4.3B", "Q4_K_M", "gemma3",
                  ("completion", "vision"))
LLAVA = ModelInfo("qwen2.5vl:7b", 5_969_245_856, "8.3B", "Q4_K_M", "qwen25vl",
                  ("completion", "tools", "vision"))
NOMIC = ModelInfo("nomic-embed-text:latest", 274_302_450, "137M", "F16", "nomic-bert",
                  ("embedding",))
SMALL = ModelInfo(EMBEDDED_MODEL, 105_454_048, "135M", "Q4_1", "llama", ("completion",),
                  engine=EMBEDDED)


def test_only_chat_models_are_offered_each_with_its_size_and_what_it_can_do() -> None:
    offered, chosen = choices([QWEN, NOMIC, GEMMA, LLAVA, LLAMA, SMALL], None, "llama3.2")
    assert offered == [
        ("qwen3:8b · 5.2 GB · tools · thinking", "qwen3:8b"),
        ("gemma3:latest · 3.3 GB · prompted tools · vision", "gemma3:latest"),
        ("qwen2.5vl:7b · 6.0 GB · tools · vision", "qwen2.5vl:7b"),
        ("llama3.2:latest · 2.0 GB · tools", "llama3.2:latest"),
        (f"{EMBEDDED_MODEL} · 105.5 MB · in the app · prompted tools", EMBEDDED_MODEL),
    ]
    assert chosen == "llama3.2:latest"  # the default, as Ollama lists it


@pytest.mark.parametrize(("current", "default", "chosen"), [
    ("qwen3:8b", "llama3.2", "qwen3:8b"),  # still installed: kept
    ("gemma3", "llama3.2", "gemma3:latest"),  # a short name finds the listed one
    ("deleted:1b", "llama3.2", "llama3.2:latest"),  # gone: the default
    ("nomic-embed-text:latest", "llama3.2", "llama3.2:latest"),  # cannot chat: never kept
    (None, "not-here", "qwen3:8b"),  # no default installed: the first offered
    (None, EMBEDDED_MODEL, EMBEDDED_MODEL),
])
def test_the_choice_is_kept_while_installed_else_the_default(
    current: str | None, default: str, chosen: str
) -> None:
    assert choices([QWEN, GEMMA, NOMIC, LLAMA, SMALL], current, default)[1] == chosen


def test_with_ollama_down_the_embedded_model_the_configured_one_and_the_choice_stay() -> None:
    # Engines.default_model() is the embedded one while Ollama is down
    offered, chosen = choices([SMALL], "qwen3:8b", EMBEDDED_MODEL, reachable=False,
                              configured="llama3.2")
    assert offered == [
        (f"{EMBEDDED_MODEL} · 105.5 MB · in the app · prompted tools", EMBEDDED_MODEL),
        ("llama3.2 · Ollama not reachable", "llama3.2"),
        ("qwen3:8b · Ollama not reachable", "qwen3:8b"),
    ]
    assert chosen == "qwen3:8b"  # the status line offers the embedded model instead
    assert choices([SMALL], None, EMBEDDED_MODEL, reachable=False, configured="llama3.2") == (
        offered[:2], EMBEDDED_MODEL)
    assert choices([SMALL], EMBEDDED_MODEL, EMBEDDED_MODEL, reachable=False,
                   configured="llama3.2")[1] == EMBEDDED_MODEL


def test_without_the_embedded_model_and_ollama_down_the_configured_one_is_offered() -> None:
    assert choices([], None, "llama3.2", reachable=False, configured="llama3.2") == (
        [("llama3.2 · Ollama not reachable", "llama3.2")], "llama3.2")
    assert choices([], "qwen3:8b", "llama3.2", reachable=False, configured="llama3.2") == (
        [("llama3.2 · Ollama not reachable", "llama3.2"),
         ("qwen3:8b · Ollama not reachable", "qwen3:8b")], "qwen3:8b")


def test_with_nothing_that_can_chat_the_default_is_offered_marked() -> None:
    assert choices([NOMIC], "nomic-embed-text:latest", "llama3.2") == (
        [("llama3.2 · not installed", "llama3.2")], "llama3.2")


def test_the_value_is_always_one_of_the_choices_as_gradio_requires() -> None:
    models = [QWEN, NOMIC, LLAMA, SMALL]
    names = [None, "qwen3:8b", "qwen3", "nomic-embed-text:latest", "gone", EMBEDDED_MODEL, ""]
    for subset_size in range(len(models) + 1):
        for subset in itertools.combinations(models, subset_size):
            for current, default, reachable in itertools.product(
                names, ["llama3.2", EMBEDDED_MODEL], [True, False]
            ):
                update = model_picker(list(subset), current, default, reachable=reachable,
                                      configured="llama3.2")
                values = [value for _, value in update["choices"]]
                assert update["value"] in values, (subset, current, default, reachable)
                assert len(values) == len(set(values))
                if reachable or current != "nomic-embed-text:latest" or NOMIC in subset:
                    assert "nomic-embed-text:latest" not in values  # unless Ollama can't say


def test_model_picker_is_the_dropdowns_update() -> None:
    assert model_picker([QWEN, NOMIC], "qwen3:8b", "llama3.2") == gr.update(
        choices=[("qwen3:8b · 5.2 GB · tools · thinking", "qwen3:8b")], value="qwen3:8b")


def test_can_chat() -> None:
    assert [can_chat(m) for m in (LLAMA, GEMMA, NOMIC, SMALL)] == [True, True, False, True]
    both = ModelInfo("bge-m3:latest", 1, "", "", "", ("embedding", "completion"))
    assert can_chat(both)


def engine_settings(ollama_host: str, tmp_path: Path, embedded: bool) -> Settings:
    return Settings(_env_file=None, ollama_host=ollama_host, data_dir=tmp_path,
                    model="llama3.2", embedded=embedded)  # type: ignore[call-arg]


async def test_installed_lists_what_ollama_has_with_capabilities(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    ollama_server.add_model("nomic-embed-text", capabilities=("embedding",), size=274_302_450,
                            parameter_size="137M", quantization="F16", family="nomic-bert")
    engines = open_engines(engine_settings(ollama_server.url, tmp_path, embedded=False))
    try:
        listed = await installed(engines)
    finally:
        await engines.close()
    assert listed == Installed((
        ModelInfo("nomic-embed-text:latest", 274_302_450, "137M", "F16", "nomic-bert",
                  ("embedding",)),
        LLAMA,
    ))
    assert listed.reachable


async def test_installed_says_why_when_ollama_is_down(tmp_path: Path) -> None:
    down = closed_port_url()
    engines = open_engines(engine_settings(down, tmp_path, embedded=False))
    try:
        listed = await installed(engines)
    finally:
        await engines.close()
    assert listed == Installed((), (
        f"Ollama is not reachable at {down}. Start it with `ollama serve` (or `docker compose "
        "up ollama`), or point OLLAMA_HOST at a running server."))
    assert not listed.reachable


@pytest.mark.skipif(not embedded_available(), reason="the embedded model is not installed")
async def test_installed_tells_ollama_down_from_ollama_empty_beside_the_embedded_model(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    down = closed_port_url()
    engines = open_engines(engine_settings(down, tmp_path, embedded=True))
    try:
        listed = await installed(engines)
    finally:
        await engines.close()
    assert [m.name for m in listed.models] == [EMBEDDED_MODEL]
    assert listed.problem.startswith(f"Ollama is not reachable at {down}.")

    ollama_server.remove_model("llama3.2")  # up, with no model of its own
    engines = open_engines(engine_settings(ollama_server.url, tmp_path, embedded=True))
    try:
        listed = await installed(engines)
    finally:
        await engines.close()
    assert [m.name for m in listed.models] == [EMBEDDED_MODEL]
    assert listed.reachable
