"""The settings of tools beyond the built-in ones: MCP servers (`OLLAMASTACK_MCP_SERVERS` or
`OLLAMASTACK_MCP_SERVERS_FILE`) and the names of `OLLAMASTACK_CONFIRM_TOOLS`.

`settings.py` declares the fields; what a server entry may hold, how the JSON is read and
what each mistake says live here, with the checks (`ToolSettingChecks`, a base of `Settings`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)


class McpServer(BaseModel):
    """One MCP server as `langchain-mcp-adapters`' `MultiServerMCPClient` takes it; other keys
    (`env`, `cwd`, `headers`, `timeout`...) pass through unchanged."""

    model_config = ConfigDict(extra="allow")

    transport: Literal["stdio", "streamable_http", "streamable-http", "http", "sse", "websocket"]
    command: str = ""
    args: list[str] = []
    url: str = ""

    @model_validator(mode="after")
    def _complete(self) -> McpServer:
        if self.transport == "stdio" and not self.command.strip():
            raise ValueError('a "stdio" server needs a "command"')
        if self.transport != "stdio" and not self.url.startswith(("http://", "https://", "ws")):
            raise ValueError(f'a "{self.transport}" server needs a "url" (http:// or https://)')
        return self


ServerName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
McpServers = dict[ServerName, McpServer]


def parsed_json(value: Any) -> Any:
    """A setting's JSON text as a value (other values as they are); bad JSON is a ValueError.

    >>> parsed_json('{"a": 1}'), parsed_json("  "), parsed_json({"b": 2})
    ({'a': 1}, {}, {'b': 2})
    >>> parsed_json("[1,")
    Traceback (most recent call last):
    ...
    ValueError: not valid JSON (Expecting value: line 1 column 4 (char 3))
    """
    if not isinstance(value, str):
        return value
    if not value.strip():
        return {}
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None


def first_error(error: ValidationError) -> str:
    """One nested error as `where: what` (`files.transport: Input should be ...`)."""
    item = error.errors()[0]
    where = ".".join(str(part) for part in item["loc"])
    message = item["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def servers_file(path: Path) -> dict[str, McpServer]:
    """The servers of `OLLAMASTACK_MCP_SERVERS_FILE`; a ValueError naming the variable and the
    file says why it cannot be used."""
    where = f"Invalid setting OLLAMASTACK_MCP_SERVERS_FILE ({path})"
    try:
        text = path.expanduser().read_text(encoding="utf-8")
        return TypeAdapter(McpServers).validate_python(parsed_json(text))
    except OSError as error:
        raise ValueError(f"{where}: cannot be read ({error.strerror})") from None
    except ValidationError as error:
        raise ValueError(f"{where}: {first_error(error)}") from None
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def connections(servers: dict[str, McpServer]) -> dict[str, dict[str, Any]]:
    """The servers as `MultiServerMCPClient` takes them (the keys that were given).

    >>> connections({"f": McpServer(transport="stdio", command="npx")})
    {'f': {'transport': 'stdio', 'command': 'npx', 'args': []}}
    """
    return {
        name: server.model_dump(exclude_unset=True) | {"transport": server.transport}
        | ({"args": server.args} if server.transport == "stdio" else {})
        for name, server in servers.items()
    }


def tool_names(value: str) -> str:
    """`OLLAMASTACK_CONFIRM_TOOLS` tidied: names of letters, digits, _ and -, comma-separated.

    >>> tool_names(" weather, calculator ,")
    'weather,calculator'
    >>> tool_names("weather,rm -rf")
    Traceback (most recent call last):
    ...
    ValueError: tool names are letters, digits, _ and -, not 'rm -rf'
    """
    names = [name.strip() for name in value.split(",") if name.strip()]
    if odd := [name for name in names if not name.replace("_", "").replace("-", "").isalnum()]:
        raise ValueError(f"tool names are letters, digits, _ and -, not {odd[0]!r}")
    return ",".join(names)


class ToolSettingChecks(BaseModel):
    """The checks of the tool fields that `Settings` declares (`mcp_servers`,
    `mcp_servers_file`, `confirm_tools`) and what is derived from them: a base of `Settings`,
    so that settings.py lists every field while what an MCP entry may hold lives here."""

    @field_validator("mcp_servers", mode="before", check_fields=False)
    @classmethod
    def _servers_json(cls, value: Any) -> Any:
        return parsed_json(value)

    @field_validator("mcp_servers_file", mode="before", check_fields=False)
    @classmethod
    def _no_file(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("confirm_tools", check_fields=False)
    @classmethod
    def _tool_names(cls, value: str) -> str:
        return tool_names(value)

    @model_validator(mode="after")
    def _servers_file(self) -> Any:
        if self.mcp_servers_file is None:
            return self
        if self.mcp_servers:
            raise ValueError(
                "set OLLAMASTACK_MCP_SERVERS or OLLAMASTACK_MCP_SERVERS_FILE, not both"
            )
        self.mcp_servers = servers_file(self.mcp_servers_file)
        return self

    @property
    def mcp_connections(self) -> dict[str, dict[str, Any]]:
        """The servers as `MultiServerMCPClient` takes them (the keys that were given)."""
        return connections(self.mcp_servers)

    @property
    def confirmed_tools(self) -> frozenset[str]:
        """The names of `confirm_tools`."""
        return frozenset(filter(None, self.confirm_tools.split(",")))
