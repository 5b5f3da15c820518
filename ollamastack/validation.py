"""Checks on what a client sends, shared by the core, the UI and the API."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import urllib.parse
import uuid

from ollamastack.errors import InvalidInput

_PART = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
_MODEL_NAME = re.compile(rf"^{_PART}(/{_PART})*(:[A-Za-z0-9._\-]+)?$")


def clean_text(value: object, *, what: str, limit: int, allow_empty: bool = False) -> str:
    """Refuse non-strings, NUL bytes, lone surrogates, empty or over-long text.

    >>> clean_text("  hi ", what="message", limit=10)
    'hi'
    >>> clean_text("x" * 11, what="message", limit=10)
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The message is 11 characters long; the limit is 10.
    >>> clean_text("a\\x00b", what="message", limit=10)
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The message contains a NUL character, which is not allowed.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"The {what} must be text.")
    text = value.strip()
    if not text and not allow_empty:
        raise InvalidInput(f"The {what} is empty.")
    if len(text) > limit:
        raise InvalidInput(f"The {what} is {len(text)} characters long; the limit is {limit}.")
    if "\x00" in text:
        raise InvalidInput(f"The {what} contains a NUL character, which is not allowed.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"The {what} is not valid Unicode (lone surrogate).") from None
    return text


def session_id(value: object) -> str:
    """Accept only a canonical UUID4, the form the server hands out.

    >>> session_id("1b4e28ba-2fa1-41d2-883f-0016d3cca427")
    '1b4e28ba-2fa1-41d2-883f-0016d3cca427'
    >>> session_id("../../etc/passwd")
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The session id must be a UUID4 as returned by the server.
    """
    text = value if isinstance(value, str) else ""
    try:
        parsed = uuid.UUID(text) if len(text) == 36 else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4 or str(parsed) != text.lower():
        raise InvalidInput("The session id must be a UUID4 as returned by the server.")
    return str(parsed)


def model_name(value: object) -> str:
    """A name Ollama could hold: `name[:tag]`, `namespace/name`, no URL or path tricks.

    >>> model_name("llama3.2:3b-instruct-q4_K_M")
    'llama3.2:3b-instruct-q4_K_M'
    >>> model_name("hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M")
    'hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M'
    >>> model_name("../../etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: '../../etc/passwd' is not a valid model name ...
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > 200 or not _MODEL_NAME.match(text) or ".." in text:
        shown = text[:60] if text else value
        raise InvalidInput(
            f"{shown!r} is not a valid model name "
            "(letters, digits, '.', '-', '_', '/' and one ':tag')."
        )
    return text


def temperature(value: object) -> float:
    """A finite number from 0 to 2.

    >>> temperature("0.5")
    0.5
    >>> temperature(float("nan"))
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The temperature must be a number from 0 to 2.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not 0 <= number <= 2:
        raise InvalidInput("The temperature must be a number from 0 to 2.")
    return number


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
