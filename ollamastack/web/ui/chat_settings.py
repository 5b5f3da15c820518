"""Per-chat settings: the model, temperature, system prompt and thinking a conversation uses,
saved with it (in the session index) and restored when it is reopened, also after a reload.

A new chat starts from the settings of the chat on screen; a browser that has none yet starts
from the server's (`Settings`). Stored values are checked again when read: a model that was
removed, or a value no longer allowed, falls back to the server's default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ollamastack import validation
from ollamastack.engines.embedded.engine import is_embedded
from ollamastack.errors import InvalidInput
from ollamastack.settings import Settings
from ollamastack.web.ui.picker import full_name

SYSTEM_PROMPT_LIMIT = 8000  # as the chat service allows


def listed_name(model: str) -> str:
    """The name the picker offers `model` under (Ollama's full name; the embedded one as is).

    >>> listed_name("llama3.2"), listed_name("embedded/smollm2-135m")
    ('llama3.2:latest', 'embedded/smollm2-135m')
    """
    return model if is_embedded(model) else full_name(model)


@dataclass(frozen=True)
class ChatSettings:
    model: str
    temperature: float
    system_prompt: str
    show_thinking: bool = True

    @classmethod
    def defaults(cls, settings: Settings) -> ChatSettings:
        return cls(listed_name(settings.model), settings.temperature, settings.system_prompt,
                   True)

    @classmethod
    def read(cls, stored: object, settings: Settings) -> ChatSettings:
        """Stored settings as far as they are still valid, the server's defaults for the rest.

        >>> s = Settings(_env_file=None, model="llama3.2", temperature=0.7)
        >>> ChatSettings.read({"model": "qwen3:8b", "temperature": 9}, s).temperature
        0.7
        >>> ChatSettings.read("junk", s) == ChatSettings.defaults(s)
        True
        """
        default = cls.defaults(settings)
        if not isinstance(stored, dict):
            return default
        values = asdict(default)
        checks = {  # the picker lists Ollama's models by their full names
            "model": lambda v: listed_name(
                validation.model_name(v, registries=settings.registries)),
            "temperature": validation.temperature,
            "system_prompt": lambda v: validation.clean_text(
                v, what="system prompt", limit=SYSTEM_PROMPT_LIMIT, allow_empty=True),
            "show_thinking": lambda v: v if isinstance(v, bool) else default.show_thinking,
        }
        for name, check in checks.items():
            if name in stored:
                try:
                    values[name] = check(stored[name])
                except InvalidInput:
                    pass
        return cls(**values)

    def stored(self) -> dict[str, Any]:
        return asdict(self)

    def as_outputs(self) -> tuple[str, float, str, bool]:
        """(model, temperature, system prompt, show thinking): the panel's inputs, in order."""
        return self.model, self.temperature, self.system_prompt, self.show_thinking
