"""Settings read once at start-up from the environment and an optional `.env` file."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import urllib.parse
from pathlib import Path
from typing import Annotated

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SYSTEM_PROMPT = (
    "You are OllamaStack, a helpful assistant running on a private, local model. "
    "Use the tools when they help: calculator for arithmetic, text_analyzer for statistics "
    "about a text, current_time for the date and time, weather for current conditions. "
    "Answer concisely."
)


def normalize_ollama_host(value: str) -> str:
    """Turn an `OLLAMA_HOST` value into a base URL, as the Ollama CLI does.

    >>> normalize_ollama_host("localhost:11434")
    'http://localhost:11434'
    >>> normalize_ollama_host("0.0.0.0")
    'http://127.0.0.1:11434'
    >>> normalize_ollama_host("https://ollama.example.com")
    'https://ollama.example.com:443'
    >>> normalize_ollama_host("http://ollama:11434/")
    'http://ollama:11434'
    >>> normalize_ollama_host(":8080")
    'http://127.0.0.1:8080'
    >>> normalize_ollama_host("[::1]:11434")
    'http://[::1]:11434'
    >>> normalize_ollama_host("http://box:11434/proxy/")
    'http://box:11434/proxy'
    """
    url = parse_host(value.strip()).rstrip("/")
    return url.replace("://0.0.0.0:", "://127.0.0.1:")


def parse_host(host: str) -> str:
    """`scheme://host:port[/path]` from what `OLLAMA_HOST` may hold, by the rules of the
    `ollama` client's own parser: no scheme means http on 11434; http and https without a
    port mean 80 and 443; no host means 127.0.0.1; IPv6 keeps its brackets.

    >>> parse_host(""), parse_host("box"), parse_host("http://box"), parse_host("https://box")
    ('http://127.0.0.1:11434', 'http://box:11434', 'http://box:80', 'https://box:443')
    >>> parse_host("http://[::1]:8080/api/"), parse_host("example.com:56789/path")
    ('http://[::1]:8080/api', 'http://example.com:56789/path')
    """
    scheme, _, hostport = host.partition("://")
    port = 11434
    if not hostport:
        scheme, hostport = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    split = urllib.parse.urlsplit(f"{scheme}://{hostport}")
    name = split.hostname or "127.0.0.1"
    port = split.port or port  # ValueError for a port that is not a number
    with contextlib.suppress(ValueError):
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    if path := split.path.strip("/"):
        return f"{scheme}://{name}:{port}/{path}"
    return f"{scheme}://{name}:{port}"


def split_ollama_hosts(value: str) -> list[str]:
    """`OLLAMA_HOST` as a comma-separated list of instances: each normalised, no repeats.

    >>> split_ollama_hosts("gpu0:11434, http://gpu1:11434/")
    ['http://gpu0:11434', 'http://gpu1:11434']
    >>> split_ollama_hosts("localhost,http://localhost:11434,")
    ['http://localhost:11434']
    >>> split_ollama_hosts(" ")
    ['http://127.0.0.1:11434']
    """
    hosts = [normalize_ollama_host(part) for part in value.split(",") if part.strip()]
    return list(dict.fromkeys(hosts)) or [normalize_ollama_host("")]


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
    max_tool_rounds: Annotated[int, Field(ge=0, le=50)] = 5
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

    @field_validator("admin_users")
    @classmethod
    def _admins(cls, value: str) -> str:
        return ",".join(name.strip() for name in value.split(",") if name.strip())

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
