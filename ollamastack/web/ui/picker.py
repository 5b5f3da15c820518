"""The chat's model picker: which installed models can chat, what each can do, which one stays
chosen, and what to offer while Ollama cannot be asked.

Ollama's `/api/show` lists what a model can do: "completion" (it can chat), "tools" (native
tool calling), "vision", "thinking", "embedding". A model with "embedding" and no "completion"
only turns text into vectors: a chat with it fails, so the picker leaves it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from ollamastack.engines.embedded.engine import is_embedded
from ollamastack.engines.types import ModelInfo
from ollamastack.errors import OllamaStackError

if TYPE_CHECKING:
    from ollamastack.engines.factory import Engines

NOT_INSTALLED = "not installed"
OLLAMA_DOWN = "Ollama not reachable"


def human_size(size: int) -> str:
    """
    >>> human_size(2_019_393_189), human_size(512), human_size(3_500_000), human_size(0)
    ('2.0 GB', '512 B', '3.5 MB', '0 B')
    """
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def full_name(model: str) -> str:
    """The name Ollama lists a model under.

    >>> full_name("llama3.2"), full_name("qwen3:8b"), full_name("hf.co/a/b")
    ('llama3.2:latest', 'qwen3:8b', 'hf.co/a/b:latest')
    """
    if ":" in model.rsplit("/", 1)[-1]:
        return model
    return f"{model}:latest"


def can_chat(model: ModelInfo) -> bool:
    """Whether a chat with `model` can work: not an embedding-only model. A model whose
    capabilities are unknown (an older Ollama, `/api/show` failed) is given the benefit.

    >>> can_chat(ModelInfo("nomic-embed-text:latest", 1, "137M", "F16", "nomic-bert",
    ...                    ("embedding",)))
    False
    >>> can_chat(ModelInfo("qwen3:8b", 1, "8B", "Q4_K_M", "qwen3", ("completion", "tools")))
    True
    >>> can_chat(ModelInfo("old:latest", 1, "", "", "", ()))
    True
    """
    return not ("embedding" in model.capabilities and "completion" not in model.capabilities)


def tags(model: ModelInfo) -> list[str]:
    """Short words for what `model` can do, in the picker and the Models tab.

    >>> tags(ModelInfo("qwen2.5vl:7b", 1, "", "", "", ("completion", "tools", "vision")))
    ['tools', 'vision']
    >>> tags(ModelInfo("gemma3:latest", 1, "", "", "", ("completion", "vision")))
    ['prompted tools', 'vision']
    >>> tags(ModelInfo("embedded/smollm2-135m", 1, "", "", "", ("completion",),
    ...                engine="embedded"))
    ['in the app', 'prompted tools']
    >>> tags(ModelInfo("nomic-embed-text:latest", 1, "", "", "", ("embedding",)))
    ['embedding only']
    """
    if not can_chat(model):
        return ["embedding only"]
    found = ["in the app"] if model.embedded else []
    found.append("tools" if model.supports_tools else "prompted tools")  # chosen by prompt
    found += [cap for cap in ("vision", "thinking") if cap in model.capabilities]
    return found


def label(model: ModelInfo) -> str:
    """The picker's text for `model`: name, installed size, what it can do.

    >>> label(ModelInfo("qwen3:8b", 5_225_387_923, "8.2B", "Q4_K_M", "qwen3",
    ...                 ("completion", "tools", "thinking")))
    'qwen3:8b · 5.2 GB · tools · thinking'
    """
    return " · ".join([model.name, human_size(model.size), *tags(model)])


def pick(names: Sequence[str], current: str | None, default: str) -> str | None:
    """Keep the current choice if it is offered, else the default, else the first offered.

    >>> pick(["a:latest", "llama3.2:latest"], None, "llama3.2")
    'llama3.2:latest'
    >>> pick(["a:latest", "b:latest"], "b", "llama3.2"), pick(["a:latest"], "gone", "x")
    ('b:latest', 'a:latest')
    >>> pick(["embedded/smollm2-135m"], "embedded/smollm2-135m", "llama3.2")
    'embedded/smollm2-135m'
    >>> pick([], None, "llama3.2") is None
    True
    """
    for wanted in (current, default):
        if wanted in names:  # e.g. the embedded model, which has no tag
            return wanted
        if wanted and full_name(wanted) in names:
            return full_name(wanted)
    return names[0] if names else None


def choices(
    models: Sequence[ModelInfo], current: str | None, default: str, *,
    reachable: bool = True, configured: str = "",
) -> tuple[list[tuple[str, str]], str]:
    """The picker's (label, name) choices and the chosen name.

    `models`: what the engines list (Ollama's, then the embedded model); `default`: what a turn
    without a model uses (`Engines.default_model`); `configured`: `OLLAMASTACK_MODEL`. While
    Ollama is not `reachable`, its models cannot be listed: the configured model and an
    Ollama model chosen before stay on offer, marked, beside the embedded one. The chosen name
    is always among the choices (Gradio refuses a value that is not).

    >>> qwen = ModelInfo("qwen3:8b", 5_225_387_923, "8B", "Q4_K_M", "", ("completion", "tools"))
    >>> embed = ModelInfo("nomic-embed-text:latest", 274_302_450, "", "", "", ("embedding",))
    >>> choices([qwen, embed], "nomic-embed-text:latest", "qwen3:8b")
    ([('qwen3:8b · 5.2 GB · tools', 'qwen3:8b')], 'qwen3:8b')
    >>> choices([], None, "llama3.2")
    ([('llama3.2 · not installed', 'llama3.2')], 'llama3.2')
    >>> small = ModelInfo("embedded/smollm2-135m", 105_454_048, "135M", "Q4_1", "",
    ...                   ("completion",), engine="embedded")
    >>> for choice in choices([small], "qwen3:8b", small.name, reachable=False,
    ...                       configured="llama3.2")[0]:
    ...     print(choice)
    ('embedded/smollm2-135m · 105.5 MB · in the app · prompted tools', 'embedded/smollm2-135m')
    ('llama3.2 · Ollama not reachable', 'llama3.2')
    ('qwen3:8b · Ollama not reachable', 'qwen3:8b')
    >>> choices([small], "qwen3:8b", small.name, reachable=False, configured="llama3.2")[1]
    'qwen3:8b'
    """
    offered = [(label(m), m.name) for m in models if can_chat(m)]
    names = [name for _, name in offered]
    if not reachable:  # Ollama's models may be there still: keep what was chosen on offer
        for name in (configured, current or ""):
            known = {*names, *(m.name for m in models)}
            if name and not is_embedded(name) and not {name, full_name(name)} & known:
                offered.append((f"{name} · {OLLAMA_DOWN}", name))
                names.append(name)
    chosen = pick(names, current, default)
    if chosen is None:  # nothing can chat here: name the default, marked
        chosen = default
        offered.append((f"{default} · {NOT_INSTALLED if reachable else OLLAMA_DOWN}", default))
    return offered, chosen


def model_picker(
    models: Sequence[ModelInfo], current: str | None, default: str, *,
    reachable: bool = True, configured: str = "",
) -> dict:
    """The dropdown's update (see `choices`)."""
    offered, chosen = choices(
        models, current, default, reachable=reachable, configured=configured
    )
    return gr.update(choices=offered, value=chosen)


@dataclass(frozen=True)
class Installed:
    """What the engines list, and why Ollama's models are missing from it ("" if they are not:
    Ollama answered). The reason is the engine's message, with Ollama's address in it."""

    models: tuple[ModelInfo, ...]
    problem: str = ""

    @property
    def reachable(self) -> bool:
        return not self.problem


async def installed(engines: Engines) -> Installed:
    """The installed models; with Ollama down, the embedded model alone (when the app has
    one) and the reason. `Engines.list_models` hides a down Ollama behind the embedded model,
    so when it lists nothing of Ollama's, Ollama's health tells "down" from "no models"."""
    try:
        models = tuple(await engines.list_models())
    except OllamaStackError as error:
        return Installed((), str(error))
    if any(not m.embedded for m in models):
        return Installed(models)
    health = await engines.health()
    return Installed(models, "" if health.reachable else health.error or "not reachable")
