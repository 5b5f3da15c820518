"""What every engine reports, whichever runs the model: models, health, pull progress."""

from __future__ import annotations

from dataclasses import dataclass

OLLAMA = "ollama"
EMBEDDED = "embedded"


@dataclass(frozen=True)
class ModelInfo:
    """An installed model as the UI and API show it."""

    name: str
    size: int
    parameter_size: str
    quantization: str
    family: str
    capabilities: tuple[str, ...]
    engine: str = OLLAMA  # which engine serves it: OLLAMA or EMBEDDED

    @property
    def supports_tools(self) -> bool:
        return "tools" in self.capabilities

    @property
    def embedded(self) -> bool:
        """It runs inside the app (llama.cpp), not in Ollama."""
        return self.engine == EMBEDDED


@dataclass(frozen=True)
class RunningModel:
    """A model loaded in Ollama's memory (`/api/ps`)."""

    name: str
    size: int
    size_vram: int
    context_length: int | None


@dataclass(frozen=True)
class PullProgress:
    """One progress line of a pull; `completed`/`total` are bytes of the current layer."""

    status: str
    completed: int = 0
    total: int = 0
    digest: str = ""


@dataclass(frozen=True)
class Health:
    """Whether Ollama answers, where we looked, and what it runs."""

    reachable: bool
    url: str
    version: str = ""
    models: int = 0
    error: str = ""
    default_model: str = ""  # what a turn without a model uses (the embedded one, as fallback)
    embedded_model: str = ""  # the embedded model's name, when it is offered
