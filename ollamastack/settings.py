"""Settings read once at start-up from the environment and an optional `.env` file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ollamastack.validation import split_ollama_hosts

DEFAULT_SYSTEM_PROMPT = (
    "You are OllamaStack, a helpful assistant running on a private, local model. "
    "Use the tools when they help: calculator for arithmetic, text_analyzer for statistics "
    "about a text, current_time for the date and time, weather for current conditions. "
    "Answer concisely."
)


def _sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'ollamastack.sqlite'}"


class Settings(BaseSettings):
    """Every knob of OllamaStack. Built once at the edge and passed in explicitly."""

    model_config = SettingsConfigDict(
        env_prefix="OLLAMASTACK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    ollama_host: str = Field(
        "http://localhost:11434",
        validation_alias=AliasChoices("OLLAMA_HOST", "ollama_host"),
        description="Ollama server (OLLAMA_HOST); `host:port` without a scheme is accepted. "
        "Several instances, comma-separated: this field is the first, `ollama_hosts` all.",
    )
    model: str = Field("llama3.2", min_length=1, description="Default chat model.")
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, max_length=8000)
    data_dir: Path = Path("./data")
    database_url: str = Field("", description="Checkpointer database; SQLite in data_dir if empty.")
    max_message_chars: Annotated[int, Field(ge=1, le=1_000_000)] = 4000
    num_ctx: Annotated[int, Field(ge=512, le=1_048_576)] = 8192
    history_tokens: Annotated[int, Field(ge=256)] = 6000
    keep_alive: str = Field(
        "", description="How long Ollama keeps a model loaded after a turn (`5m`, `1h`, `-1` "
        "for ever, `0` to unload at once); empty: Ollama's own default (5 minutes).",
        pattern=r"^(|-1|0|\d+(\.\d+)?(ms|s|m|h)?)$",
    )
    max_tool_rounds: Annotated[int, Field(ge=0, le=50)] = 5
    tool_mode: Literal["auto", "native", "prompted", "off"] = Field(
        "auto", description="How tools reach a model: native (Ollama's tool calling; tool calls "
        "written as text are repaired), prompted (the app picks the tool by rules or by asking "
        "the model for a JSON choice), auto (native where the model has the tools "
        "capability, else prompted), off.",
    )
    request_timeout: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 16
    tool_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    weather_geocoding_url: str = "https://geocoding-api.open-meteo.com/v1/search"
    weather_forecast_url: str = "https://api.open-meteo.com/v1/forecast"
    share: bool = Field(False, description="Launch with a public Gradio share link.")
    auth: str = Field("", description='Logins as "alice:pw1,bob:pw2"; empty means no login.')
    mcp: bool = Field(False, description="Also serve the API as MCP tools.")
    server_name: str = Field(
        "127.0.0.1", validation_alias=AliasChoices("GRADIO_SERVER_NAME", "server_name")
    )
    server_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        7860, validation_alias=AliasChoices("GRADIO_SERVER_PORT", "server_port")
    )

    @field_validator("ollama_host")
    @classmethod
    def _host(cls, value: str) -> str:
        return ",".join(split_ollama_hosts(value))  # split into ollama_hosts below

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        for pair in filter(None, (p.strip() for p in value.split(","))):
            user, _, password = pair.partition(":")
            if not user.strip() or not password:
                raise ValueError('must look like "alice:password1,bob:password2"')
        return value

    @field_validator("temperature")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        if not self.database_url:
            self.database_url = _sqlite_url(self.data_dir)
        if not self.database_url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(
                "OLLAMASTACK_DATABASE_URL must start with sqlite:/// or postgresql://"
            )
        if self.history_tokens >= self.num_ctx:
            raise ValueError(
                "OLLAMASTACK_HISTORY_TOKENS must be smaller than OLLAMASTACK_NUM_CTX "
                "(room is needed for the system prompt, the tools and the answer)"
            )
        return self

    # -- several Ollama instances (OLLAMA_HOST="http://gpu0:11434,http://gpu1:11434") --

    _ollama_hosts: tuple[str, ...] = PrivateAttr(())

    @model_validator(mode="after")
    def _instances(self) -> Settings:
        self._ollama_hosts = tuple(self.ollama_host.split(","))
        self.ollama_host = self._ollama_hosts[0]
        return self

    @property
    def ollama_hosts(self) -> tuple[str, ...]:
        """Every Ollama instance, the primary (`ollama_host`) first."""
        hosts = self._ollama_hosts
        return hosts if hosts[:1] == (self.ollama_host,) else (self.ollama_host,)

    @property
    def logins(self) -> list[tuple[str, str]]:
        """The (user, password) pairs of `auth`; empty when login is off."""
        pairs = (p.strip().partition(":") for p in self.auth.split(",") if p.strip())
        return [(user.strip(), password) for user, _, password in pairs]

    @property
    def on_postgres(self) -> bool:
        """Whether conversations live in PostgreSQL rather than a SQLite file."""
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file behind `database_url`, or None for another database."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return None

    # -- hostile users: rate limit, who may manage models, the audit log --

    rate_limit: Annotated[int, Field(ge=0, le=100_000)] = Field(
        10, description="Messages a minute per user (per client address without login); 0: off."
    )
    admin_users: str = Field(
        "", description="Logins that may pull and delete models (comma-separated); empty: "
        "every user. With a share link and no login, nobody may.",
    )
    log_content: bool = Field(False, description="Also write message text to the audit log.")
    max_turns_per_user: Annotated[int, Field(ge=1, le=1024)] = Field(
        4, description="Answers one user (one client address without login) may have "
        "streaming at once; one more is refused until one ends.",
    )
    login_attempts: Annotated[int, Field(ge=1, le=1000)] = Field(
        5, description="Failed logins a minute per username and per client address before "
        "each further try waits (the wait doubles with each failure).",
    )
    trusted_proxies: str = Field(
        "", description="Addresses or networks of reverse proxies (nginx) whose X-Forwarded-For "
        "names the client, comma-separated (`*`: any sender, only when nothing else can reach "
        "the app); no other sender is believed. Empty: none, loopback included.",
    )
    cors_origins: str = Field(
        "", description="Origins (`https://app.example`) whose pages may call the REST and "
        "OpenAI-compatible routes from a browser, comma-separated; empty: none (CORS off).",
    )
    max_upload_mb: Annotated[float, Field(gt=0, le=10_000)] = Field(
        20, description="Largest file Gradio's upload route accepts, in MB.",
    )
    upload_retention: Annotated[int, Field(ge=60, le=30 * 86_400)] = Field(
        3600, description="Seconds an uploaded or exported file is kept in Gradio's cache; "
        "the cache is swept this often too.",
    )
    model_registries: str = Field(
        "registry.ollama.ai,hf.co,huggingface.co",
        description="Registry hosts a model name may start with when pulling "
        "(comma-separated); a name without a host pulls from Ollama's own registry.",
    )

    @field_validator("admin_users")
    @classmethod
    def _admins(cls, value: str) -> str:
        return ",".join(name.strip() for name in value.split(",") if name.strip())

    @field_validator("trusted_proxies", "model_registries")
    @classmethod
    def _names(cls, value: str) -> str:
        return ",".join(name.strip().lower() for name in value.split(",") if name.strip())

    @property
    def proxies(self) -> frozenset[str]:
        """The addresses of `trusted_proxies`."""
        return frozenset(filter(None, self.trusted_proxies.split(",")))

    @property
    def registries(self) -> frozenset[str]:
        """The registry hosts of `model_registries`."""
        return frozenset(filter(None, self.model_registries.split(",")))

    @property
    def admins(self) -> frozenset[str]:
        """The logins of `admin_users`; empty when none are named."""
        return frozenset(filter(None, self.admin_users.split(",")))

    # -- the embedded llama.cpp model: the fallback when Ollama is absent --

    embedded: bool = Field(
        True, description="Offer the embedded model (and fall back to it when Ollama's default "
        "model is not available); off: Ollama only.",
    )
    embedded_model: str = Field(
        "", description="A GGUF file for the embedded model; empty: the SmolLM2-135M one "
        "shipped in requirements-embedded.txt.",
    )

    embedded_max_tokens: Annotated[int, Field(ge=16, le=32_768)] = Field(
        256, description="Longest answer of the embedded model, in tokens: a tiny model can "
        "ramble until its context is full.",
    )
    embedded_repeat_penalty: Annotated[float, Field(ge=1, le=2)] = Field(
        1.1, description="How much the embedded model is kept from repeating itself "
        "(llama.cpp's repeat_penalty; 1 turns it off).",
    )
    embedded_threads: Annotated[int, Field(ge=0, le=256)] = Field(
        0, description="CPU threads of the embedded model; 0: every core (measured fastest "
        "on 2 cores, see BENCHMARKS.md).",
    )

    @field_validator("embedded_model")
    @classmethod
    def _gguf(cls, value: str) -> str:
        if value and not Path(value).expanduser().is_file():
            raise ValueError("no such file (it must be a GGUF model file)")
        return value


_ENV_NAMES = {"ollama_host": "OLLAMA_HOST", "server_name": "GRADIO_SERVER_NAME",
              "server_port": "GRADIO_SERVER_PORT"}


SECRET_FIELDS = {"auth", "database_url"}  # their values hold passwords: never echoed


def describe_error(error: ValidationError) -> str:
    """One line per bad setting, naming the variable and what is allowed."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = field if field.isupper() else _ENV_NAMES.get(field, f"OLLAMASTACK_{field.upper()}")
        message = item["msg"].removeprefix("Value error, ")
        shown = field and field not in SECRET_FIELDS and not isinstance(item["input"], dict)
        got = f" (got {item['input']!r})" if shown else ""
        lines.append(f"Invalid setting {name}: {message}{got}" if field else message)
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a bad value into a `SettingsError` with one clear line."""
    from ollamastack.errors import SettingsError

    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None
