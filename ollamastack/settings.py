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
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ollamastack.tool_servers import McpServers, ToolSettingChecks
from ollamastack.validation import split_ollama_hosts

DEFAULT_SYSTEM_PROMPT = (
    "You are OllamaStack, a helpful assistant running on a private, local model. "
    "Use the tools when they help: calculator for arithmetic, text_analyzer for statistics "
    "about a text, current_time for the date and time, weather for current conditions. "
    "Answer concisely."
)


def _sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'ollamastack.sqlite'}"


class Settings(BaseSettings, ToolSettingChecks):
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
    def upload_bytes(self) -> int:
        """The largest file accepted (`max_upload_mb`, 1 MB = 2**20 bytes): by Gradio's upload
        route, and by the core for a file from any door.

        >>> Settings(_env_file=None, max_upload_mb=0.5).upload_bytes
        524288
        """
        return round(self.max_upload_mb * 2**20)

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
        20, description="Largest file accepted, in MB: by Gradio's upload route, and as an "
        "attachment through any door (one such file, base64, fits a REST body).",
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

    # -- observers: Prometheus metrics, webhooks, the answer cache (lifecycle.py, bus.py) --

    metrics_token: str = Field(
        "", description="With login, /metrics needs this as a bearer token (or an "
        "administrator's API token); empty: only API tokens. Without login /metrics is open, "
        "like /healthz.",
    )
    webhook_url: str = Field(
        "", description="URLs (http:// or https://, comma-separated) that receive a signed "
        "POST per event (turn.completed, turn.failed, model.pulled...); empty: none.",
    )
    webhook_events: str = Field(
        "", description="The event types webhooks receive (comma-separated); empty: all.",
    )
    webhook_secret: str = Field(
        "", description="Key of the X-OllamaStack-Signature header (sha256=<HMAC-SHA256 of "
        "the body, hex>); empty: deliveries are not signed.",
    )
    cache: bool = Field(
        False, description="Answer a temperature-0 turn whose model, prompt, tools and whole "
        "conversation match an earlier one of the same user from the cache.",
    )
    cache_ttl: Annotated[float, Field(gt=0, le=365 * 86_400)] = Field(
        3600, description="Seconds a cached answer is kept.",
    )

    @field_validator("webhook_url", "webhook_events")
    @classmethod
    def _list(cls, value: str) -> str:
        return ",".join(item.strip() for item in value.split(",") if item.strip())

    @model_validator(mode="after")
    def _webhooks(self) -> Settings:
        from ollamastack.lifecycle import EVENT_TYPES  # no message repeats a URL: it may hold a key

        if any(not url.startswith(("http://", "https://")) for url in self.webhook_urls):
            raise ValueError("OLLAMASTACK_WEBHOOK_URL: each URL must start with http:// or https://")
        if unknown := [e for e in self.webhook_event_types if e not in EVENT_TYPES]:
            raise ValueError(f"OLLAMASTACK_WEBHOOK_EVENTS: unknown event {unknown[0]!r} "
                             f"(known: {', '.join(EVENT_TYPES)})")
        return self

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        return tuple(filter(None, self.webhook_url.split(",")))

    @property
    def webhook_event_types(self) -> frozenset[str]:
        """The event types webhooks receive; empty: all of them."""
        return frozenset(filter(None, self.webhook_events.split(",")))

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

    # -- tools beyond the built-in ones: MCP servers, web search, approval (their checks and
    # `mcp_connections`, `confirmed_tools`: `ToolSettingChecks`) --

    mcp_servers: Annotated[McpServers, NoDecode] = Field(
        default_factory=dict, description="MCP servers whose tools the agent also uses: a JSON "
        'object of named servers, `{"files": {"transport": "stdio", "command": "...", "args": '
        '[...]}}` or `{"transport": "streamable_http", "url": "..."}`.',
    )
    mcp_servers_file: Path | None = Field(
        None, description="A JSON file with the same servers (instead of OLLAMASTACK_MCP_SERVERS).",
    )
    tool_result_chars: Annotated[int, Field(ge=100, le=1_000_000)] = Field(
        8000, description="Longest result of an MCP tool or a web search the model reads; a longer "
        "one is cut, saying so.",
    )
    max_offered_tools: Annotated[int, Field(ge=1, le=128)] = Field(
        8, description="With more tools than this, each model call is offered only the ones most "
        "relevant to the message.",
    )
    searxng_url: str = Field(
        "", description="A SearXNG instance for the web_search tool (its JSON API); empty: off.",
        pattern=r"^(|https?://\S+)$",
    )
    confirm_tools: str = Field(
        "", description="Tools (built-in or MCP, comma-separated names as /tools lists them) that "
        "run only after the user approves each call.",
    )

    # -- attachments: documents and images brought into a conversation (documents/) --

    embed_model: str = Field(
        "nomic-embed-text", description="Ollama embedding model that indexes large documents; "
        "when it is not installed, documents are searched by keywords (BM25).",
    )
    document_share: Annotated[float, Field(gt=0, le=0.9)] = Field(
        0.25, description="Share of the model's context that documents may fill: a document "
        "that fits is read whole, a larger one is searched for the passages each question needs.",
    )
    max_files: Annotated[int, Field(ge=1, le=100)] = Field(
        8, description="Most files one message may carry.",
    )
    max_document_pages: Annotated[int, Field(ge=1, le=100_000)] = Field(
        2000, description="Most pages a PDF or Word document may have.",
    )
    extract_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        60.0, description="Seconds reading one document's text may take before it is refused.",
    )


_ENV_NAMES = {"ollama_host": "OLLAMA_HOST", "server_name": "GRADIO_SERVER_NAME",
              "server_port": "GRADIO_SERVER_PORT"}


# their values hold passwords (an MCP server's headers or env: tokens): never echoed
SECRET_FIELDS = {"auth", "database_url", "mcp_servers"}


def describe_error(error: ValidationError) -> str:
    """One line per bad setting, naming the variable and what is allowed."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = field if field.isupper() else _ENV_NAMES.get(field, f"OLLAMASTACK_{field.upper()}")
        message = item["msg"].removeprefix("Value error, ")
        if inner := ".".join(str(part) for part in item["loc"][1:]):
            message = f"{inner}: {message}"  # which server of OLLAMASTACK_MCP_SERVERS, say
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
